//! A report as files: report.md (what `qnet report` prints, a section per environment when
//! the runs played several), report.csv (one row per group, naming its environment) and
//! report.json (everything, scores included).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{Comparison, Group, Report};
use crate::many::stats::Estimate;
use crate::platform::atomic::write_bytes_atomic;

/// `point [lo, hi]` with `digits` decimals.
fn ci(e: &Estimate, digits: usize) -> String {
    format!(
        "{:.digits$} [{:.digits$}, {:.digits$}]",
        e.point, e.lo, e.hi
    )
}

/// A fraction as a percentage with its interval.
fn percent(e: &Estimate) -> String {
    format!(
        "{:.0}% [{:.0}, {:.0}]",
        100.0 * e.point,
        100.0 * e.lo,
        100.0 * e.hi
    )
}

fn runs_cell(group: &Group) -> String {
    let mut text = format!("{}/{}", group.finished, group.runs.len());
    if group.failed > 0 {
        let _ = write!(text, ", {} failed", group.failed);
    }
    if group.unfinished > 0 {
        let _ = write!(text, ", {} unfinished", group.unfinished);
    }
    text
}

/// What the comparison says, in words.
fn verdict(x: &str, y: &str, p: &Estimate, confidence: f64) -> String {
    let level = format!("{:.0}%", 100.0 * confidence);
    if p.lo > 0.5 {
        format!("`{x}` is better than `{y}`: its {level} interval lies above 0.5")
    } else if p.hi < 0.5 {
        format!("`{y}` is better than `{x}`: the {level} interval lies below 0.5")
    } else {
        format!("no clear difference between `{x}` and `{y}`: the {level} interval spans 0.5")
    }
}

/// report.md: a section per environment when the runs played several.
pub(super) fn markdown(report: &Report) -> String {
    let mut md = String::new();
    let level = format!("{:.0}%", 100.0 * report.confidence);
    let success = match report.environments.as_slice() {
        [only] => match only.threshold {
            Some(threshold) => format!("final return >= {threshold}"),
            None => format!("none ({} registers no reward threshold)", only.env),
        },
        _ => "final return >= the reward threshold of the run's environment, which its section \
              names; settings are compared only with settings of their environment"
            .to_owned(),
    };
    let _ = writeln!(
        md,
        "# qnet report\n\nFinal greedy return (100-episode mean at the end of training) per \
         run; point estimates with {level} stratified-bootstrap intervals ({} replicates, seed \
         {}), as rliable computes them. Success: {success}. Steps and seconds to solve count a \
         run that never solved at its budget.\n",
        report.reps, report.seed
    );
    let several = report.environments.len() > 1;
    for (index, env) in report.environments.iter().enumerate() {
        if several {
            let success = match env.threshold {
                Some(threshold) => {
                    format!(
                        "final return >= {threshold} ({}'s reward threshold)",
                        env.env
                    )
                }
                None => format!("not judged ({} registers no reward threshold)", env.env),
            };
            let _ = writeln!(
                md,
                "{}## {}\n\nSuccess: {success}.\n",
                if index > 0 { "\n" } else { "" },
                env.env.as_str(),
            );
        }
        settings_table(&mut md, report.groups_of(&env.env));
        let comparisons: Vec<&Comparison> = report
            .comparisons
            .iter()
            .filter(|c| c.env == env.env)
            .collect();
        comparisons_table(&mut md, &comparisons, report.confidence);
    }
    md
}

