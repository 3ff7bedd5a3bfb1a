//! The update on the host kernel ([`HostNet`]): the same arithmetic as the ops kernel's, on
//! buffers Rust owns (parameters, gradient and target in [`AlignedFloats`], Adam's moments in `Vec<f32>`), in a few
//! BLAS calls and loops.

use std::cell::RefCell;

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use super::{check_target, Kernel, UpdateRule, ADAM_M, ADAM_V, ONLINE, TARGET};
use crate::config::Loss;
use crate::learn::aligned::AlignedFloats;
use crate::learn::optim::HostAdam;
use crate::learn::qfunction::{argmax_rows, HostNet, NetworkSpec, Pass};
use crate::learn::replay::{Columns, Minibatch};
use crate::learn::rows::Rows;
use crate::learn::state::Part;

/// The host kernel, its buffers and the scratch of one update.
#[derive(Debug)]
pub(super) struct HostKernel {
    spec: NetworkSpec,
    net: HostNet,
    rule: UpdateRule,
    params: AlignedFloats,
    grad: AlignedFloats,
    target: Option<AlignedFloats>,
    adam: HostAdam,
    /// Sums of the loss and of mean Q(s, a).
    sums: [f32; 2],
    /// The bootstrap network's pass over s', the online network's over s' (Double DQN), and
    /// the online network's over s.
    next: Pass,
    next_online: Pass,
    current: Pass,
    grad_q: Vec<f32>,
    errors: Vec<f32>,
    /// The pass acting and evaluation reuse (acting borrows the learner immutably).
    acting: RefCell<Pass>,
}

/// What one update's loss pass measured.
struct Measured {
    loss_sum: f64,
    q_sum: f64,
}

impl HostKernel {
    /// The network `spec` describes, initialised from libtorch's generator on the CPU, and
    /// its target copy.
    pub(super) fn new(
        spec: NetworkSpec,
        net: HostNet,
        rule: UpdateRule,
        with_target: bool,
    ) -> Result<Self> {
        let init = spec.init_flat(Device::Cpu)?;
        let init = Vec::<f32>::try_from(&init).context("reading the initial parameters")?;
        let params = AlignedFloats::from_slice(&init)?;
        Ok(Self {
            spec,
            net,
            rule,
            grad: AlignedFloats::zeros(params.len())?,
            target: with_target.then(|| params.clone()),
            adam: HostAdam::new(rule.adam, params.len())?,
            params,
            sums: [0.0; 2],
            next: Pass::default(),
            next_online: Pass::default(),
            current: Pass::default(),
            grad_q: Vec::new(),
            errors: Vec::new(),
            acting: RefCell::new(Pass::default()),
        })
    }

    /// Writes the gradient of the TD loss of `batch` into `self.grad`, and its TD errors
    /// into `self.errors`: `y = r + gamma^k * (1 - terminated) * Q_target(s', a')`, `a'` the
    /// target's argmax or (Double DQN) the online network's; the loss the (weighted) batch
    /// mean of the squared or Huber error.
    fn td_gradient(&mut self, batch: Columns<'_>) -> Measured {
        let n = self.net.n_actions();
        let bootstrap_params = self.target.as_deref().unwrap_or(&self.params);
        self.net
            .forward(bootstrap_params, batch.next_obs, &mut self.next);
        if self.rule.double_dqn {
            self.net
                .forward(&self.params, batch.next_obs, &mut self.next_online);
        }
        self.net.forward(&self.params, batch.obs, &mut self.current);
        let chooser = if self.rule.double_dqn {
            &self.next_online
        } else {
            &self.next
        };
        let next_q = self.next.q().chunks_exact(n);
        let choices = argmax_rows(chooser.q(), n);
        let batch_size = batch.obs.rows();
        let scale = 1.0 / batch_size as f32;
        self.errors.clear();
        self.grad_q.clear();
        self.grad_q.resize(batch_size * n, 0.0);
        let (mut loss_sum, mut q_sum) = (0.0f64, 0.0f64);
        let rows = self.current.q().chunks_exact(n).zip(next_q).zip(choices);
        for (i, ((q_row, next_row), choice)) in rows.enumerate() {
            let not_terminated = 1.0 - batch.terminated.at(i, 0);
            let bootstrap = batch.discounts.at(i, 0) * not_terminated;
            let y = batch.rewards.at(i, 0) + bootstrap * next_row[choice];
            // Replay checked every action when it stored it.
            let action = batch.actions.at(i, 0) as usize;
            let q = q_row[action];
            let error = q - y;
            let w = batch.weights.map_or(1.0, |w| w[i]);
            let (l, g) = loss_and_gradient(self.rule.loss, error);
            loss_sum += f64::from(w * l);
            q_sum += f64::from(q);
            self.grad_q[i * n + action] = w * g * scale;
            self.errors.push(error);
        }
        self.net.backward(
            &self.params,
            batch.obs,
            &mut self.current,
            &self.grad_q,
            &mut self.grad,
        );
        Measured { loss_sum, q_sum }
    }
}

