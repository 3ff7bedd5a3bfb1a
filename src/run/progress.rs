//! Reporting a run while it trains: an indicatif bar on a terminal, plain periodic lines
//! otherwise, or nothing (`--quiet`). The mode is chosen once, at the start.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::learn::eval::{EvalResult, EPISODES_PER_BATCH};

/// Seconds between plain log lines.
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// Minimum time between bar redraws; updating more often only costs time.
const BAR_EVERY: Duration = Duration::from_millis(100);

/// What the trainer reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Status<'a> {
    /// Env steps taken.
    pub env_steps: u64,
    /// Env steps budgeted (the bar's length).
    pub total_env_steps: u64,
    /// Mean return of the last finished training episodes.
    pub recent_return: Option<f64>,
    /// Current epsilon.
    pub epsilon: f64,
    /// Mean loss of recent updates.
    pub loss: Option<f64>,
    /// The last evaluation.
    pub last_eval: Option<&'a EvalResult>,
    /// Device trained on.
    pub device: &'a str,
}

/// How progress is shown.
#[derive(Debug)]
pub enum Progress {
    /// An indicatif bar with ETA (stdout is a terminal).
    Bar {
        /// The bar.
        bar: ProgressBar,
        /// Start of the session.
        start: Instant,
        /// Last redraw.
        last: Instant,
    },
    /// A line every few seconds (stdout is a file or pipe).
    Plain {
        /// Start of the session.
        start: Instant,
        /// Last line printed.
        last: Instant,
    },
    /// Nothing.
    Quiet,
}

