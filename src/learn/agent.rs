//! The DQN learner: online and target Q-networks, the TD update and the optimizer, behind one
//! seam whose kernel is private to it.
//!
//! Two kernels compute the same update, each written once:
//! - `agent/ops.rs`: libtorch ops on the network's device (either [`crate::learn::qfunction`]
//!   implementation, any device);
//! - `agent/host.rs`: the host kernel, for the fast network on the CPU where libtorch brings a BLAS:
//!   the same arithmetic on Rust-owned buffers, without libtorch's per-op dispatch.
//!
//! Both compute the TD target as the paper writes it,
//! `y = r + gamma^k * (1 - terminated) * Q_target(s', a')`, where `a'` is the target network's
//! argmax (or the online network's, for Double DQN) and `k` the transition's number of steps.
//! A truncated transition keeps its bootstrap (its `s'` is the true last observation). The
//! tests in `agent/tests.rs` hold the two kernels together.

mod host;
mod ops;
#[cfg(test)]
mod tests;

use std::fmt;

use anyhow::{bail, Result};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::config::{Config, Implementation, Loss, OptimizerKind};
use crate::env::EnvSpec;
use crate::learn::optim::AdamConfig;
use crate::learn::qfunction::{HostNet, NetworkSpec};
use crate::learn::replay::Minibatch;
use crate::learn::state::{Checkpointed, Part};

/// How an update turns a minibatch into a gradient step: the same for both kernels.
#[derive(Debug, Clone, Copy)]
struct UpdateRule {
    /// Double DQN: the online network chooses `a'`, the target network values it.
    double_dqn: bool,
    /// The loss of the TD error.
    loss: Loss,
    /// Clip the gradient's global L2 norm to this before the Adam step.
    max_grad_norm: Option<f64>,
    /// Adam's hyperparameters.
    adam: AdamConfig,
}

/// What a kernel does for the learner.
trait Kernel: fmt::Debug {
    /// What computes the updates, for reports.
    fn name(&self) -> &'static str;
    /// The online network's description.
    fn spec(&self) -> &NetworkSpec;
    /// The online network's parameters, flat, as a tensor the caller may keep.
    fn parameters(&self) -> Result<Tensor>;
    /// True when every online parameter is finite.
    fn all_finite(&self) -> bool;
    /// The online network's greedy actions for `actions.len()` observations `obs`.
    fn greedy(&self, obs: &[f32], actions: &mut [i64]) -> Result<()>;
    /// One gradient step of learning rate `lr` on the TD loss of `batch`; adds the loss and
    /// mean Q(s, a) to the statistics' sums.
    fn update(&mut self, batch: &Minibatch<'_>, lr: f64) -> Result<()>;
    /// The TD errors `Q(s, a) - y` of the last update, in host memory.
    fn td_errors(&mut self) -> Result<&[f32]>;
    /// `target = tau * online + (1 - tau) * target` (a copy for `tau >= 1`).
    fn refresh_target(&mut self, tau: f64) -> Result<()>;
    /// The statistics' sums: [loss, mean Q(s, a)].
    fn stat_sums(&self) -> [f32; 2];
    /// Sets the statistics' sums (to zero after a read, or to what a checkpoint held).
    fn set_stat_sums(&mut self, sums: [f32; 2]);
    /// Adam updates so far.
    fn adam_steps(&self) -> u64;
    /// Writes the online and target parameters and Adam's moments into `part`.
    fn save(&self, part: &mut Part) -> Result<()>;
    /// Restores what [`Kernel::save`] wrote, and Adam's step count.
    fn load(&mut self, part: &Part, adam_steps: u64) -> Result<()>;
    /// The gradient of the last update, flat (for tests).
    #[cfg(test)]
    fn gradient(&self) -> Result<Tensor>;
}

/// The learner: a kernel chosen at construction, and the statistics' update count.
#[derive(Debug)]
pub struct Learner {
    kernel: Box<dyn Kernel>,
    /// Floats per observation and number of actions.
    obs_dim: usize,
    n_actions: usize,
    tau: f64,
    stat_updates: u64,
}

/// Mean TD loss and mean Q(s, a) over the updates since the last read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateStats {
    /// Mean loss.
    pub loss: f64,
    /// Mean of Q(s, a) over the minibatches.
    pub mean_q: f64,
}

