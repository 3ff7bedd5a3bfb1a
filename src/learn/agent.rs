//! The DQN learner: online and target Q-networks, the TD update and the optimizer.

mod host;

use anyhow::{bail, Result};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Reduction, Tensor};

use crate::config::{Config, Implementation, Loss, OptimizerKind};
use crate::env::{N_ACTIONS, OBS_DIM};
use crate::learn::eval;
use crate::learn::optim::{Adam, AdamConfig};
use crate::learn::qfunction::{self, host_slice_mut, HostNet, QFunction, Rows};
use crate::learn::replay::{Minibatch, TdErrors};
use crate::learn::state::{host_values, Checkpointed, Part};

/// Online network, optional target network, Adam, and running update statistics.
#[derive(Debug)]
pub struct Learner {
    online: Box<dyn QFunction>,
    target: Option<Box<dyn QFunction>>,
    adam: Adam,
    double_dqn: bool,
    loss: Loss,
    tau: f64,
    max_grad_norm: Option<f64>,
    sums: StatSums,
    stat_updates: u64,
    /// The host kernel, for the fast network on the CPU when libtorch has a BLAS.
    host: Option<host::HostUpdate>,
}

/// Sums of the loss and of mean Q(s, a) since the last read, kept where the updates compute
/// them.
#[derive(Debug)]
enum StatSums {
    /// On the device, so that the ops path never waits for them.
    Device { loss: Tensor, q: Tensor },
    /// On the host, for the host kernel.
    Host([f32; 2]),
}

impl StatSums {
    /// Adds one update's loss and mean Q(s, a), computed on the device.
    fn add_tensors(&mut self, loss: &Tensor, q: &Tensor) {
        match self {
            StatSums::Device { loss: l, q: s } => tch::no_grad(|| {
                let _ = l.g_add_(loss);
                let _ = s.g_add_(q);
            }),
            StatSums::Host(sums) => {
                sums[0] += loss.double_value(&[]) as f32;
                sums[1] += q.double_value(&[]) as f32;
            }
        }
    }

    /// Adds one update's loss and mean Q(s, a), computed on the host.
    fn add(&mut self, loss: f64, q: f64) {
        match self {
            StatSums::Device { loss: l, q: s } => {
                let _ = l.g_add_scalar_(loss);
                let _ = s.g_add_scalar_(q);
            }
            StatSums::Host(sums) => {
                sums[0] += loss as f32;
                sums[1] += q as f32;
            }
        }
    }

    /// The sums.
    fn read(&self) -> [f32; 2] {
        match self {
            StatSums::Device { loss, q } => {
                [loss.double_value(&[]) as f32, q.double_value(&[]) as f32]
            }
            StatSums::Host(sums) => *sums,
        }
    }

