//! The run's records: metrics.csv rows (written as they happen, read back for plots and
//! reports), the TensorBoard scalars of each row, and summary.json.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::learn::eval::EvalResult;
use crate::platform::atomic::write_bytes_atomic;
use crate::platform::read::{read_bytes, read_text_if_exists};
use crate::run::provenance::Provenance;

/// File name of the per-row records inside a run directory.
pub const METRICS_CSV: &str = "metrics.csv";
/// File name of the run's summary inside a run directory.
pub const SUMMARY_JSON: &str = "summary.json";

/// metrics.csv's header; docs/guide.md documents each column.
pub const CSV_HEADER: &str =
    "kind,env_step,episode,return,length,epsilon,loss,mean_q,eval_mean,eval_std,eval_min,eval_max,wall_seconds";

/// One metrics.csv row: a finished training episode or an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// A training episode ended.
    Episode {
        /// Env steps (all envs) when it ended.
        env_step: u64,
        /// Training episodes finished so far, this one included.
        episode: u64,
        /// Its undiscounted return.
        episode_return: f64,
        /// Its length in steps.
        length: u32,
        /// Epsilon when it ended.
        epsilon: f64,
        /// Mean loss and Q(s, a) of the updates since the previous row, if any ran.
        loss_and_q: Option<(f64, f64)>,
        /// Seconds of training so far.
        wall_seconds: f64,
    },
    /// A greedy evaluation ran.
    Eval {
        /// Env steps when it ran.
        env_step: u64,
        /// Training episodes finished so far.
        episode: u64,
        /// The final evaluation (kind `final_eval`) rather than a periodic one (`eval`).
        is_final: bool,
        /// Its result.
        result: EvalResult,
        /// Seconds of training so far.
        wall_seconds: f64,
    },
}

/// A float as the CSV writes it: the shortest decimal that reads back to the same f64
/// (so TensorBoard's float32 of it and the CSV agree exactly), in exponent form only for
/// magnitudes where plain decimals would run long (a diverging loss).
fn float(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 || !value.is_finite() || (1e-5..1e16).contains(&magnitude) {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}

impl Row {
    /// Env steps when the row was produced.
    pub fn env_step(&self) -> u64 {
        match self {
            Row::Episode { env_step, .. } | Row::Eval { env_step, .. } => *env_step,
        }
    }

    /// Appends the row's metrics.csv line.
    pub fn write_csv(&self, out: &mut String) {
        // Fixed formats keep the file byte-identical across identical runs.
        let _ = match self {
            Row::Episode {
                env_step,
                episode,
                episode_return,
                length,
                epsilon,
                loss_and_q,
                wall_seconds,
            } => {
                let (loss, q) = loss_and_q
                    .map(|(l, q)| (float(l), float(q)))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "train,{env_step},{episode},{},{length},{},{loss},{q},,,,,{}",
                    float(*episode_return),
                    float(*epsilon),
                    float(*wall_seconds),
                )
            }
            Row::Eval {
                env_step,
                episode,
                is_final,
                result,
                wall_seconds,
            } => writeln!(
                out,
                "{},{env_step},{episode},,,,,,{},{},{},{},{}",
                if *is_final { "final_eval" } else { "eval" },
                float(result.mean),
                float(result.std),
                float(result.min),
                float(result.max),
                float(*wall_seconds),
            ),
        };
    }

    /// The row as TensorBoard scalars `(tag, value)`, all at step [`Row::env_step`].
    pub fn scalars(&self) -> Vec<(&'static str, f64)> {
        match self {
            Row::Episode {
                episode_return,
                length,
                epsilon,
                loss_and_q,
                ..
            } => {
                let mut scalars = vec![
                    ("train/episode_return", *episode_return),
                    ("train/episode_length", f64::from(*length)),
                    ("train/epsilon", *epsilon),
                ];
                if let Some((loss, q)) = loss_and_q {
                    scalars.extend([("train/loss", *loss), ("train/mean_q", *q)]);
                }
                scalars
            }
            Row::Eval {
                env_step,
                is_final: false,
                result,
                wall_seconds,
                ..
            } => vec![
                ("eval/mean_return", result.mean),
                ("eval/std_return", result.std),
                (
                    "perf/env_steps_per_second",
                    *env_step as f64 / wall_seconds.max(1e-9),
                ),
            ],
            Row::Eval {
                is_final: true,
                result,
                ..
            } => vec![
                ("final_eval/mean_return", result.mean),
                ("final_eval/std_return", result.std),
            ],
        }
    }
}