/// The table of `groups`, one row each.
fn settings_table<'g>(md: &mut String, groups: impl Iterator<Item = &'g Group>) {
    let _ = writeln!(
        md,
        "| setting | runs | IQM | median | mean | success | best-eval success | steps to solve (IQM) | seconds to solve (IQM) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    let mut not_judged = Vec::new();
    for group in groups {
        let cells = match &group.stats {
            Some(s) => format!(
                "{} | {} | {} | {} | {} | {} | {}",
                ci(&s.final_iqm, 1),
                ci(&s.final_median, 1),
                ci(&s.final_mean, 1),
                s.success_rate.as_ref().map_or("-".to_owned(), percent),
                s.best_eval_success_rate
                    .as_ref()
                    .map_or("-".to_owned(), percent),
                s.steps_to_solve_iqm
                    .as_ref()
                    .map_or("-".to_owned(), |e| ci(e, 0)),
                s.seconds_to_solve_iqm
                    .as_ref()
                    .map_or("-".to_owned(), |e| ci(e, 2))
            ),
            None => "- | - | - | - | - | - | -".to_owned(),
        };
        let _ = writeln!(md, "| `{}` | {} | {cells} |", group.name, runs_cell(group));
        if let Some(why) = &group.solved_not_judged {
            not_judged.push(format!("`{}`: {why}", group.name));
        }
    }
    if !not_judged.is_empty() {
        let _ = writeln!(
            md,
            "\nLeft out of success rates and steps to solve, as solved is not judged under a \
             time limit shorter than the environment's registered one:\n"
        );
        for line in not_judged {
            let _ = writeln!(md, "- {line}");
        }
    }
}

/// The probabilities of improvement in `comparisons`, with their verdicts; nothing when there
/// are none.
fn comparisons_table(md: &mut String, comparisons: &[&Comparison], confidence: f64) {
    if comparisons.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\nProbability of improvement on the final return, P(X > Y): the chance that a run of X \
         ends above a run of Y (ties count half), with its {:.0}% interval.\n",
        100.0 * confidence
    );
    let _ = writeln!(md, "| X | Y | P(X > Y) | verdict |");
    let _ = writeln!(md, "|---|---|---|---|");
    for c in comparisons {
        let p = &c.probability_of_improvement;
        let _ = writeln!(
            md,
            "| `{}` | `{}` | {} | {} |",
            c.x,
            c.y,
            ci(p, 2),
            verdict(&c.x, &c.y, p, confidence)
        );
    }
}

/// report.csv: one row per group, its environment first, every estimate as point, lo, hi.
fn csv(report: &Report) -> String {
    let metrics = [
        "final_iqm",
        "final_median",
        "final_mean",
        "success_rate",
        "best_eval_success_rate",
        "steps_to_solve_iqm",
        "seconds_to_solve_iqm",
    ];
    let mut out = String::from("env,setting,runs,finished,failed,unfinished");
    for metric in metrics {
        let _ = write!(out, ",{metric},{metric}_lo,{metric}_hi");
    }
    out.push('\n');
    for group in &report.groups {
        let _ = write!(
            out,
            "{},\"{}\",{},{},{},{}",
            group.env.as_str(),
            group.name.replace('"', "\"\""),
            group.runs.len(),
            group.finished,
            group.failed,
            group.unfinished
        );
        let estimates = match &group.stats {
            Some(s) => vec![
                Some(s.final_iqm),
                Some(s.final_median),
                Some(s.final_mean),
                s.success_rate,
                s.best_eval_success_rate,
                s.steps_to_solve_iqm,
                s.seconds_to_solve_iqm,
            ],
            None => vec![None; metrics.len()],
        };
        for estimate in estimates {
            match estimate {
                Some(e) => {
                    let _ = write!(out, ",{},{},{}", e.point, e.lo, e.hi);
                }
                None => out.push_str(",,,"),
            }
        }
        out.push('\n');
    }
    out
}

/// `paths` as JSON strings, a byte that is not UTF-8 as U+FFFD: serde refuses such a path, and
/// report.json names runs for people to read, not to open.
pub(super) fn lossy_paths<S: serde::Serializer>(
    paths: &[PathBuf],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(paths.iter().map(|path| path.to_string_lossy()))
}

/// Writes report.md, report.csv and report.json into `dir`.
pub(super) fn write_all(report: &Report, dir: &Path) -> Result<()> {
    write_bytes_atomic(&dir.join("report.md"), markdown(report).as_bytes())?;
    write_bytes_atomic(&dir.join("report.csv"), csv(report).as_bytes())?;
    let mut json = serde_json::to_string_pretty(report)?;
    json.push('\n');
    write_bytes_atomic(&dir.join("report.json"), json.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_the_interval() {
        let e = |point, lo, hi| Estimate { point, lo, hi };
        assert!(verdict("a", "b", &e(0.8, 0.6, 0.95), 0.95).starts_with("`a` is better"));
        assert!(verdict("a", "b", &e(0.2, 0.05, 0.4), 0.95).starts_with("`b` is better"));
        assert!(verdict("a", "b", &e(0.55, 0.3, 0.8), 0.95).starts_with("no clear difference"));
        assert_eq!(ci(&e(1.0, 0.5, 2.0), 1), "1.0 [0.5, 2.0]");
        assert_eq!(percent(&e(0.9, 0.75, 1.0)), "90% [75, 100]");
    }
}