/// The loss of the TD error `error` and its derivative.
fn loss_and_gradient(loss: Loss, error: f32) -> (f32, f32) {
    match loss {
        Loss::Mse => (error * error, 2.0 * error),
        // Huber with delta 1: quadratic inside |error| < 1, linear outside.
        Loss::Huber if error.abs() < 1.0 => (0.5 * error * error, error),
        Loss::Huber => (error.abs() - 0.5, error.signum()),
    }
}

impl Kernel for HostKernel {
    fn name(&self) -> &'static str {
        "host kernel"
    }

    fn spec(&self) -> &NetworkSpec {
        &self.spec
    }

    fn parameters(&self) -> Result<Tensor> {
        Ok(Tensor::from_slice(&self.params))
    }

    fn all_finite(&self) -> bool {
        self.params.iter().all(|p| p.is_finite())
    }

    fn greedy(&self, obs: &[f32], actions: &mut [i64]) -> Result<()> {
        let mut pass = self.acting.borrow_mut();
        self.net.forward(
            &self.params,
            Rows::dense(obs, self.spec.obs_dim as usize),
            &mut pass,
        );
        for (action, best) in actions
            .iter_mut()
            .zip(argmax_rows(pass.q(), self.net.n_actions()))
        {
            *action = best as i64;
        }
        Ok(())
    }

    fn update(&mut self, batch: &Minibatch<'_>, lr: f64) -> Result<()> {
        let columns = batch
            .host_columns()
            .context("the host kernel reads minibatches in host memory")?;
        let measured = self.td_gradient(columns);
        let batch_size = columns.obs.rows() as f64;
        self.adam.step(
            &mut self.params,
            &mut self.grad,
            self.rule.max_grad_norm,
            lr,
        )?;
        self.sums[0] += (measured.loss_sum / batch_size) as f32;
        self.sums[1] += (measured.q_sum / batch_size) as f32;
        Ok(())
    }

    fn td_errors(&mut self) -> Result<&[f32]> {
        Ok(&self.errors)
    }

    fn refresh_target(&mut self, tau: f64) -> Result<()> {
        let Some(target) = &mut self.target else {
            return Ok(());
        };
        if tau >= 1.0 {
            target.copy_from_slice(&self.params);
        } else {
            // libtorch's lerp, so that both kernels move the target the same way.
            let moved =
                Tensor::from_slice(target).f_lerp(&Tensor::from_slice(&self.params), tau)?;
            moved
                .f_to_kind(Kind::Float)?
                .f_copy_data(target, self.params.len())?;
        }
        Ok(())
    }

    fn stat_sums(&self) -> [f32; 2] {
        self.sums
    }

    fn set_stat_sums(&mut self, sums: [f32; 2]) {
        self.sums = sums;
    }

    fn adam_steps(&self) -> u64 {
        self.adam.steps()
    }

    fn save(&self, part: &mut Part) -> Result<()> {
        let (m, v) = self.adam.moments();
        let arrays = &mut part.f32s;
        arrays.insert(ONLINE.to_owned(), self.params.to_vec());
        arrays.insert(ADAM_M.to_owned(), m.to_vec());
        arrays.insert(ADAM_V.to_owned(), v.to_vec());
        if let Some(target) = &self.target {
            arrays.insert(TARGET.to_owned(), target.to_vec());
        }
        Ok(())
    }

    fn load(&mut self, part: &Part, adam_steps: u64) -> Result<()> {
        let copy = |name: &str, into: &mut [f32]| -> Result<()> {
            let values = part.f32s(name)?;
            if values.len() != into.len() {
                anyhow::bail!(
                    "parameter count mismatch: the network has {} parameters, the checkpoint's \
                     '{name}' {}",
                    into.len(),
                    values.len()
                );
            }
            into.copy_from_slice(values);
            Ok(())
        };
        copy(ONLINE, &mut self.params)?;
        check_target(self.target.is_some(), part.f32s.contains_key(TARGET))?;
        if let Some(target) = &mut self.target {
            copy(TARGET, target)?;
        }
        self.adam
            .restore(part.f32s(ADAM_M)?, part.f32s(ADAM_V)?, adam_steps)
    }

    #[cfg(test)]
    fn gradient(&self) -> Result<Tensor> {
        Ok(Tensor::from_slice(&self.grad))
    }
}
