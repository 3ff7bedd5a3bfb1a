//! The update through libtorch ops, on the network's device: either Q-function
//! implementation, the fused Adam, and statistics summed on the device so that the update
//! never waits for the host.

use anyhow::{Context, Result};
use tch::{Device, Kind, Reduction, Tensor};

use super::{check_target, Kernel, UpdateRule, ADAM_M, ADAM_V, ONLINE, TARGET};
use crate::config::{Loss, NetworkConfig};
use crate::learn::eval;
use crate::learn::optim::Adam;
use crate::learn::qfunction::{self, NetworkSpec, QFunction};
use crate::learn::replay::{Batch, Minibatch};
use crate::learn::state::{host_values, Part};

/// The networks, Adam and the update's by-products, as tensors on one device.
#[derive(Debug)]
pub(super) struct OpsKernel {
    online: Box<dyn QFunction>,
    target: Option<Box<dyn QFunction>>,
    adam: Adam,
    rule: UpdateRule,
    /// Sums of the loss and of mean Q(s, a), on the device.
    loss_sum: Tensor,
    q_sum: Tensor,
    /// The last update's TD errors on the device, until asked for...
    pending_errors: Option<Tensor>,
    /// ...and in host memory once asked for.
    errors: Vec<f32>,
}

impl OpsKernel {
    /// The network `cfg` describes (`spec`) on `device`, initialised from libtorch's
    /// generator, and its target copy.
    pub(super) fn new(
        cfg: &NetworkConfig,
        spec: NetworkSpec,
        device: Device,
        rule: UpdateRule,
        with_target: bool,
    ) -> Result<Self> {
        let online = qfunction::build(cfg, spec.obs_dim, spec.n_actions, device)?;
        let target = if with_target {
            let mut flat = online.flat().f_zeros_like()?;
            tch::no_grad(|| flat.f_copy_(online.flat()))?;
            Some(qfunction::with_implementation(
                cfg.implementation,
                spec,
                flat,
            )?)
        } else {
            None
        };
        let zero = || Tensor::f_zeros([], (Kind::Float, device));
        Ok(Self {
            adam: Adam::new(rule.adam, online.flat())?,
            online,
            target,
            rule,
            loss_sum: zero()?,
            q_sum: zero()?,
            pending_errors: None,
            errors: Vec::new(),
        })
    }

    /// `y = r + gamma^k * (1 - terminated) * Q_target(s', a')`, `a'` the target network's
    /// argmax, or the online network's for Double DQN.
    fn td_target(&self, batch: &Batch) -> Tensor {
        tch::no_grad(|| {
            let bootstrap_net = self.target.as_deref().unwrap_or(self.online.as_ref());
            let next_q = bootstrap_net.forward(&batch.next_obs);
            let next_value = if self.rule.double_dqn {
                let next_action = self.online.forward(&batch.next_obs).argmax(1, true);
                next_q.gather(1, &next_action, false).squeeze_dim(1)
            } else {
                next_q.amax(1, false)
            };
            let bootstrap = &batch.discounts * (1.0 - &batch.terminated);
            batch.rewards.addcmul(&bootstrap, &next_value)
        })
    }
}

/// The (importance-weighted) batch mean of the loss of `error = q - y`, and its gradient
/// with respect to `q`.
fn loss_and_gradient(
    loss: Loss,
    q: &Tensor,
    td_target: &Tensor,
    error: &Tensor,
    weights: Option<&Tensor>,
) -> (Tensor, Tensor) {
    let scale = 1.0 / q.size()[0] as f64;
    match (loss, weights) {
        (Loss::Mse, None) => (error.square().mean(Kind::Float), error * (2.0 * scale)),
        (Loss::Mse, Some(w)) => (
            (error.square() * w).mean(Kind::Float),
            error * w * (2.0 * scale),
        ),
        // Huber with delta 1: quadratic inside |error| < 1, linear outside.
        (Loss::Huber, None) => (
            q.huber_loss(td_target, Reduction::Mean, 1.0),
            error.clamp(-1.0, 1.0) * scale,
        ),
        (Loss::Huber, Some(w)) => (
            (q.huber_loss(td_target, Reduction::None, 1.0) * w).mean(Kind::Float),
            error.clamp(-1.0, 1.0) * w * scale,
        ),
    }
}

