//! The training loop: act, store, update, evaluate, checkpoint, report.
//!
//! Two procedures share this module's bookkeeping: `dqn` (replay buffer, minibatches,
//! target network) and `tutorial` (the original tutorial's collect-then-fit loop, kept
//! for comparison). All state that the loop carries from one step to the next lives in
//! [`LoopState`] or in the learner and replay buffer, which is what a checkpoint saves.

mod dqn;
mod state;
mod tutorial;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Result;
use tch::{Device, Tensor};

use crate::agent::Learner;
use crate::config::{Config, Procedure};
use crate::device;
use crate::env::OBS_DIM;
use crate::eval::{self, EvalResult, Policy};
use crate::metrics::{Row, Summary};
use crate::progress::{Progress, Status};
use crate::replay::{ReplayBuffer, Transition, ROW};
use crate::rng::{stream_seed, Stream};
use crate::schedule::epsilon_at;

pub use state::LoopState;

/// Finished training episodes averaged for the progress display.
const RECENT_EPISODES: usize = 20;

/// How a training session ended.
#[derive(Debug)]
pub enum Outcome {
    /// The run is complete; its summary.
    Finished(Box<Summary>),
    /// A stop was requested (Ctrl-C / SIGTERM); a checkpoint was written at this env step.
    Interrupted {
        /// Env steps taken when it stopped.
        env_steps: u64,
    },
}

/// Where [`Trainer::collect_step`] puts the transitions it collects.
enum Sink<'m> {
    /// The replay buffer (`dqn`).
    Replay,
    /// A flat list of `ROW`-float rows (the `tutorial`'s per-iteration memory).
    Memory(&'m mut Vec<f32>),
}

/// A training run in progress, on one device, writing into one run directory.
pub struct Trainer<'a> {
    cfg: Config,
    device: Device,
    learner: Learner,
    replay: ReplayBuffer,
    state: LoopState,
    run_dir: PathBuf,
    progress: &'a mut Progress,
    stop: &'a AtomicBool,
    session_start: Instant,
    seconds_before: f64,
}

impl<'a> Trainer<'a> {
    /// A fresh run of `cfg` on `device`, writing into `run_dir`.
    pub fn new(
        cfg: Config,
        device: Device,
        run_dir: &Path,
        progress: &'a mut Progress,
        stop: &'a AtomicBool,
    ) -> Result<Self> {
        let learner = Learner::new(&cfg, device, stream_seed(cfg.seed, Stream::Init))?;
        let replay_device = device::resolve_replay(cfg.replay.device, device)?;
        let capacity = match cfg.train.procedure {
            Procedure::Dqn => cfg.replay.capacity,
            // The tutorial keeps its own per-iteration memory.
            Procedure::Tutorial => 1,
        };
        let replay = ReplayBuffer::new(capacity, replay_device, device)?;
        let state = LoopState::new(&cfg);
        Ok(Self {
            cfg,
            device,
            learner,
            replay,
            state,
            run_dir: run_dir.to_path_buf(),
            progress,
            stop,
            session_start: Instant::now(),
            seconds_before: 0.0,
        })
    }

    /// Runs until the budget is spent, the task is solved (with `eval.stop_when_solved`),
    /// or a stop is requested.
    pub fn run(mut self) -> Result<Outcome> {
        self.session_start = Instant::now();
        self.seconds_before = self.state.train_seconds;
        self.progress.line(&format!(
            "training {} on {} ({} procedure)",
            self.cfg.experiment,
            device::name(self.device),
            match self.cfg.train.procedure {
                Procedure::Dqn => "dqn",
                Procedure::Tutorial => "tutorial",
            }
        ));
        let stopped = match self.cfg.train.procedure {
            Procedure::Dqn => self.run_dqn()?,
            Procedure::Tutorial => self.run_tutorial()?,
        };
        self.progress.finish();
        if stopped {
            self.save_checkpoint()?;
            return Ok(Outcome::Interrupted {
                env_steps: self.state.env_steps,
            });
        }
        self.finish()
            .map(|summary| Outcome::Finished(Box::new(summary)))
    }

