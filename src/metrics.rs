//! The run's records: metrics.csv rows, summary.json and the learning curve.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::atomic::write_bytes_atomic;
use crate::eval::EvalResult;
use crate::plot::learning_curve_svg;

/// metrics.csv's header; README.md documents each column.
pub const CSV_HEADER: &str =
    "kind,env_step,episode,return,length,epsilon,loss,mean_q,eval_mean,eval_std,eval_min,eval_max,wall_seconds";

/// One metrics.csv row: a finished training episode or an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

impl Row {
    fn write_csv(&self, out: &mut String) {
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
                    .map(|(l, q)| (format!("{l:.6}"), format!("{q:.4}")))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "train,{env_step},{episode},{episode_return},{length},{epsilon:.4},{loss},{q},,,,,{wall_seconds:.3}"
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
                "{},{env_step},{episode},,,,,,{:.2},{:.2},{},{},{wall_seconds:.3}",
                if *is_final { "final_eval" } else { "eval" },
                result.mean,
                result.std,
                result.min,
                result.max
            ),
        };
    }
}

/// All rows of a run, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsLog {
    rows: Vec<Row>,
}

impl MetricsLog {
    /// Appends a row.
    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// The rows so far.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// metrics.csv's content.
    pub fn to_csv(&self) -> String {
        let mut out = String::with_capacity(64 * (self.rows.len() + 1));
        out.push_str(CSV_HEADER);
        out.push('\n');
        for row in &self.rows {
            row.write_csv(&mut out);
        }
        out
    }

    /// Writes metrics.csv and learning_curve.svg into `run_dir`, atomically.
    pub fn write(&self, run_dir: &Path, title: &str) -> Result<()> {
        write_bytes_atomic(&run_dir.join("metrics.csv"), self.to_csv().as_bytes())?;
        let mut train = Vec::new();
        let mut eval = Vec::new();
        for row in &self.rows {
            match row {
                Row::Episode {
                    env_step,
                    episode_return,
                    ..
                } => train.push((*env_step, *episode_return)),
                Row::Eval {
                    env_step,
                    is_final: false,
                    result,
                    ..
                } => eval.push((*env_step, result.mean, result.std)),
                Row::Eval { .. } => {}
            }
        }
        let svg = learning_curve_svg(&train, &eval, title)?;
        write_bytes_atomic(&run_dir.join("learning_curve.svg"), svg.as_bytes())
    }
}

/// summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
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
    /// Mean return of the final greedy evaluation.
    pub final_eval_mean: f64,
    /// Standard deviation of its returns.
    pub final_eval_std: f64,
    /// Lowest return.
    pub final_eval_min: f64,
    /// Highest return.
    pub final_eval_max: f64,
    /// Episodes it played.
    pub final_eval_episodes: usize,
    /// Its mean reached 475.
    pub final_eval_solved: bool,
    /// First env step at which a periodic evaluation averaged >= 475.
    pub solved_at_step: Option<u64>,
    /// Training seconds at that evaluation.
    pub solved_at_seconds: Option<f64>,
    /// The run's seed.
    pub seed: u64,
    /// The device trained on (`cpu`, `cuda:0`, ...).
    pub device: String,
    /// qnet's version.
    pub qnet_version: String,
}

impl Summary {
    /// Writes summary.json into `run_dir`, atomically.
    pub fn write(&self, run_dir: &Path) -> Result<()> {
        let mut json = serde_json::to_string_pretty(self)?;
        json.push('\n');
        write_bytes_atomic(&run_dir.join("summary.json"), json.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_a_header_and_one_line_per_row_with_every_column() {
        let mut log = MetricsLog::default();
        log.push(Row::Episode {
            env_step: 20,
            episode: 1,
            episode_return: 20.0,
            length: 20,
            epsilon: 0.998,
            loss_and_q: None,
            wall_seconds: 0.01,
        });
        log.push(Row::Episode {
            env_step: 45,
            episode: 2,
            episode_return: 25.0,
            length: 25,
            epsilon: 0.9,
            loss_and_q: Some((0.5, 1.25)),
            wall_seconds: 0.02,
        });
        log.push(Row::Eval {
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
        });
        let csv = log.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines[1], "train,20,1,20,20,0.9980,,,,,,,0.010");
        assert_eq!(
            lines[2],
            "train,45,2,25,25,0.9000,0.500000,1.2500,,,,,0.020"
        );
        assert_eq!(lines[3], "eval,50,2,,,,,,9.50,0.50,9,10,0.030");
        let columns = CSV_HEADER.split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == columns));
    }
}