impl Kernel for OpsKernel {
    fn name(&self) -> &'static str {
        "libtorch ops"
    }

    fn spec(&self) -> &NetworkSpec {
        self.online.spec()
    }

    fn parameters(&self) -> Result<Tensor> {
        Ok(self.online.flat().shallow_clone())
    }

    fn all_finite(&self) -> bool {
        tch::no_grad(|| self.online.flat().isfinite().all().int64_value(&[]) != 0)
    }

    fn greedy(&self, obs: &[f32], actions: &mut [i64]) -> Result<()> {
        eval::greedy_through_tensors(obs, actions, self.online.device(), |obs| {
            Ok(self.online.forward(obs))
        })
    }

    fn update(&mut self, batch: &Minibatch<'_>, lr: f64) -> Result<()> {
        let batch = batch.to_tensors(self.online.device())?;
        let td_target = self.td_target(&batch);
        // Q(s, a) for the actions taken, and dLoss/dQ(s, a) of the (weighted) batch mean.
        let (q_all, trace) = self.online.forward_traced(&batch.obs);
        let q = q_all.gather(1, &batch.actions, false).squeeze_dim(1);
        let error = &q - &td_target;
        let (loss, grad_q) = loss_and_gradient(
            self.rule.loss,
            &q,
            &td_target,
            &error,
            batch.weights.as_ref(),
        );
        let grad_output = q_all
            .zeros_like()
            .scatter(1, &batch.actions, &grad_q.unsqueeze(1));
        self.online.backward(&trace, &grad_output);
        self.adam.step(
            self.online.flat(),
            self.online.flat_grad(),
            self.rule.max_grad_norm,
            lr,
        )?;
        tch::no_grad(|| {
            let _ = self.loss_sum.g_add_(&loss);
            let _ = self.q_sum.g_add_(&q.mean(Kind::Float));
        });
        self.pending_errors = Some(error);
        Ok(())
    }

    fn td_errors(&mut self) -> Result<&[f32]> {
        if let Some(errors) = self.pending_errors.take() {
            let host = errors.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?;
            self.errors = Vec::<f32>::try_from(&host).context("reading TD errors")?;
        }
        Ok(&self.errors)
    }

    fn refresh_target(&mut self, tau: f64) -> Result<()> {
        if let Some(target) = &self.target {
            tch::no_grad(|| -> Result<()> {
                let mut flat = target.flat().shallow_clone();
                if tau >= 1.0 {
                    flat.f_copy_(self.online.flat())?;
                } else {
                    let _ = flat.f_lerp_(self.online.flat(), tau)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn stat_sums(&self) -> [f32; 2] {
        [
            self.loss_sum.double_value(&[]) as f32,
            self.q_sum.double_value(&[]) as f32,
        ]
    }

    fn set_stat_sums(&mut self, [loss, q]: [f32; 2]) {
        let _ = self.loss_sum.fill_(f64::from(loss));
        let _ = self.q_sum.fill_(f64::from(q));
    }

    fn adam_steps(&self) -> u64 {
        self.adam.steps()
    }

    fn save(&self, part: &mut Part) -> Result<()> {
        let (m, v) = self.adam.moments();
        let arrays = &mut part.f32s;
        arrays.insert(ONLINE.to_owned(), host_values(self.online.flat())?);
        arrays.insert(ADAM_M.to_owned(), host_values(m)?);
        arrays.insert(ADAM_V.to_owned(), host_values(v)?);
        if let Some(target) = &self.target {
            arrays.insert(TARGET.to_owned(), host_values(target.flat())?);
        }
        Ok(())
    }

    fn load(&mut self, part: &Part, adam_steps: u64) -> Result<()> {
        let tensor = |name: &str| part.f32s(name).map(Tensor::from_slice);
        self.online.load_flat(&tensor(ONLINE)?)?;
        check_target(self.target.is_some(), part.f32s.contains_key(TARGET))?;
        if let Some(target) = &self.target {
            target.load_flat(&tensor(TARGET)?)?;
        }
        self.adam
            .restore(&tensor(ADAM_M)?, &tensor(ADAM_V)?, adam_steps)
    }

    #[cfg(test)]
    fn gradient(&self) -> Result<Tensor> {
        Ok(self.online.flat_grad().copy())
    }
}