    /// Seconds of training so far, over all sessions.
    fn seconds(&self) -> f64 {
        self.seconds_before + self.session_start.elapsed().as_secs_f64()
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn epsilon(&self) -> f64 {
        epsilon_at(&self.cfg.exploration, self.state.env_steps)
    }

    /// One vector step: epsilon-greedy actions (one batched forward pass for the envs that do
    /// not explore), env step, each transition into `sink`, finished episodes recorded.
    /// Returns how many episodes ended. `obs` and `actions` are scratch space, one per env.
    fn collect_step(
        &mut self,
        obs: &mut [f32],
        actions: &mut [i64],
        mut sink: Sink<'_>,
    ) -> Result<usize> {
        obs.copy_from_slice(self.state.envs.obs());
        let epsilon = self.epsilon();
        self.learner
            .act(obs, epsilon, &mut self.state.explore_rng, actions)?;
        self.state.envs.step(actions)?;
        let n = actions.len();
        self.state.env_steps += n as u64;
        self.state.vector_steps += 1;
        let mut ended = 0;
        for i in 0..n {
            let envs = &self.state.envs;
            let (terminated, truncated) = (envs.terminated()[i], envs.truncated()[i]);
            let done = terminated || truncated;
            // An episode that ended bootstraps from its true last observation.
            let next = if done { envs.final_obs() } else { envs.obs() };
            let reward = envs.rewards()[i];
            let transition = Transition {
                obs: &obs[i * OBS_DIM..(i + 1) * OBS_DIM],
                next_obs: &next[i * OBS_DIM..(i + 1) * OBS_DIM],
                action: actions[i],
                reward,
                terminated,
                truncated,
            };
            match &mut sink {
                Sink::Replay => self.replay.push(transition),
                Sink::Memory(rows) => {
                    let start = rows.len();
                    rows.resize(start + ROW, 0.0);
                    transition.write_row(&mut rows[start..]);
                }
            }
            self.state.episode_returns[i] += f64::from(reward);
            if done {
                let length = self.state.envs.episode_lengths()[i];
                let episode_return = std::mem::take(&mut self.state.episode_returns[i]);
                self.end_episode(episode_return, length);
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Records a finished training episode of `length` steps and return `episode_return`.
    fn end_episode(&mut self, episode_return: f64, length: u32) {
        self.state.episodes += 1;
        let stats = self.learner.take_stats();
        if let Some(stats) = stats {
            self.state.last_loss = Some(stats.loss);
        }
        self.state.push_recent(episode_return, RECENT_EPISODES);
        let row = Row::Episode {
            env_step: self.state.env_steps,
            episode: self.state.episodes,
            episode_return,
            length,
            epsilon: self.epsilon(),
            loss_and_q: stats.map(|s| (s.loss, s.mean_q)),
            wall_seconds: self.seconds(),
        };
        self.state.metrics.push(row);
    }

    /// Runs the periodic evaluation if one is due; returns true when training should stop
    /// because it is solved.
    fn maybe_evaluate(&mut self) -> Result<bool> {
        let every = self.cfg.eval.every;
        if every == 0 || self.state.env_steps < self.state.next_eval_at {
            return Ok(false);
        }
        self.state.next_eval_at = (self.state.env_steps / every + 1) * every;
        let result = eval::evaluate(
            &GreedyPolicy(&self.learner),
            self.cfg.eval.episodes,
            eval::periodic_eval_seed(self.cfg.seed),
            self.cfg.env.max_episode_steps,
        )?;
        let seconds = self.seconds();
        if result.solved() && self.state.solved_at_step.is_none() {
            self.state.solved_at_step = Some(self.state.env_steps);
            self.state.solved_at_seconds = Some(seconds);
        }
        self.state.metrics.push(Row::Eval {
            env_step: self.state.env_steps,
            episode: self.state.episodes,
            is_final: false,
            result: result.clone(),
            wall_seconds: seconds,
        });
        let solved = result.solved();
        self.state.last_eval = Some(result);
        Ok(solved && self.cfg.eval.stop_when_solved)
    }

    /// Writes a checkpoint if one is due.
    fn maybe_checkpoint(&mut self) -> Result<()> {
        let every = self.cfg.checkpoint.every;
        if every > 0 && self.state.env_steps >= self.state.next_checkpoint_at {
            self.state.next_checkpoint_at = (self.state.env_steps / every + 1) * every;
            self.save_checkpoint()?;
        }
        Ok(())
    }

    fn report(&mut self) {
        let device = device::name(self.device);
        let total = match self.cfg.train.procedure {
            Procedure::Dqn => self.cfg.train.total_env_steps,
            Procedure::Tutorial => self.state.env_steps.max(1),
        };
        let status = Status {
            env_steps: self.state.env_steps,
            total_env_steps: total,
            recent_return: self.state.recent_mean(),
            epsilon: self.epsilon(),
            loss: self.state.last_loss,
            last_eval: self.state.last_eval.as_ref(),
            device: &device,
        };
        self.progress.update(&status);
    }

    /// Final evaluation, model files, records; the run is then complete.
    fn finish(mut self) -> Result<Summary> {
        let result = eval::evaluate(
            &GreedyPolicy(&self.learner),
            self.cfg.eval.final_episodes,
            eval::final_eval_seed(self.cfg.seed),
            self.cfg.env.max_episode_steps,
        )?;
        self.state.train_seconds = self.seconds();
        self.state.metrics.push(Row::Eval {
            env_step: self.state.env_steps,
            episode: self.state.episodes,
            is_final: true,
            result: result.clone(),
            wall_seconds: self.state.train_seconds,
        });
        self.state.finished = true;
        let summary = self.summary(&result);
        self.save_checkpoint()?;
        summary.write(&self.run_dir)?;
        Ok(summary)
    }

    fn summary(&self, result: &EvalResult) -> Summary {
        let seconds = self.state.train_seconds;
        Summary {
            experiment: self.cfg.experiment.clone(),
            env_steps: self.state.env_steps,
            gradient_updates: self.state.gradient_updates,
            episodes: self.state.episodes,
            train_seconds: seconds,
            env_steps_per_second: self.state.env_steps as f64 / seconds.max(1e-9),
            final_eval_mean: result.mean,
            final_eval_std: result.std,
            final_eval_min: result.min,
            final_eval_max: result.max,
            final_eval_episodes: result.episodes,
            final_eval_solved: result.solved(),
            solved_at_step: self.state.solved_at_step,
            solved_at_seconds: self.state.solved_at_seconds,
            seed: self.cfg.seed,
            device: device::name(self.device),
            qnet_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// The learner's online network acting greedily.
struct GreedyPolicy<'a>(&'a Learner);

impl Policy for GreedyPolicy<'_> {
    fn greedy_actions(&self, obs: &Tensor) -> Result<Tensor> {
        Ok(self.0.greedy(obs))
    }

    fn device(&self) -> Device {
        self.0.online().device()
    }
}