impl Progress {
    /// A bar when stdout is a terminal, plain lines otherwise, nothing when `quiet`.
    pub fn choose(quiet: bool, total_env_steps: u64) -> Self {
        let now = Instant::now();
        if quiet {
            Progress::Quiet
        } else if std::io::stdout().is_terminal() {
            // At most 100 columns: the bar and its fixed parts take 26, `describe` the rest.
            let style =
                ProgressStyle::with_template("{bar:12.cyan/blue} {percent:>3}% eta {eta} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar = ProgressBar::new(total_env_steps).with_style(style);
            Progress::Bar {
                bar,
                start: now,
                last: now,
            }
        } else {
            Progress::Plain {
                start: now,
                last: now,
            }
        }
    }

    /// Reports `status` if it is time to.
    pub fn update(&mut self, status: &Status<'_>) {
        match self {
            Progress::Bar { bar, start, last } => {
                if last.elapsed() >= BAR_EVERY {
                    *last = Instant::now();
                    let rate = status.env_steps as f64 / start.elapsed().as_secs_f64().max(1e-9);
                    bar.set_length(status.total_env_steps);
                    bar.set_position(status.env_steps);
                    bar.set_message(format!("{rate:.0}/s {}", describe(status)));
                }
            }
            Progress::Plain { start, last } => {
                if last.elapsed() >= PLAIN_EVERY {
                    *last = Instant::now();
                    let seconds = start.elapsed().as_secs_f64();
                    // Progress is optional: a closed stdout must not stop training.
                    let _ = writeln!(std::io::stdout(), "{}", plain_line(status, seconds));
                }
            }
            Progress::Quiet => {}
        }
    }

    /// Prints a line above the bar (or as is), unless quiet.
    pub fn line(&self, text: &str) {
        match self {
            Progress::Bar { bar, .. } => bar.println(text),
            Progress::Plain { .. } => {
                let _ = writeln!(std::io::stdout(), "{text}");
            }
            Progress::Quiet => {}
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Progress::Bar { bar, .. } = self {
            bar.finish_and_clear();
        }
    }
}

/// How a sweep's progress is shown: runs done, failed and in all.
#[derive(Debug)]
pub enum SweepProgress {
    /// An indicatif bar with ETA (stdout is a terminal).
    Bar(ProgressBar),
    /// A line every few seconds, and one per failure (stdout is a file or pipe).
    Plain {
        /// Last line printed.
        last: Instant,
    },
    /// Nothing.
    Quiet,
}

impl SweepProgress {
    /// A bar over `total` runs when stdout is a terminal, plain lines otherwise, nothing
    /// when `quiet`.
    pub fn choose(quiet: bool, total: u64) -> Self {
        if quiet {
            SweepProgress::Quiet
        } else if std::io::stdout().is_terminal() {
            let style = ProgressStyle::with_template(
                "{bar:30.cyan/blue} {pos}/{len} runs, eta {eta}: {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            SweepProgress::Bar(ProgressBar::new(total).with_style(style))
        } else {
            SweepProgress::Plain {
                last: Instant::now(),
            }
        }
    }

    /// Shows `done` of `total` runs accounted for, `failed` of them failed.
    pub fn update(&mut self, done: u64, failed: u64, total: u64) {
        let text = format!("{done}/{total} runs done, {failed} failed");
        match self {
            SweepProgress::Bar(bar) => {
                bar.set_position(done);
                bar.set_message(format!("{failed} failed"));
            }
            SweepProgress::Plain { last } => {
                if last.elapsed() >= PLAIN_EVERY || done == total {
                    *last = Instant::now();
                    let _ = writeln!(std::io::stdout(), "sweep: {text}");
                }
            }
            SweepProgress::Quiet => {}
        }
    }

    /// Prints a line above the bar (or as is), unless quiet.
    pub fn line(&self, text: &str) {
        match self {
            SweepProgress::Bar(bar) => bar.println(text),
            SweepProgress::Plain { .. } => {
                let _ = writeln!(std::io::stdout(), "{text}");
            }
            SweepProgress::Quiet => {}
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let SweepProgress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Progress of a `qnet eval` longer than one batch of episodes, on stderr (stdout keeps only
/// the result): a bar on a terminal, else a line every few seconds.
#[derive(Debug)]
pub struct EvalProgress {
    total: usize,
    bar: Option<ProgressBar>,
    last: Instant,
}

impl EvalProgress {
    /// Progress over `total` episodes; silent when they fit in one batch.
    pub fn choose(total: usize) -> Self {
        let bar = (total > EPISODES_PER_BATCH && std::io::stderr().is_terminal()).then(|| {
            let style =
                ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} episodes, eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr())
                .with_style(style)
        });
        Self {
            total,
            bar,
            last: Instant::now(),
        }
    }

    /// Shows `done` episodes scored.
    pub fn update(&mut self, done: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
        } else if self.total > EPISODES_PER_BATCH && self.last.elapsed() >= PLAIN_EVERY {
            self.last = Instant::now();
            let _ = writeln!(std::io::stderr(), "eval: {done}/{} episodes", self.total);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A plain progress line: at most 100 columns.
fn plain_line(status: &Status<'_>, seconds: f64) -> String {
    format!(
        "step {}/{} {:.0}/s {}",
        status.env_steps,
        status.total_env_steps,
        status.env_steps as f64 / seconds.max(1e-9),
        describe(status)
    )
}

/// The state of training in a few short fields (the loss in scientific notation, so that its
/// width does not depend on its size).
fn describe(status: &Status<'_>) -> String {
    let mut text = String::new();
    if let Some(ret) = status.recent_return {
        text.push_str(&format!("ret {ret:.1} "));
    }
    text.push_str(&format!("eps {:.3} ", status.epsilon));
    if let Some(loss) = status.loss {
        text.push_str(&format!("loss {loss:.2e} "));
    }
    if let Some(eval) = status.last_eval {
        text.push_str(&format!("eval {:.1}±{:.1} ", eval.mean, eval.std));
    }
    text.push_str(status.device);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_names_every_figure() {
        let eval = EvalResult {
            episodes: 10,
            mean: 480.0,
            std: 3.0,
            min: 470.0,
            max: 500.0,
        };
        let text = describe(&Status {
            env_steps: 10,
            total_env_steps: 100,
            recent_return: Some(42.0),
            epsilon: 0.5,
            loss: Some(0.25),
            last_eval: Some(&eval),
            device: "cpu",
        });
        assert_eq!(text, "ret 42.0 eps 0.500 loss 2.50e-1 eval 480.0±3.0 cpu");
    }

    /// The widest line a run prints (returns within +-9999.9, 100 million steps) fits in 100
    /// columns; so does the bar (26 columns of bar, percentage and ETA, then the rate and the
    /// same description).
    #[test]
    fn progress_fits_in_100_columns() {
        let eval = EvalResult {
            episodes: 100,
            mean: -9999.9,
            std: 9999.9,
            min: 0.0,
            max: 0.0,
        };
        let widest = Status {
            env_steps: 100_000_000,
            total_env_steps: 100_000_000,
            recent_return: Some(-9999.9),
            epsilon: 1.0,
            loss: Some(-123456.0),
            last_eval: Some(&eval),
            device: "cuda:15",
        };
        // Ten million steps a second: beyond what one process reaches.
        let line = plain_line(&widest, 10.0);
        assert!(
            line.chars().count() <= 100,
            "{} columns: {line}",
            line.chars().count()
        );
        let bar =
            12 + " 100% eta 10h ".len() + "10000000/s ".len() + describe(&widest).chars().count();
        assert!(bar <= 100, "{bar} columns");
    }
}
