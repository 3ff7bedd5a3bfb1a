//! The DQN learner: online and target Q-networks, the TD update and the optimizer.

use anyhow::{bail, Context, Result};
use rand::{Rng, RngExt};
use tch::{Device, Kind, Reduction, Tensor};

use crate::config::{Config, Loss};
use crate::env::{N_ACTIONS, OBS_DIM};
use crate::optim::{Adam, AdamConfig};
use crate::qnet::QNetwork;
use crate::replay::Batch;

/// Online network, optional target network, Adam, and running update statistics.
#[derive(Debug)]
pub struct Learner {
    online: QNetwork,
    target: Option<QNetwork>,
    adam: Adam,
    gamma: f64,
    double_dqn: bool,
    loss: Loss,
    tau: f64,
    max_grad_norm: Option<f64>,
    loss_sum: Tensor,
    q_sum: Tensor,
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
    /// Networks initialised from libtorch's generator seeded with `init_seed`.
    pub fn new(cfg: &Config, device: Device, init_seed: u64) -> Result<Self> {
        tch::manual_seed(init_seed as i64);
        let online = QNetwork::new(&cfg.network, OBS_DIM as i64, N_ACTIONS as i64, device)?;
        let target = if cfg.agent.target_update_every > 0 {
            let target = QNetwork::new(&cfg.network, OBS_DIM as i64, N_ACTIONS as i64, device)?;
            target.load_flat(online.flat())?;
            Some(target)
        } else {
            None
        };
        let adam = Adam::new(
            AdamConfig {
                lr: cfg.optimizer.lr,
                beta1: cfg.optimizer.beta1,
                beta2: cfg.optimizer.beta2,
                eps: cfg.optimizer.eps,
            },
            online.flat(),
        )?;
        let zero = || Tensor::zeros([], (Kind::Float, device));
        Ok(Self {
            online,
            target,
            adam,
            gamma: cfg.agent.gamma,
            double_dqn: cfg.agent.double_dqn,
            loss: cfg.agent.loss,
            tau: cfg.agent.tau,
            max_grad_norm: cfg.optimizer.max_grad_norm,
            loss_sum: zero(),
            q_sum: zero(),
            stat_updates: 0,
        })
    }

    /// The network being trained.
    pub fn online(&self) -> &QNetwork {
        &self.online
    }

    /// The target network, if the config has one.
    pub fn target(&self) -> Option<&QNetwork> {
        self.target.as_ref()
    }

    /// True when every parameter of the online network is finite (one device sync).
    pub fn online_is_finite(&self) -> bool {
        tch::no_grad(|| self.online.flat().isfinite().all().int64_value(&[]) != 0)
    }

    /// The optimizer.
    pub fn adam(&self) -> &Adam {
        &self.adam
    }

    /// The optimizer, for restoring its state.
    pub fn adam_mut(&mut self) -> &mut Adam {
        &mut self.adam
    }

    /// Greedy actions `[B]` (int64, on the network's device) for observations `[B, OBS_DIM]`.
    pub fn greedy(&self, obs: &Tensor) -> Tensor {
        tch::no_grad(|| self.online.forward(obs).argmax(1, false))
    }

