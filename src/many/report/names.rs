//! Group names: what a reader of the report needs to tell the groups apart.

use anyhow::Result;

use crate::config::Config;

/// The names of groups: their experiment names when those tell them apart (an ablation
/// names each variant with `--set experiment=...`); otherwise the `key=value` settings by
/// which each group differs from the others (for a key where most groups agree, only the
/// groups that differ name it); the experiment name for a lone group.
pub(super) fn group_names(keys: &[Config]) -> Result<Vec<String>> {
    let experiments: Vec<&str> = keys.iter().map(|k| k.experiment.as_str()).collect();
    let distinct = experiments
        .iter()
        .enumerate()
        .all(|(i, e)| !experiments[..i].contains(e));
    if distinct {
        return Ok(experiments.into_iter().map(str::to_owned).collect());
    }
    let mut differing: Vec<String> = Vec::new();
    for key in keys.iter().skip(1) {
        for k in keys[0].differing_keys(key)? {
            if !differing.contains(&k) {
                differing.push(k);
            }
        }
    }
    let trees = keys
        .iter()
        .map(serde_yaml::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    let value_of = |tree: &serde_yaml::Value, dotted: &str| {
        dotted
            .split('.')
            .try_fold(tree, |node, part| node.get(part))
            .map(|v| serde_json::to_string(v).unwrap_or_default())
            .unwrap_or_default()
    };
    // The value most groups share, per key, when a strict majority shares one.
    let majority: Vec<Option<String>> = differing
        .iter()
        .map(|dotted| {
            let values: Vec<String> = trees.iter().map(|t| value_of(t, dotted)).collect();
            values
                .iter()
                .find(|v| 2 * values.iter().filter(|w| w == v).count() > values.len())
                .cloned()
        })
        .collect();
    Ok(trees
        .iter()
        .enumerate()
        .map(|(index, tree)| {
            let pairs: Vec<String> = differing
                .iter()
                .zip(&majority)
                .filter_map(|(dotted, common)| {
                    let value = value_of(tree, dotted);
                    (common.as_ref() != Some(&value))
                        .then(|| format!("{dotted}={}", value.trim_matches('"')))
                })
                .collect();
            match (pairs.is_empty(), keys.len()) {
                (false, _) => pairs.join(" "),
                (true, 1) => keys[index].experiment.clone(),
                (true, _) => format!("{} (the common settings)", keys[index].experiment),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_named_by_what_differs() -> Result<()> {
        let a = Config::default();
        let mut b = Config::default();
        b.optimizer.lr = 3e-3;
        b.network.hidden = vec![128, 128];
        let names = group_names(&[a.clone(), b.clone()])?;
        assert_eq!(
            names,
            [
                "network.hidden=[64,64] optimizer.lr=0.001",
                "network.hidden=[128,128] optimizer.lr=0.003"
            ]
        );
        assert_eq!(group_names(std::slice::from_ref(&a))?, ["cartpole"]);
        // Where most groups agree, only the others name the key.
        let mut c = Config::default();
        c.agent.gamma = 0.9;
        let names = group_names(&[a.clone(), b.clone(), c])?;
        assert_eq!(
            names,
            [
                "cartpole (the common settings)",
                "network.hidden=[128,128] optimizer.lr=0.003",
                "agent.gamma=0.9"
            ]
        );
        // Distinct experiment names are the names.
        let mut named = b;
        named.experiment = "wide".to_owned();
        assert_eq!(group_names(&[a, named])?, ["cartpole", "wide"]);
        Ok(())
    }
}
