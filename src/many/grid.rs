//! A sweep's grid: `--grid KEY=V1,V2,...` arguments parsed, checked for keys and values
//! that would train one setting twice, counted, and expanded into its points.

use std::collections::HashMap;

use anyhow::{bail, Result};
use serde_yaml::Value;

use crate::config::clip;

/// The grid: each key with its values (YAML text), in the order given.
pub type Grid = Vec<(String, Vec<String>)>;

/// Splits `--grid KEY=V1,V2,...` into the key and its values; commas inside brackets or
/// braces belong to a value (`network.hidden=[64,64],[128,128]`).
pub fn parse_grid_arg(arg: &str) -> Result<(String, Vec<String>)> {
    let shown = clip(arg);
    let Some((key, values)) = arg.split_once('=') else {
        bail!("--grid {shown}: expected KEY=V1,V2,..., e.g. optimizer.lr=1e-3,3e-3");
    };
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        bail!(
            "--grid {shown}: '{}' is not a dotted key such as optimizer.lr",
            clip(key)
        );
    }
    let mut out = Vec::new();
    let (mut depth, mut current) = (0i32, String::new());
    for c in values.chars() {
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut current).trim().to_owned());
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current.trim().to_owned());
    if depth != 0 || out.iter().any(String::is_empty) {
        bail!("--grid {shown}: expected non-empty values separated by commas, brackets balanced");
    }
    Ok((key.to_owned(), out))
}

/// Refuses what would train one setting twice or fight the seeds: `seed` as a key (every
/// setting already trains each of `--seeds`), a key given twice, and a value given twice
/// for one key (compared as YAML values, so `1e-3` and `0.001` are the same).
pub fn check(grid: &[(String, Vec<String>)]) -> Result<()> {
    for (index, (key, values)) in grid.iter().enumerate() {
        let shown = clip(key);
        if key == "seed" {
            bail!(
                "grid key seed: seeds are not a grid key; every setting trains the seeds of \
                 --seeds N --first-seed S (S, S+1, ..., S+N-1)"
            );
        }
        if values.is_empty() {
            bail!("grid key {shown} has no values");
        }
        if grid[..index].iter().any(|(earlier, _)| earlier == key) {
            bail!(
                "grid key {shown} is given twice; give all its values once, as {shown}=V1,V2,..."
            );
        }
        let mut seen: HashMap<Value, &str> = HashMap::with_capacity(values.len());
        for value in values {
            // A value that is not YAML fails when its setting loads, with its own message.
            let parsed =
                serde_yaml::from_str(value).unwrap_or_else(|_| Value::from(value.as_str()));
            if let Some(first) = seen.insert(parsed, value) {
                bail!(
                    "grid key {shown}: {} and {} are the same value; each value is a setting, \
                     and a repeat would train that setting twice",
                    clip(first),
                    clip(value)
                );
            }
        }
    }
    Ok(())
}

/// Settings in `grid`: the product of its value counts (1 without a grid), saturating.
pub fn settings(grid: &[(String, Vec<String>)]) -> u64 {
    grid.iter().fold(1u64, |product, (_, values)| {
        product.saturating_mul(values.len() as u64)
    })
}

/// Every point of `grid`: each key with one of its values, in the grid's key order; the
/// last key's values vary fastest. One empty point without a grid.
pub fn points(grid: &[(String, Vec<String>)]) -> Vec<Vec<(String, String)>> {
    let mut points: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (key, values) in grid {
        points = points
            .iter()
            .flat_map(|point| {
                values.iter().map(move |value| {
                    let mut next = point.clone();
                    next.push((key.clone(), value.clone()));
                    next
                })
            })
            .collect();
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(pairs: &[(&str, &[&str])]) -> Grid {
        pairs
            .iter()
            .map(|(k, vs)| {
                (
                    (*k).to_owned(),
                    vs.iter().map(|v| (*v).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn points_vary_the_last_key_fastest() {
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            points(&grid(&[("a", &["1", "2"]), ("b", &["x", "y"])])),
            vec![
                vec![pair("a", "1"), pair("b", "x")],
                vec![pair("a", "1"), pair("b", "y")],
                vec![pair("a", "2"), pair("b", "x")],
                vec![pair("a", "2"), pair("b", "y")],
            ]
        );
        assert_eq!(points(&[]), vec![Vec::<(String, String)>::new()]);
    }

    #[test]
    fn grid_arguments_split_at_top_level_commas() -> Result<()> {
        assert_eq!(
            parse_grid_arg("network.hidden=[64,64],[128, 128]")?,
            (
                "network.hidden".to_owned(),
                vec!["[64,64]".to_owned(), "[128, 128]".to_owned()]
            )
        );
        assert_eq!(parse_grid_arg("optimizer.lr=1e-3")?.1, vec!["1e-3"]);
        for bad in ["optimizer.lr", "=1,2", "a..b=1", "x=1,,2", "x=[1,2", "x="] {
            assert!(parse_grid_arg(bad).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn a_long_bad_grid_argument_is_quoted_cut() {
        let values = vec!["1"; 1_000_000].join(",");
        let err = parse_grid_arg(&format!("agent.gamma={values},[")).unwrap_err();
        let text = err.to_string();
        assert!(text.len() < 400, "{} characters", text.len());
        assert!(
            text.starts_with("--grid agent.gamma=1,1,1")
                && text.contains("... (1999813 more characters): expected non-empty values"),
            "{text}"
        );
    }

    #[test]
    fn seed_repeated_keys_and_repeated_values_are_refused() {
        let message = |g: Grid| check(&g).unwrap_err().to_string();
        let seed = message(grid(&[("seed", &["1", "2"])]));
        assert!(
            seed.contains("grid key seed") && seed.contains("--seeds N --first-seed S"),
            "{seed}"
        );
        let twice = message(grid(&[
            ("agent.gamma", &["0.9"]),
            ("agent.gamma", &["0.99"]),
        ]));
        assert!(
            twice.contains("grid key agent.gamma is given twice"),
            "{twice}"
        );
        let same = message(grid(&[("optimizer.lr", &["1e-3", "3e-3", "0.001"])]));
        assert_eq!(
            same,
            "grid key optimizer.lr: 1e-3 and 0.001 are the same value; each value is a \
             setting, and a repeat would train that setting twice"
        );
        let lists = message(grid(&[("network.hidden", &["[64,64]", "[64, 64]"])]));
        assert!(lists.contains("[64,64] and [64, 64]"), "{lists}");
        let fine = grid(&[
            ("optimizer.lr", &["1e-3", "3e-3"]),
            ("network.hidden", &["[64]", "[64,64]"]),
        ]);
        assert!(check(&fine).is_ok());
        assert_eq!(settings(&fine), 4);
        assert_eq!(settings(&[]), 1);
    }
}