    /// Sets the sums (to zero after a read, or to what a checkpoint held).
    fn set(&mut self, values: [f32; 2]) {
        match self {
            StatSums::Device { loss, q } => {
                let _ = loss.fill_(f64::from(values[0]));
                let _ = q.fill_(f64::from(values[1]));
            }
            StatSums::Host(sums) => *sums = values,
        }
    }
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
        let build = || qfunction::build(&cfg.network, OBS_DIM as i64, N_ACTIONS as i64, device);
        let online = build()?;
        let target = if cfg.agent.target_update_every > 0 {
            let target = build()?;
            target.load_flat(online.flat())?;
            Some(target)
        } else {
            None
        };
        let adam = match cfg.optimizer.kind {
            OptimizerKind::Adam => Adam::new(
                AdamConfig {
                    beta1: cfg.optimizer.beta1,
                    beta2: cfg.optimizer.beta2,
                    eps: cfg.optimizer.eps,
                },
                online.flat(),
            )?,
        };
        let host = match cfg.network.implementation {
            Implementation::Fast => HostNet::new(online.spec(), device).map(host::HostUpdate::new),
            Implementation::Reference => None,
        };
        let sums = match host {
            Some(_) => StatSums::Host([0.0; 2]),
            None => {
                let zero = || Tensor::zeros([], (Kind::Float, device));
                StatSums::Device {
                    loss: zero(),
                    q: zero(),
                }
            }
        };
        Ok(Self {
            online,
            target,
            adam,
            double_dqn: cfg.agent.double_dqn,
            loss: cfg.agent.loss,
            tau: cfg.agent.tau,
            max_grad_norm: cfg.optimizer.max_grad_norm,
            sums,
            stat_updates: 0,
            host,
        })
    }

    /// What computes the updates: `host kernel` (BLAS on the flat buffers) or `libtorch
    /// ops` (the network's `implementation` on its device).
    pub fn kernel(&self) -> &'static str {
        if self.host.is_some() {
            "host kernel"
        } else {
            "libtorch ops"
        }
    }

    /// The network being trained.
    pub fn online(&self) -> &dyn QFunction {
        self.online.as_ref()
    }

    /// The target network, if the config has one.
    pub fn target(&self) -> Option<&dyn QFunction> {
        self.target.as_deref()
    }

    /// True when every parameter of the online network is finite (one device sync).
    pub fn online_is_finite(&self) -> bool {
        tch::no_grad(|| self.online.flat().isfinite().all().int64_value(&[]) != 0)
    }

    /// Greedy actions for the `actions.len()` observations `obs` (host memory, `OBS_DIM`
    /// floats each), into `actions`: on the host kernel, or one batched forward pass on the
    /// network's device.
    pub fn greedy_actions(&self, obs: &[f32], actions: &mut [i64]) -> Result<()> {
        if obs.len() != actions.len() * OBS_DIM {
            bail!(
                "{} observation values for {} actions of {OBS_DIM}-value observations",
                obs.len(),
                actions.len()
            );
        }
        match &self.host {
            Some(host) => host.greedy(self.online.as_ref(), Rows::dense(obs, OBS_DIM), actions),
            None => eval::greedy_through_tensors(obs, actions, self.online.device(), |obs| {
                Ok(self.online.forward(obs))
            }),
        }
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

    /// One gradient step of learning rate `lr` on the TD error of `batch`; returns the TD
    /// errors, which prioritized replay turns into priorities.
    pub fn update(&mut self, batch: Minibatch<'_>, lr: f64) -> Result<TdErrors<'_>> {
        if let (Some(host), Some(parts)) = (self.host.as_mut(), batch.parts()?) {
            // The same update on the host kernel, reading the rows in place: its gradient,
            // then the same clipping and Adam step, on the host buffers.
            let measured = host.gradient(
                self.online.as_ref(),
                self.target.as_deref(),
                parts,
                self.double_dqn,
                self.loss,
            )?;
            // SAFETY: the parameters and their gradients are distinct buffers, sliced once
            // each.
            let (params, grad) = unsafe {
                (
                    host_slice_mut(self.online.flat())?,
                    host_slice_mut(self.online.flat_grad())?,
                )
            };
            self.adam
                .step_on_host(params, grad, self.max_grad_norm, lr)?;
            self.sums.add(measured.loss, measured.mean_q);
            self.stat_updates += 1;
            return Ok(TdErrors::Host(host.errors()));
        }
        let batch = batch.to_batch(self.online.flat().device())?;
        // The TD target, as the paper writes it:
        // y = r + gamma^k * (1 - terminated) * Q_target(s', a'), where a' is the target net's
        // argmax, or the online net's for Double DQN, and k the transition's number of steps
        // (1, or up to n for n-step returns); the batch holds gamma^k * (1 - terminated) as
        // `bootstrap`. A truncated transition keeps its bootstrap (its s' is the true last
        // observation); a terminated one does not.
        let td_target = tch::no_grad(|| {
            let bootstrap_net = self.target.as_deref().unwrap_or(self.online.as_ref());
            let next_q = bootstrap_net.forward(&batch.next_obs);
            let next_value = if self.double_dqn {
                let next_action = self.online.forward(&batch.next_obs).argmax(1, true);
                next_q.gather(1, &next_action, false).squeeze_dim(1)
            } else {
                next_q.amax(1, false)
            };
            batch.rewards.addcmul(&batch.bootstrap, &next_value)
        });
        // Q(s, a) for the actions taken, and dLoss/dQ(s, a) of the (weighted) batch mean.
        let (q_all, trace) = self.online.forward_traced(&batch.obs);
        let q = q_all.gather(1, &batch.actions, false).squeeze_dim(1);
        let error = &q - &td_target;
        let scale = 1.0 / batch.actions.size()[0] as f64;
        // Prioritized replay's importance-sampling weights scale each sample's loss.
        let weights = batch.weights.as_ref();
        let (loss, grad_q) = match (self.loss, weights) {
            (Loss::Mse, None) => (error.square().mean(Kind::Float), &error * (2.0 * scale)),
            (Loss::Mse, Some(w)) => (
                (error.square() * w).mean(Kind::Float),
                &error * w * (2.0 * scale),
            ),
            // Huber with delta 1: quadratic inside |error| < 1, linear outside.
            (Loss::Huber, None) => (
                q.huber_loss(&td_target, Reduction::Mean, 1.0),
                error.clamp(-1.0, 1.0) * scale,
            ),
            (Loss::Huber, Some(w)) => (
                (q.huber_loss(&td_target, Reduction::None, 1.0) * w).mean(Kind::Float),
                error.clamp(-1.0, 1.0) * w * scale,
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
            lr,
        )?;
        self.sums.add_tensors(&loss, &q.mean(Kind::Float));
        self.stat_updates += 1;
        Ok(TdErrors::Tensor(error))
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
        let [loss_sum, q_sum] = self.sums.read();
        let stats = UpdateStats {
            loss: f64::from(loss_sum) / n,
            mean_q: f64::from(q_sum) / n,
        };
        self.sums.set([0.0; 2]);
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

const ONLINE: &str = "online";
const TARGET: &str = "target";
const ADAM_M: &str = "adam.m";
const ADAM_V: &str = "adam.v";
/// The pending statistics: [loss sum, Q sum].
const STATS: &str = "stats";

impl Checkpointed for Learner {
    fn save_part(&mut self) -> Result<Part> {
        let mut part = Part::new(&LearnerState {
            adam_steps: self.adam.steps(),
            stat_updates: self.stat_updates,
        })?;
        let (m, v) = self.adam.moments();
        let stats = self.sums.read().to_vec();
        let arrays = &mut part.f32s;
        arrays.insert(ONLINE.to_owned(), host_values(self.online.flat())?);
        arrays.insert(ADAM_M.to_owned(), host_values(m)?);
        arrays.insert(ADAM_V.to_owned(), host_values(v)?);
        arrays.insert(STATS.to_owned(), stats);
        if let Some(target) = &self.target {
            arrays.insert(TARGET.to_owned(), host_values(target.flat())?);
        }
        Ok(part)
    }

    fn load_part(&mut self, part: &Part) -> Result<()> {
        let state: LearnerState = part.state()?;
        let tensor = |name: &str| part.f32s(name).map(Tensor::from_slice);
        self.online.load_flat(&tensor(ONLINE)?)?;
        match (&self.target, part.f32s.get(TARGET)) {
            (Some(net), Some(flat)) => net.load_flat(&Tensor::from_slice(flat))?,
            (None, None) => {}
            (Some(_), None) => bail!("the config has a target network but the checkpoint has none"),
            (None, Some(_)) => bail!("the checkpoint has a target network but the config has none"),
        }
        self.adam
            .restore(&tensor(ADAM_M)?, &tensor(ADAM_V)?, state.adam_steps)?;
        match part.f32s(STATS)? {
            &[loss_sum, q_sum] => self.sums.set([loss_sum, q_sum]),
            other => bail!("its 'stats' array has {} values, not 2", other.len()),
        }
        self.stat_updates = state.stat_updates;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Implementation};
    use std::borrow::Cow;

    use crate::learn::replay::Batch;

    /// A minibatch as sampling gathers it (replay rows in host memory, and weights), and
    /// the same as tensors.
    struct Sampled {
        rows: Vec<f32>,
        weights: Option<Vec<f32>>,
        tensors: Batch,
    }

    impl Sampled {
        fn new(rows: Vec<f32>, weights: Option<Vec<f32>>) -> Result<Self> {
            let tensors = Minibatch::Rows {
                rows: &rows,
                weights: weights.as_deref(),
            }
            .to_batch(Device::Cpu)?;
            Ok(Self {
                rows,
                weights,
                tensors,
            })
        }

        fn rows(&self) -> Minibatch<'_> {
            Minibatch::Rows {
                rows: &self.rows,
                weights: self.weights.as_deref(),
            }
        }

        /// The online network's Q(s, a = 1) for the first observation (the action `batch`
        /// takes).
        fn q_taken(&self, learner: &Learner) -> f64 {
            tch::no_grad(|| {
                learner
                    .online()
                    .forward(&self.tensors.obs)
                    .double_value(&[0, 1])
            })
        }
    }

    /// One transition: obs, next obs, action 1, reward, bootstrap `gamma (1 - terminated)`.
    fn batch(terminated: f32, reward: f32, gamma: f32) -> Sampled {
        let row = [0.01f32, 0.0, 0.02, 0.0, 0.02, 0.1, 0.01, -0.1, 1.0, reward];
        let mut rows = row.to_vec();
        rows.push(gamma * (1.0 - terminated));
        Sampled::new(rows, None).expect("one row")
    }

    /// A random minibatch of `n` transitions, half of them weighted when `weighted`.
    fn random_batch(n: i64, weighted: bool) -> Sampled {
        let opts = (Kind::Float, Device::Cpu);
        let columns = [
            Tensor::randn([n, 8], opts),
            Tensor::randint(2, [n, 1], opts),
            Tensor::ones([n, 1], opts) * 3.0,
            // Some terminated (0), the others discounted by gamma^k in (0, 1).
            Tensor::rand([n, 1], opts) * Tensor::randint(2, [n, 1], opts),
        ];
        let rows = Vec::<f32>::try_from(Tensor::cat(&columns, 1).flatten(0, -1)).expect("rows");
        let weights =
            weighted.then(|| Vec::<f32>::try_from(Tensor::rand([n], opts)).expect("weights"));
        Sampled::new(rows, weights).expect("a random minibatch")
    }

    fn all_close(a: &[f32], b: &[f32], rtol: f32, atol: f32) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= atol + rtol * y.abs())
    }

    fn learner(lr: f64) -> Result<Learner> {
        let mut cfg = Config::default();
        cfg.optimizer.lr = lr;
        cfg.agent.gamma = 0.9;
        Learner::new(&cfg, Device::Cpu, 3)
    }

    /// With a repeated transition, Q(s, a) converges to its TD target: r alone when
    /// terminated, r + discount * max Q_target(s') when not (a truncated step keeps that).
    #[test]
    fn q_converges_to_the_td_target_and_termination_stops_the_bootstrap() -> Result<()> {
        for terminated in [1.0f32, 0.0] {
            let mut learner = learner(1e-2)?;
            let b = batch(terminated, 1.0, 0.81);
            let next_max = learner.target().map_or(0.0, |t| {
                tch::no_grad(|| t.forward(&b.tensors.next_obs).max().double_value(&[]))
            });
            for _ in 0..500 {
                let _ = learner.update(b.rows(), 1e-2)?;
            }
            let q = b.q_taken(&learner);
            let expected = 1.0 + 0.81 * f64::from(1.0 - terminated) * next_max;
            assert!(
                (q - expected).abs() < 1e-3,
                "terminated={terminated}: q {q} vs {expected}"
            );
        }
        Ok(())
    }

    /// An `nn::seq` with the learner's online weights, and its variables in flat order.
    fn autograd_copy(
        learner: &Learner,
    ) -> Result<(tch::nn::VarStore, tch::nn::Sequential, Vec<Tensor>)> {
        use tch::nn;
        let online = learner.online();
        let vs = nn::VarStore::new(Device::Cpu);
        let (trunk, head) = online.spec().layers();
        let mut seq = nn::seq();
        for (i, layer) in trunk.iter().chain(&head).enumerate() {
            if i > 0 {
                seq = seq.add_fn(|x| x.relu());
            }
            seq = seq.add(nn::linear(
                &vs.root() / layer.name.as_str(),
                layer.fan_in,
                layer.fan_out,
                Default::default(),
            ));
        }
        let by_name = vs.variables();
        let mut variables = Vec::new();
        for (name, value) in online.spec().named_parameters(online.flat())? {
            let variable = by_name[&name].shallow_clone();
            tch::no_grad(|| variable.shallow_clone().copy_(&value));
            variables.push(variable);
        }
        Ok((vs, seq, variables))
    }

    /// The update's gradient is autograd's gradient of the loss written out in full
    /// (importance weights, n-step discounts, termination, both losses).
    #[test]
    fn the_update_gradient_is_the_losss_gradient() -> Result<()> {
        use tch::nn::Module;
        for (loss, weighted) in [(Loss::Mse, false), (Loss::Huber, true), (Loss::Mse, true)] {
            let mut cfg = Config::default();
            cfg.agent.loss = loss;
            let mut learner = Learner::new(&cfg, Device::Cpu, 9)?;
            tch::manual_seed(4);
            let b = random_batch(16, weighted);
            // The default config: a target network, no Double DQN.
            let td_target = tch::no_grad(|| {
                let next = learner
                    .target()
                    .map(|t| t.forward(&b.tensors.next_obs).amax(1, false))
                    .unwrap_or_else(|| b.tensors.rewards.zeros_like());
                &b.tensors.rewards + &b.tensors.bootstrap * next
            });
            let (_vs, seq, variables) = autograd_copy(&learner)?;
            let q = seq
                .forward(&b.tensors.obs)
                .gather(1, &b.tensors.actions, false)
                .squeeze_dim(1);
            let per_sample = match loss {
                Loss::Mse => (&q - &td_target).square(),
                Loss::Huber => q.huber_loss(&td_target, Reduction::None, 1.0),
            };
            let objective = match &b.tensors.weights {
                Some(w) => (per_sample * w).mean(Kind::Float),
                None => per_sample.mean(Kind::Float),
            };
            let grads = Tensor::run_backward(&[objective], &variables, false, false);
            let autograd = Tensor::cat(
                &grads.iter().map(|g| g.flatten(0, -1)).collect::<Vec<_>>(),
                0,
            );
            let _ = learner.update(b.rows(), 1e-3)?;
            let diff = (learner.online().flat_grad() - &autograd)
                .abs()
                .max()
                .double_value(&[]);
            assert!(
                diff < 1e-5,
                "{loss:?}, weighted {weighted}: gradient differs by {diff}"
            );
            assert!(autograd.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        }
        Ok(())
    }

    /// Several whole updates (forward, loss, backward, clipping, Adam) through the fast path
    /// (the host kernel where there is one) and through the reference give the same
    /// networks, for each head.
    #[test]
    fn fast_and_reference_learners_take_the_same_updates() -> Result<()> {
        for dueling in [false, true] {
            let mut learners = Vec::new();
            for implementation in [Implementation::Fast, Implementation::Reference] {
                let mut cfg = Config::default();
                cfg.network.dueling = dueling;
                cfg.network.implementation = implementation;
                cfg.agent.double_dqn = true;
                cfg.agent.loss = Loss::Huber;
                cfg.optimizer.max_grad_norm = Some(1.0);
                learners.push(Learner::new(&cfg, Device::Cpu, 21)?);
            }
            // libtorch's generator is shared by tests running in parallel: start both from
            // the very same parameters rather than from the same seed.
            learners[1]
                .online()
                .load_flat(learners[0].online().flat())?;
            learners[1].update_target();
            for step in 0..10 {
                tch::manual_seed(100 + step);
                let b = random_batch(32, step % 2 == 0);
                let errors: Vec<Vec<f32>> = learners
                    .iter_mut()
                    .map(|l| l.update(b.rows(), 1e-2)?.values().map(Cow::into_owned))
                    .collect::<Result<_>>()?;
                let (fast, reference) = (learners[0].online(), learners[1].online());
                let diff = (fast.flat() - reference.flat())
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(
                    diff < 1e-5,
                    "dueling {dueling}, update {step}: parameters differ by {diff}"
                );
                assert!(all_close(&errors[0], &errors[1], 1e-5, 1e-5));
            }
        }
        Ok(())
    }

    /// The host kernel takes the updates the libtorch ops take (parameters, TD errors and
    /// statistics after several whole updates, and greedy actions), for every head,
    /// activation, loss, target choice, and with and without importance weights.
    #[test]
    fn the_host_kernel_takes_the_updates_the_ops_take() -> Result<()> {
        use crate::config::Activation;
        if !qfunction::blas_available() {
            return Ok(());
        }
        let cases = [
            (true, Activation::Relu, Loss::Mse, true, 50, vec![16, 8]),
            (true, Activation::Tanh, Loss::Huber, false, 50, vec![16, 8]),
            (false, Activation::Relu, Loss::Huber, true, 0, vec![16, 8]),
            (false, Activation::Tanh, Loss::Mse, false, 50, vec![12]),
            (true, Activation::Relu, Loss::Huber, true, 0, vec![64, 64]),
        ];
        for (dueling, activation, loss, double_dqn, target_every, hidden) in cases {
            let what = format!(
                "dueling {dueling}, {activation:?}, {loss:?}, double {double_dqn}, \
                 target every {target_every}, hidden {hidden:?}"
            );
            let mut cfg = Config::default();
            cfg.network.dueling = dueling;
            cfg.network.activation = activation;
            cfg.network.hidden = hidden;
            cfg.agent.loss = loss;
            cfg.agent.double_dqn = double_dqn;
            cfg.agent.target_update_every = target_every;
            cfg.optimizer.max_grad_norm = Some(1.0);
            let mut host = Learner::new(&cfg, Device::Cpu, 5)?;
            let mut ops = Learner::new(&cfg, Device::Cpu, 5)?;
            ops.host = None;
            assert_eq!(
                (host.kernel(), ops.kernel()),
                ("host kernel", "libtorch ops")
            );
            ops.online().load_flat(host.online().flat())?;
            ops.update_target();
            host.update_target();
            for step in 0..8 {
                tch::manual_seed(200 + step);
                let b = random_batch(48, step % 2 == 1);
                let host_errors = host.update(b.rows(), 1e-2)?.values()?.into_owned();
                let ops_errors = ops.update(b.rows(), 1e-2)?.values()?.into_owned();
                if step == 3 {
                    host.update_target();
                    ops.update_target();
                }
                let diff = (host.online().flat() - ops.online().flat())
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(
                    diff < 2e-5,
                    "{what}, update {step}: parameters differ by {diff}"
                );
                assert!(
                    all_close(&host_errors, &ops_errors, 1e-4, 1e-5),
                    "{what}, update {step}: TD errors differ"
                );
            }
            let (h, o) = (host.take_stats(), ops.take_stats());
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * (1.0 + b.abs());
            assert!(
                h.zip(o)
                    .is_some_and(|(h, o)| close(h.loss, o.loss) && close(h.mean_q, o.mean_q)),
                "{what}: statistics differ: {h:?} against {o:?}"
            );
            let obs = Tensor::randn([64, 4], (Kind::Float, Device::Cpu));
            let flat: Vec<f32> = Vec::try_from(obs.flatten(0, -1))?;
            let (mut from_host, mut from_ops) = (vec![0i64; 64], vec![0i64; 64]);
            host.greedy_actions(&flat, &mut from_host)?;
            ops.greedy_actions(&flat, &mut from_ops)?;
            let argmax: Vec<i64> = Vec::try_from(ops.online().forward(&obs).argmax(1, false))?;
            assert_eq!(from_host, from_ops, "{what}: greedy actions differ");
            assert_eq!(
                from_ops, argmax,
                "{what}: greedy actions are not the argmax"
            );
            // A few rows at a time, as acting asks (the kernel's loops, not BLAS).
            for rows in [1, 3] {
                let mut few = vec![0i64; rows];
                host.greedy_actions(&flat[..rows * 4], &mut few)?;
                assert_eq!(few, argmax[..rows], "{what}: greedy actions of {rows} rows");
            }
            // Acting reads the same network through the kernel.
            let mut rng = <rand_pcg::Pcg64 as rand::SeedableRng>::seed_from_u64(1);
            let mut acted = vec![0i64; 64];
            host.act(&flat, 0.0, &mut rng, &mut acted)?;
            assert_eq!(acted, from_ops, "{what}: acting");
        }
        Ok(())
    }

    /// A minibatch handed over as tensors (device storage) teaches a learner with the host
    /// kernel what the same minibatch as rows teaches: the kernel reads rows, the tensors
    /// take the ops path.
    #[test]
    fn rows_and_tensors_of_one_minibatch_teach_the_same() -> Result<()> {
        if !qfunction::blas_available() {
            return Ok(());
        }
        let mut from_rows = learner(1e-2)?;
        let mut from_tensors = learner(1e-2)?;
        from_tensors.online().load_flat(from_rows.online().flat())?;
        from_tensors.update_target();
        from_rows.update_target();
        tch::manual_seed(9);
        let b = random_batch(40, true);
        let by_rows = from_rows.update(b.rows(), 1e-2)?.values()?.into_owned();
        let by_tensors = from_tensors.update(Minibatch::Tensors(&b.tensors), 1e-2)?;
        assert!(
            matches!(by_tensors, TdErrors::Tensor(_)),
            "the tensors took the kernel"
        );
        assert!(all_close(&by_rows, &by_tensors.values()?, 1e-4, 1e-5));
        let diff = (from_rows.online().flat() - from_tensors.online().flat())
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-5, "parameters differ by {diff}");
        Ok(())
    }

    #[test]
    fn target_network_moves_only_when_updated() -> Result<()> {
        let mut learner = learner(1e-2)?;
        let before = learner.target().map(|t| t.flat().copy());
        let _ = learner.update(batch(0.0, 1.0, 0.9).rows(), 1e-2)?;
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
        let mut greedy = [0i64];
        learner.greedy_actions(&obs[..4], &mut greedy)?;
        let greedy = greedy[0];
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
        // A terminal transition with reward 1 from a fresh net: the loss is (Q - 1)^2.
        let b = batch(1.0, 1.0, 0.9);
        let q0 = b.q_taken(&learner);
        let _ = learner.update(b.rows(), 1e-3)?;
        let q1 = b.q_taken(&learner);
        let _ = learner.update(b.rows(), 1e-3)?;
        let stats = learner.take_stats().expect("two updates ran");
        let expected = ((q0 - 1.0).powi(2) + (q1 - 1.0).powi(2)) / 2.0;
        assert!(
            (stats.loss - expected).abs() < 1e-5,
            "{} vs {expected}",
            stats.loss
        );
        assert!((stats.mean_q - (q0 + q1) / 2.0).abs() < 1e-5);
        assert!(learner.take_stats().is_none());
        Ok(())
    }
}