/// What plots and reports read back from a metrics.csv.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Curves {
    /// (env step, return) of each finished training episode.
    pub train: Vec<(u64, f64)>,
    /// (env step, mean, std) of each periodic evaluation.
    pub eval: Vec<(u64, f64, f64)>,
}

impl Curves {
    /// Reads the training and evaluation curves of `run_dir`'s metrics.csv. A last line cut
    /// short (a run killed mid-write) is ignored; any other malformed line is an error.
    pub fn read(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(METRICS_CSV);
        // As long as it is: a long run's records can be hundreds of megabytes.
        let bytes =
            read_bytes(&path, u64::MAX).with_context(|| format!("reading {}", path.display()))?;
        let text = String::from_utf8(bytes)
            .with_context(|| format!("{} is not UTF-8 text", path.display()))?;
        Self::parse(&text).with_context(|| format!("reading {}", path.display()))
    }

    fn parse(text: &str) -> Result<Self> {
        let mut lines = text.split_inclusive('\n').enumerate();
        match lines.next() {
            Some((_, header)) if header.trim_end() == CSV_HEADER => {}
            _ => bail!("the first line is not qnet's metrics header"),
        }
        let mut curves = Curves::default();
        for (index, line) in lines {
            if !line.ends_with('\n') {
                break;
            }
            let fields: Vec<&str> = line.trim_end().split(',').collect();
            let number = |column: usize| -> Result<f64> {
                let text = fields.get(column).copied().unwrap_or("");
                text.parse::<f64>()
                    .with_context(|| format!("line {}: column {} is {text:?}", index + 1, column))
            };
            let env_step = number(1)? as u64;
            match fields.first().copied() {
                Some("train") => curves.train.push((env_step, number(3)?)),
                Some("eval") => curves.eval.push((env_step, number(8)?, number(9)?)),
                Some("final_eval") => {}
                other => bail!("line {}: unknown row kind {other:?}", index + 1),
            }
        }
        Ok(curves)
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// It trained its budget (or until solved) and ran the final evaluation.
    Finished,
    /// A non-finite loss, Q-value or parameter stopped it.
    Diverged,
}

/// summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How the run ended.
    pub status: RunStatus,
    /// The config's experiment name.
    pub experiment: String,
    /// Env steps taken (all envs).
    pub env_steps: u64,
    /// Gradient updates applied.
    pub gradient_updates: u64,
    /// Training episodes finished.
    pub episodes: u64,
    /// Seconds spent training (summed over resumed sessions), evaluations included.
    pub train_seconds: f64,
    /// Env steps per second of training.
    pub env_steps_per_second: f64,
    /// Mean return of the final greedy evaluation (none when the run diverged).
    pub final_eval_mean: Option<f64>,
    /// Standard deviation of its returns.
    pub final_eval_std: Option<f64>,
    /// Lowest return.
    pub final_eval_min: Option<f64>,
    /// Highest return.
    pub final_eval_max: Option<f64>,
    /// Episodes it played.
    pub final_eval_episodes: Option<usize>,
    /// Its mean reached the solved threshold (none when solved is not judged).
    pub final_eval_solved: Option<bool>,
    /// First env step at which a periodic evaluation reached the solved threshold.
    pub solved_at_step: Option<u64>,
    /// Training seconds at that evaluation.
    pub solved_at_seconds: Option<f64>,
    /// Env step at which a confirmation on fresh episodes agreed, and training stopped
    /// (`eval.stop_when_solved`).
    #[serde(default)]
    pub confirmed_at_step: Option<u64>,
    /// Training seconds at that confirmation.
    #[serde(default)]
    pub confirmed_at_seconds: Option<f64>,
    /// Why the solved fields are null in a finished run: its time limit is shorter than the
    /// environment's registered one, or the environment registers no threshold (see
    /// [`crate::env::EnvSpec::solved_not_judged`]). Absent where solved is judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solved_not_judged: Option<String>,
    /// Highest mean of a periodic evaluation (the one `model_best.*` holds).
    pub best_eval_mean: Option<f64>,
    /// Env step of that evaluation.
    pub best_eval_step: Option<u64>,
    /// Env step at which training diverged.
    pub diverged_at_step: Option<u64>,
    /// What was found non-finite.
    pub divergence: Option<String>,
    /// The run's seed.
    pub seed: u64,
    /// The device trained on (`cpu`, `cuda:0`, ...).
    pub device: String,
    /// qnet's version.
    pub qnet_version: String,
    /// The environment's sizes, registered time limit and threshold, as the run found them
    /// (what `qnet report` reads for a Gymnasium environment, which it does not start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<crate::env::EnvSpec>,
    /// The build, libtorch, machine, command and start time of the session that wrote this
    /// (absent from summaries of older qnet versions).
    #[serde(default)]
    pub provenance: Option<Provenance>,
}