impl Learner {
    /// Networks for `env` initialised from libtorch's generator seeded with `init_seed`; the
    /// host kernel trains the fast network on the CPU where libtorch brings a BLAS.
    pub fn new(cfg: &Config, env: &EnvSpec, device: Device, init_seed: u64) -> Result<Self> {
        Self::build(cfg, env, device, init_seed, true)
    }

    /// [`Learner::new`], with the host kernel allowed or not.
    fn build(
        cfg: &Config,
        env: &EnvSpec,
        device: Device,
        init_seed: u64,
        host_allowed: bool,
    ) -> Result<Self> {
        let spec = NetworkSpec::new(&cfg.network, env.obs_dim as i64, env.n_actions as i64)?;
        let rule = UpdateRule {
            double_dqn: cfg.agent.double_dqn,
            loss: cfg.agent.loss,
            max_grad_norm: cfg.optimizer.max_grad_norm,
            adam: match cfg.optimizer.kind {
                OptimizerKind::Adam => AdamConfig {
                    beta1: cfg.optimizer.beta1,
                    beta2: cfg.optimizer.beta2,
                    eps: cfg.optimizer.eps,
                },
            },
        };
        let with_target = cfg.agent.target_update_every > 0;
        tch::manual_seed(init_seed as i64);
        let host = match cfg.network.implementation {
            Implementation::Fast if host_allowed => HostNet::new(&spec, device),
            _ => None,
        };
        let kernel: Box<dyn Kernel> = match host {
            Some(net) => Box::new(host::HostKernel::new(spec, net, rule, with_target)?),
            None => Box::new(ops::OpsKernel::new(
                &cfg.network,
                spec,
                device,
                rule,
                with_target,
            )?),
        };
        Ok(Self {
            kernel,
            obs_dim: env.obs_dim,
            n_actions: env.n_actions,
            tau: cfg.agent.tau,
            stat_updates: 0,
        })
    }

