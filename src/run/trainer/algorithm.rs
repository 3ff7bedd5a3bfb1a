//! The algorithm's step, with no I/O: epsilon-greedy actions on the batched envs, each
//! transition (through the n-step windows) into the replay buffer, minibatch TD updates every
//! `train_freq` vector steps, the target network refreshed every `target_update_every` env
//! steps (DQN, Mnih et al., 2015). The tutorial's procedure acts and updates through the same
//! learner, storing into a memory of its own ([`Algorithm::collect`], [`Algorithm::fit`]).

use anyhow::Result;
use rand_pcg::Pcg64;

use super::cadence::Cadence;
use crate::config::{Config, Procedure};
use crate::env::{Envs, Resolved};
use crate::learn::agent::{Learner, UpdateStats};
use crate::learn::nstep::{NStepWindows, Step};
use crate::learn::replay::{Minibatch, Prioritization, ReplayBuffer, Transition};
use crate::learn::schedule::{beta_at, epsilon_at, lr_at};
use crate::platform::rng::{stream_rng, stream_seed, Stream};
use crate::run::preflight::Placement;

/// The learner, its replay buffer, and everything else the algorithm carries between steps.
pub struct Algorithm {
    cfg: Config,
    /// The Q-networks and their optimizer.
    pub(super) learner: Learner,
    /// The DQN's transitions.
    pub(super) replay: ReplayBuffer,
    /// Envs, RNGs, windows and counters.
    pub(super) state: AlgorithmState,
    /// Scratch: the observations acted on in a vector step, one row per env.
    obs: Vec<f32>,
    /// Scratch: the actions taken in it, one per env.
    actions: Vec<i64>,
}

/// What the algorithm carries between steps besides the learner and the replay buffer.
#[derive(Debug)]
pub struct AlgorithmState {
    /// Env steps taken, summed over envs.
    pub env_steps: u64,
    /// Batched (vector) env steps taken.
    pub vector_steps: u64,
    /// Gradient updates applied.
    pub gradient_updates: u64,
    /// Training episodes finished.
    pub episodes: u64,
    /// Tutorial iterations completed.
    pub tutorial_iterations: u64,
    /// When the target network is next updated.
    pub next_target_at: Cadence,
    /// Epsilon-greedy draws.
    pub explore_rng: Pcg64,
    /// Replay minibatch indices.
    pub replay_rng: Pcg64,
    /// The training envs, mid-episode.
    pub envs: Envs,
    /// Return so far of each env's current episode.
    pub episode_returns: Vec<f64>,
    /// The n-step windows of the training envs.
    pub nstep: NStepWindows,
}

impl AlgorithmState {
    /// The state before the first step of a run of `cfg` on `env`.
    pub fn new(cfg: &Config, env: &Resolved) -> Result<Self> {
        let n = cfg.env.n_envs;
        let mut envs = env.batch(0..n, stream_seed(cfg.seed, Stream::TrainEnvs))?;
        envs.reset_all()?;
        Ok(Self {
            env_steps: 0,
            vector_steps: 0,
            gradient_updates: 0,
            episodes: 0,
            tutorial_iterations: 0,
            next_target_at: Cadence::starting(cfg.agent.target_update_every),
            explore_rng: stream_rng(cfg.seed, Stream::Explore),
            replay_rng: stream_rng(cfg.seed, Stream::Replay),
            envs,
            episode_returns: vec![0.0; n],
            nstep: NStepWindows::new(cfg.agent.n_step, cfg.agent.gamma, n),
        })
    }
}

/// A training episode that a vector step ended.
#[derive(Debug, Clone, Copy)]
pub struct EpisodeEnd {
    /// Its number among the run's training episodes, from 1.
    pub episode: u64,
    /// Its return.
    pub episode_return: f64,
    /// Its length in env steps.
    pub length: u32,
    /// The update statistics since the last episode ended (none without an update); the
    /// first episode a step ends holds those of every update before that step.
    pub stats: Option<UpdateStats>,
}

impl Algorithm {
    /// The algorithm of `cfg` on `env` before its first step, its tensors where `placement`
    /// says.
    pub fn new(cfg: &Config, resolved: &Resolved, placement: Placement) -> Result<Self> {
        let device = placement.train;
        let env = resolved.spec();
        let learner = Learner::new(cfg, env, device, stream_seed(cfg.seed, Stream::Init))?;
        let capacity = match cfg.train.procedure {
            Procedure::Dqn => cfg.replay.capacity,
            // The tutorial keeps its own per-iteration memory.
            Procedure::Tutorial => 1,
        };
        let prioritization = cfg.replay.prioritized.then_some(Prioritization {
            alpha: cfg.replay.alpha,
            eps: cfg.replay.priority_eps,
        });
        let replay = ReplayBuffer::new(
            capacity,
            (env.obs_dim, env.n_actions),
            placement.replay,
            device,
            prioritization,
        )?;
        let n = cfg.env.n_envs;
        Ok(Self {
            cfg: cfg.clone(),
            learner,
            replay,
            state: AlgorithmState::new(cfg, resolved)?,
            obs: vec![0.0; n * env.obs_dim],
            actions: vec![0; n],
        })
    }

    /// Exploration's epsilon at this env step.
    pub fn epsilon(&self) -> f64 {
        epsilon_at(&self.cfg.exploration, self.state.env_steps)
    }

    /// The learning rate at this env step.
    fn lr(&self) -> f64 {
        lr_at(&self.cfg.optimizer, self.state.env_steps)
    }