impl Summary {
    /// Writes summary.json into `run_dir`, atomically.
    pub fn write(&self, run_dir: &Path) -> Result<()> {
        let mut json = serde_json::to_string_pretty(self)?;
        json.push('\n');
        write_bytes_atomic(&run_dir.join(SUMMARY_JSON), json.as_bytes())
    }

    /// Reads `run_dir`'s summary.json; `None` when there is none.
    pub fn read(run_dir: &Path) -> Result<Option<Self>> {
        let path = run_dir.join(SUMMARY_JSON);
        let Some(text) = read_text_if_exists(&path)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a qnet summary", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        vec![
            Row::Episode {
                env_step: 20,
                episode: 1,
                episode_return: 20.0,
                length: 20,
                epsilon: 0.998,
                loss_and_q: None,
                wall_seconds: 0.01,
            },
            Row::Episode {
                env_step: 45,
                episode: 2,
                episode_return: 25.0,
                length: 25,
                epsilon: 0.9,
                loss_and_q: Some((0.5, 1.25)),
                wall_seconds: 0.02,
            },
            Row::Eval {
                env_step: 50,
                episode: 2,
                is_final: false,
                result: EvalResult {
                    episodes: 2,
                    mean: 9.5,
                    std: 0.5,
                    min: 9.0,
                    max: 10.0,
                },
                wall_seconds: 0.03,
            },
        ]
    }

    fn csv(rows: &[Row]) -> String {
        let mut out = format!("{CSV_HEADER}\n");
        for row in rows {
            row.write_csv(&mut out);
        }
        out
    }

    #[test]
    fn csv_has_one_line_per_row_with_every_column() {
        let csv = csv(&rows());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[1], "train,20,1,20,20,0.998,,,,,,,0.01");
        assert_eq!(lines[2], "train,45,2,25,25,0.9,0.5,1.25,,,,,0.02");
        assert_eq!(lines[3], "eval,50,2,,,,,,9.5,0.5,9,10,0.03");
        let columns = CSV_HEADER.split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == columns));
    }

    #[test]
    fn floats_read_back_exactly_and_stay_short() {
        for value in [0.1, 1.0 / 3.0, 2.5e-7, 3.0e20, -1.0e-300, 123456.789] {
            let text = float(value);
            assert_eq!(text.parse::<f64>().ok(), Some(value), "{text}");
            assert!(text.len() <= 24, "{text}");
        }
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::INFINITY), "inf");
    }

    #[test]
    fn curves_read_back_and_a_cut_last_line_is_ignored() -> Result<()> {
        let mut text = csv(&rows());
        let curves = Curves::parse(&text)?;
        assert_eq!(curves.train, vec![(20, 20.0), (45, 25.0)]);
        assert_eq!(curves.eval, vec![(50, 9.5, 0.5)]);
        text.push_str("train,60,3,1");
        assert_eq!(Curves::parse(&text)?, curves);
        assert!(Curves::parse("kind,x\n").is_err());
        assert!(Curves::parse(&format!("{CSV_HEADER}\nbogus,1\n")).is_err());
        Ok(())
    }

    #[test]
    fn scalars_name_each_figure_of_a_row() {
        let tags: Vec<Vec<&str>> = rows()
            .iter()
            .map(|r| r.scalars().into_iter().map(|(tag, _)| tag).collect())
            .collect();
        assert_eq!(
            tags[0],
            [
                "train/episode_return",
                "train/episode_length",
                "train/epsilon"
            ]
        );
        assert_eq!(tags[1].len(), 5);
        assert_eq!(
            tags[2],
            [
                "eval/mean_return",
                "eval/std_return",
                "perf/env_steps_per_second"
            ]
        );
        let rate = rows()[2].scalars()[2].1;
        assert!((rate - 50.0 / 0.03).abs() < 1e-9);
    }
}