    /// What computes the updates: `host kernel` (BLAS on Rust-owned buffers) or `libtorch
    /// ops` (the network's `implementation` on its device).
    pub fn kernel(&self) -> &'static str {
        self.kernel.name()
    }

    /// The description of the network being trained.
    pub fn spec(&self) -> &NetworkSpec {
        self.kernel.spec()
    }

    /// The parameters of the network being trained, flat, as a tensor (for model files and
    /// the best model's copy).
    pub fn parameters(&self) -> Result<Tensor> {
        self.kernel.parameters()
    }

    /// True when every parameter of the online network is finite.
    pub fn online_is_finite(&self) -> bool {
        self.kernel.all_finite()
    }

    /// Greedy actions for the `actions.len()` observations `obs` (host memory, the env's
    /// observation size each), into `actions`.
    pub fn greedy_actions(&self, obs: &[f32], actions: &mut [i64]) -> Result<()> {
        if obs.len() != actions.len() * self.obs_dim {
            bail!(
                "{} observation values for {} actions of {}-value observations",
                obs.len(),
                actions.len(),
                self.obs_dim
            );
        }
        self.kernel.greedy(obs, actions)
    }

    /// Epsilon-greedy actions for the flat observations of `actions.len()` envs.
    ///
    /// Each env draws its coin (and, when exploring, its random action) from `rng` in env
    /// order, so the random stream does not depend on the network; the greedy pass runs only
    /// when some env acts greedily.
    pub fn act(
        &self,
        obs: &[f32],
        epsilon: f64,
        rng: &mut impl Rng,
        actions: &mut [i64],
    ) -> Result<()> {
        let mut any_greedy = false;
        for action in actions.iter_mut() {
            *action = if rng.random::<f64>() < epsilon {
                rng.random_range(0..self.n_actions as i64)
            } else {
                any_greedy = true;
                -1
            };
        }
        if any_greedy {
            let mut greedy = vec![0i64; actions.len()];
            self.greedy_actions(obs, &mut greedy)?;
            for (action, greedy) in actions.iter_mut().zip(greedy) {
                if *action < 0 {
                    *action = greedy;
                }
            }
        }
        Ok(())
    }

    /// One gradient step of learning rate `lr` on the TD loss of `batch`.
    pub fn update(&mut self, batch: &Minibatch<'_>, lr: f64) -> Result<()> {
        self.kernel.update(batch, lr)?;
        self.stat_updates += 1;
        Ok(())
    }

    /// The TD errors `Q(s, a) - y` of the last update (what prioritized replay turns into
    /// priorities), copied to host memory when asked for.
    pub fn td_errors(&mut self) -> Result<&[f32]> {
        self.kernel.td_errors()
    }

    /// Moves the target network toward the online one: a copy for `tau == 1`, else
    /// `target = tau * online + (1 - tau) * target`.
    pub fn update_target(&mut self) -> Result<()> {
        self.kernel.refresh_target(self.tau)
    }

    /// Mean loss and Q(s, a) since the last call; `None` when no update ran since.
    pub fn take_stats(&mut self) -> Option<UpdateStats> {
        if self.stat_updates == 0 {
            return None;
        }
        let n = self.stat_updates as f64;
        let [loss_sum, q_sum] = self.kernel.stat_sums();
        let stats = UpdateStats {
            loss: f64::from(loss_sum) / n,
            mean_q: f64::from(q_sum) / n,
        };
        self.kernel.set_stat_sums([0.0; 2]);
        self.stat_updates = 0;
        Some(stats)
    }
}

/// What a checkpoint keeps of a learner besides its arrays.
#[derive(Debug, Serialize, Deserialize)]
struct LearnerState {
    /// Adam updates so far (its bias correction).
    adam_steps: u64,
    /// Updates summed in the pending statistics, not yet in a metrics row.
    stat_updates: u64,
}

/// The online network's parameters in a checkpoint part.
const ONLINE: &str = "online";
/// The target network's parameters.
const TARGET: &str = "target";
/// Adam's first moments.
const ADAM_M: &str = "adam.m";
/// Adam's second moments.
const ADAM_V: &str = "adam.v";
/// The pending statistics: [loss sum, Q sum].
const STATS: &str = "stats";

impl Checkpointed for Learner {
    fn save_part(&mut self) -> Result<Part> {
        let mut part = Part::new(&LearnerState {
            adam_steps: self.kernel.adam_steps(),
            stat_updates: self.stat_updates,
        })?;
        self.kernel.save(&mut part)?;
        part.f32s
            .insert(STATS.to_owned(), self.kernel.stat_sums().to_vec());
        Ok(part)
    }

    fn load_part(&mut self, part: &Part) -> Result<()> {
        let state: LearnerState = part.state()?;
        self.kernel.load(part, state.adam_steps)?;
        match part.f32s(STATS)? {
            &[loss_sum, q_sum] => self.kernel.set_stat_sums([loss_sum, q_sum]),
            other => bail!("its 'stats' array has {} values, not 2", other.len()),
        }
        self.stat_updates = state.stat_updates;
        Ok(())
    }
}

/// Checks that a checkpoint has a target network exactly when the config does.
fn check_target(config_has_one: bool, checkpoint_has_one: bool) -> Result<()> {
    match (config_has_one, checkpoint_has_one) {
        (true, false) => bail!("the config has a target network but the checkpoint has none"),
        (false, true) => bail!("the checkpoint has a target network but the config has none"),
        _ => Ok(()),
    }
}