    /// Epsilon-greedy actions for the flat observations of `actions.len()` envs.
    ///
    /// Each env draws its coin (and, when exploring, its random action) from `rng` in env
    /// order, so the random stream does not depend on the network; the batched forward
    /// pass runs only when some env acts greedily, and brings one small tensor back.
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
                rng.random_range(0..N_ACTIONS as i64)
            } else {
                any_greedy = true;
                -1
            };
        }
        if any_greedy {
            let n = actions.len();
            let obs = Tensor::from_slice(obs)
                .view([n as i64, OBS_DIM as i64])
                .to_device(self.online.device());
            let greedy = Vec::<i64>::try_from(self.greedy(&obs).to_device(Device::Cpu))
                .context("reading greedy actions")?;
            for (action, greedy) in actions.iter_mut().zip(greedy) {
                if *action < 0 {
                    *action = greedy;
                }
            }
        }
        Ok(())
    }

    /// One gradient step on the TD error of `batch`.
    ///
    /// Target: `r + gamma * (1 - terminated) * Q_target(s', a*)` with `a*` the target net's
    /// argmax, or the online net's for Double DQN. A truncated transition keeps its
    /// bootstrap (its `s'` is the true last observation); a terminated one does not.
    pub fn update(&mut self, batch: &Batch) -> Result<()> {
        let td_target = tch::no_grad(|| {
            let bootstrap_net = self.target.as_ref().unwrap_or(&self.online);
            let next_q = bootstrap_net.forward(&batch.next_obs);
            let next_value = if self.double_dqn {
                let next_action = self.online.forward(&batch.next_obs).argmax(1, true);
                next_q.gather(1, &next_action, false).squeeze_dim(1)
            } else {
                next_q.amax(1, false)
            };
            let discount = &batch.terminated * -self.gamma + self.gamma;
            batch.rewards.addcmul(&discount, &next_value)
        });
        // Q(s, a) for the actions taken, and dLoss/dQ(s, a) for the mean over the batch.
        let (q_all, trace) = self.online.forward_traced(&batch.obs);
        let q = q_all.gather(1, &batch.actions, false).squeeze_dim(1);
        let error = &q - &td_target;
        let scale = 1.0 / batch.actions.size()[0] as f64;
        let (loss, grad_q) = match self.loss {
            Loss::Mse => (error.square().mean(Kind::Float), &error * (2.0 * scale)),
            // Huber with delta 1: quadratic inside |error| < 1, linear outside.
            Loss::Huber => (
                q.huber_loss(&td_target, Reduction::Mean, 1.0),
                error.clamp(-1.0, 1.0) * scale,
            ),
        };
        let grad_output = q_all
            .zeros_like()
            .scatter(1, &batch.actions, &grad_q.unsqueeze(1));
        self.online.backward(&trace, &grad_output);
        self.adam.step(
            self.online.flat(),
            self.online.flat_grad(),
            self.max_grad_norm,
        )?;
        tch::no_grad(|| {
            let _ = self.loss_sum.g_add_(&loss);
            let _ = self.q_sum.g_add_(&q.mean(Kind::Float));
        });
        self.stat_updates += 1;
        Ok(())
    }

    /// Moves the target network toward the online one: a copy for `tau == 1`, else
    /// `target = tau * online + (1 - tau) * target`.
    pub fn update_target(&mut self) {
        if let Some(target) = &self.target {
            tch::no_grad(|| {
                let mut flat = target.flat().shallow_clone();
                if self.tau >= 1.0 {
                    flat.copy_(self.online.flat());
                } else {
                    let _ = flat.lerp_(self.online.flat(), self.tau);
                }
            });
        }
    }

    /// Mean loss and Q(s, a) since the last call; `None` when no update ran since.
    pub fn take_stats(&mut self) -> Option<UpdateStats> {
        if self.stat_updates == 0 {
            return None;
        }
        let n = self.stat_updates as f64;
        let stats = UpdateStats {
            loss: self.loss_sum.double_value(&[]) / n,
            mean_q: self.q_sum.double_value(&[]) / n,
        };
        let _ = self.loss_sum.zero_();
        let _ = self.q_sum.zero_();
        self.stat_updates = 0;
        Some(stats)
    }

    /// The running update statistics not yet read: (loss sum, Q sum, updates), for checkpoints.
    pub fn pending_stats(&self) -> (f32, f32, u64) {
        (
            self.loss_sum.double_value(&[]) as f32,
            self.q_sum.double_value(&[]) as f32,
            self.stat_updates,
        )
    }

    /// Restores statistics saved with [`Learner::pending_stats`].
    pub fn restore_stats(&mut self, loss_sum: f32, q_sum: f32, updates: u64) {
        let _ = self.loss_sum.fill_(f64::from(loss_sum));
        let _ = self.q_sum.fill_(f64::from(q_sum));
        self.stat_updates = updates;
    }

    /// Restores parameters and optimizer state saved from an identically configured learner.
    pub fn restore(
        &mut self,
        online: &Tensor,
        target: Option<&Tensor>,
        adam_m: &Tensor,
        adam_v: &Tensor,
        adam_steps: u64,
    ) -> Result<()> {
        self.online.load_flat(online)?;
        match (&self.target, target) {
            (Some(net), Some(flat)) => net.load_flat(flat)?,
            (None, None) => {}
            (Some(_), None) => bail!("the config has a target network but the checkpoint has none"),
            (None, Some(_)) => bail!("the checkpoint has a target network but the config has none"),
        }
        self.adam.restore(adam_m, adam_v, adam_steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn batch(terminated: f32, reward: f32) -> Batch {
        Batch {
            obs: Tensor::from_slice(&[0.01f32, 0.0, 0.02, 0.0]).view([1, 4]),
            next_obs: Tensor::from_slice(&[0.02f32, 0.1, 0.01, -0.1]).view([1, 4]),
            actions: Tensor::from_slice(&[1i64]).view([1, 1]),
            rewards: Tensor::from_slice(&[reward]),
            terminated: Tensor::from_slice(&[terminated]),
        }
    }

    fn learner(lr: f64) -> Result<Learner> {
        let mut cfg = Config::default();
        cfg.optimizer.lr = lr;
        cfg.agent.gamma = 0.9;
        Learner::new(&cfg, Device::Cpu, 3)
    }

    /// With a repeated transition, Q(s, a) converges to its TD target: r alone when
    /// terminated, r + gamma * max Q_target(s') when not (a truncated step keeps that).
    #[test]
    fn q_converges_to_the_td_target_and_termination_stops_the_bootstrap() -> Result<()> {
        for terminated in [1.0f32, 0.0] {
            let mut learner = learner(1e-2)?;
            let b = batch(terminated, 1.0);
            let next_max = learner.target().map_or(0.0, |t| {
                tch::no_grad(|| t.forward(&b.next_obs).max().double_value(&[]))
            });
            for _ in 0..500 {
                learner.update(&b)?;
            }
            let q = tch::no_grad(|| learner.online().forward(&b.obs).double_value(&[0, 1]));
            let expected = 1.0 + 0.9 * f64::from(1.0 - terminated) * next_max;
            assert!(
                (q - expected).abs() < 1e-3,
                "terminated={terminated}: q {q} vs {expected}"
            );
        }
        Ok(())
    }

    /// The update's hand-derived gradient equals autograd's for both losses.
    #[test]
    fn update_gradient_matches_autograd() -> Result<()> {
        for loss in [Loss::Mse, Loss::Huber] {
            let mut cfg = Config::default();
            cfg.agent.loss = loss;
            cfg.optimizer.lr = 1e-3;
            let mut learner = Learner::new(&cfg, Device::Cpu, 9)?;
            tch::manual_seed(4);
            let n = 16;
            let b = Batch {
                obs: Tensor::randn([n, 4], (Kind::Float, Device::Cpu)),
                next_obs: Tensor::randn([n, 4], (Kind::Float, Device::Cpu)),
                actions: Tensor::randint(2, [n, 1], (Kind::Int64, Device::Cpu)),
                rewards: Tensor::ones([n], (Kind::Float, Device::Cpu)) * 3.0,
                terminated: Tensor::zeros([n], (Kind::Float, Device::Cpu)),
            };
            // The default config: a target network, no Double DQN, so r + gamma max Q_target.
            let td_target = tch::no_grad(|| {
                let next = learner
                    .target()
                    .map(|t| t.forward(&b.next_obs).amax(1, false));
                &b.rewards + next.unwrap_or_else(|| b.rewards.zeros_like()) * cfg.agent.gamma
            });
            let q = learner
                .online()
                .forward(&b.obs)
                .gather(1, &b.actions, false)
                .squeeze_dim(1);
            let reference = match loss {
                Loss::Mse => q.mse_loss(&td_target, Reduction::Mean),
                Loss::Huber => q.huber_loss(&td_target, Reduction::Mean, 1.0),
            };
            let variables: Vec<Tensor> = learner
                .online()
                .variables()
                .iter()
                .map(Tensor::shallow_clone)
                .collect();
            let autograd = Tensor::run_backward(&[reference], &variables, false, false);
            let autograd = Tensor::cat(
                &autograd
                    .iter()
                    .map(|g| g.flatten(0, -1))
                    .collect::<Vec<_>>(),
                0,
            );
            learner.update(&b)?;
            let diff = (learner.online().flat_grad() - &autograd)
                .abs()
                .max()
                .double_value(&[]);
            assert!(diff < 1e-5, "{loss:?}: gradient differs by {diff}");
        }
        Ok(())
    }

    #[test]
    fn target_network_moves_only_when_updated() -> Result<()> {
        let mut learner = learner(1e-2)?;
        let before = learner.target().map(|t| t.flat().copy());
        learner.update(&batch(0.0, 1.0))?;
        let target = learner.target().map(|t| t.flat().copy());
        assert!(before
            .as_ref()
            .zip(target.as_ref())
            .is_some_and(|(a, b)| a.equal(b)));
        assert!(!learner
            .online()
            .flat()
            .equal(before.as_ref().unwrap_or(&Tensor::new())));
        learner.update_target();
        let synced = learner
            .target()
            .map(|t| t.flat().equal(learner.online().flat()));
        assert_eq!(synced, Some(true));
        Ok(())
    }

    #[test]
    fn acting_explores_at_rate_epsilon_and_is_greedy_otherwise() -> Result<()> {
        use rand::SeedableRng;
        let learner = learner(1e-3)?;
        let obs = [0.01f32, 0.2, -0.03, 0.1].repeat(1000);
        let greedy =
            Vec::<i64>::try_from(learner.greedy(&Tensor::from_slice(&obs[..4]).view([1, 4])))?[0];
        let mut rng = rand_pcg::Pcg64::seed_from_u64(5);
        let mut actions = vec![0i64; 1000];
        learner.act(&obs, 0.0, &mut rng, &mut actions)?;
        assert!(actions.iter().all(|&a| a == greedy));
        learner.act(&obs, 1.0, &mut rng, &mut actions)?;
        let other = actions.iter().filter(|&&a| a != greedy).count();
        assert!(
            (400..600).contains(&other),
            "{other} of 1000 random actions differ"
        );
        learner.act(&obs, 0.3, &mut rng, &mut actions)?;
        let other = actions.iter().filter(|&&a| a != greedy).count();
        assert!(
            (100..200).contains(&other),
            "{other} of 1000 at epsilon 0.3 differ"
        );
        Ok(())
    }

    #[test]
    fn stats_average_the_updates_since_the_last_read() -> Result<()> {
        let mut learner = learner(1e-3)?;
        assert!(learner.take_stats().is_none());
        learner.update(&batch(1.0, 1.0))?;
        learner.update(&batch(1.0, 1.0))?;
        let stats = learner.take_stats();
        assert!(stats.is_some_and(|s| s.loss > 0.0 && s.loss.is_finite()));
        assert!(learner.take_stats().is_none());
        Ok(())
    }
}