    /// One DQN step: act and store, refresh the target network when due, learn when due.
    /// Returns the training episodes it ended.
    pub fn step(&mut self) -> Result<Vec<EpisodeEnd>> {
        let ended = self.act(self.epsilon())?;

        // Target network: refreshed on env-step boundaries, as SB3 and CleanRL do.
        let (step, every) = (self.state.env_steps, self.cfg.agent.target_update_every);
        if self.state.next_target_at.fire(step, every) {
            self.learner.update_target()?;
        }

        // Learn: gradient_steps minibatch updates every train_freq vector steps.
        if self.state.env_steps > self.cfg.replay.learning_starts
            && self.state.vector_steps % self.cfg.train.train_freq == 0
        {
            self.learn()?;
        }
        Ok(ended)
    }

    /// One vector step at `epsilon`, each completed transition into the replay buffer.
    pub fn act(&mut self, epsilon: f64) -> Result<Vec<EpisodeEnd>> {
        let replay = &mut self.replay;
        let ended = act_in_envs(
            &self.learner,
            &mut self.state,
            (&mut self.obs, &mut self.actions),
            epsilon,
            |transition| replay.push(transition),
        )?;
        Ok(self.with_stats(ended))
    }

    /// One training phase: `gradient_steps` minibatch updates, each sampled (uniformly or by
    /// priority), applied, and fed back as priorities.
    pub fn learn(&mut self) -> Result<()> {
        let (lr, beta) = (self.lr(), beta_at(&self.cfg.replay, self.state.env_steps));
        for _ in 0..self.cfg.train.gradient_steps {
            let batch =
                self.replay
                    .sample(self.cfg.replay.batch_size, &mut self.state.replay_rng, beta)?;
            self.learner.update(&batch, lr)?;
            if self.replay.is_prioritized() {
                self.replay.update_priorities(self.learner.td_errors()?)?;
            }
            self.state.gradient_updates += 1;
        }
        Ok(())
    }

    /// One vector step at `epsilon`, each completed transition appended to `memory` as a
    /// row of the replay layout (the tutorial's per-iteration memory).
    pub fn collect(&mut self, epsilon: f64, memory: &mut Vec<f32>) -> Result<Vec<EpisodeEnd>> {
        let layout = self.replay.layout();
        let ended = act_in_envs(
            &self.learner,
            &mut self.state,
            (&mut self.obs, &mut self.actions),
            epsilon,
            |transition| {
                let start = memory.len();
                memory.resize(start + layout.floats(), 0.0);
                transition.write_row(layout, &mut memory[start..]);
                Ok(())
            },
        )?;
        Ok(self.with_stats(ended))
    }

    /// Fits every row of `memory` once, in order, `batch_size` rows at a time (the
    /// tutorial's training phase).
    pub fn fit(&mut self, memory: &[f32]) -> Result<()> {
        let layout = self.replay.layout();
        let batch_rows = self.cfg.replay.batch_size * layout.floats();
        for rows in memory.chunks(batch_rows) {
            let batch = Minibatch::from_rows(rows, None, layout)?;
            self.learner.update(&batch, self.lr())?;
            self.state.gradient_updates += 1;
        }
        Ok(())
    }

    /// `ended` with the update statistics read at each end. Reading them is the loop's one
    /// host sync per episode, and lets the run notice a non-finite loss or Q-value there.
    fn with_stats(&mut self, mut ended: Vec<EpisodeEnd>) -> Vec<EpisodeEnd> {
        for end in &mut ended {
            end.stats = self.learner.take_stats();
        }
        ended
    }
}

/// One vector step: `epsilon`-greedy actions (one batched forward pass for the envs that do
/// not explore), env step, each completed transition handed to `store`. Returns the episodes
/// that ended. `scratch` holds the observations acted on and the actions, one per env.
fn act_in_envs(
    learner: &Learner,
    state: &mut AlgorithmState,
    scratch: (&mut [f32], &mut [i64]),
    epsilon: f64,
    mut store: impl FnMut(Transition<'_>) -> Result<()>,
) -> Result<Vec<EpisodeEnd>> {
    let (obs, actions) = scratch;
    obs.copy_from_slice(state.envs.obs());
    learner.act(obs, epsilon, &mut state.explore_rng, actions)?;
    state.envs.step(actions)?;
    state.env_steps += actions.len() as u64;
    state.vector_steps += 1;
    let mut ended = Vec::new();
    let d = obs.len() / actions.len().max(1);
    for (i, &action) in actions.iter().enumerate() {
        let envs = &state.envs;
        let (terminated, truncated) = (envs.terminated()[i], envs.truncated()[i]);
        let done = terminated || truncated;
        // An episode that ended bootstraps from its true last observation.
        let next = if done { envs.final_obs() } else { envs.obs() };
        let reward = envs.rewards()[i];
        let step = Step {
            obs: &obs[i * d..(i + 1) * d],
            action,
            reward,
            next_obs: &next[i * d..(i + 1) * d],
            terminated,
            truncated,
        };
        // The n-step windows hand over each transition whose return is complete.
        state.nstep.push(i, step, &mut store)?;
        state.episode_returns[i] += f64::from(reward);
        if done {
            state.episodes += 1;
            ended.push(EpisodeEnd {
                episode: state.episodes,
                episode_return: std::mem::take(&mut state.episode_returns[i]),
                length: state.envs.episode_lengths()[i],
                stats: None,
            });
        }
    }
    Ok(ended)
}
