//! The TD update on the host kernel ([`HostNet`]): the same arithmetic as
//! [`super::Learner::update`]'s ops, done on the flat buffers in place, in a few BLAS calls.

use std::cell::RefCell;

use anyhow::{bail, Result};

use crate::config::Loss;
use crate::learn::qfunction::{
    argmax_rows, host_slice, host_slice_mut, HostNet, Pass, QFunction, Rows,
};
use crate::learn::replay::Parts;

/// What one update measured: its mean loss and mean Q(s, a); its TD errors stay in
/// [`HostUpdate::errors`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Measured {
    pub loss: f64,
    pub mean_q: f64,
}

/// The host kernel with the buffers of one update.
#[derive(Debug)]
pub(super) struct HostUpdate {
    net: HostNet,
    /// The bootstrap network's pass over s', the online network's over s' (Double DQN), and
    /// the online network's over s.
    next: Pass,
    next_online: Pass,
    current: Pass,
    /// The minibatch's actions, checked.
    actions: Vec<usize>,
    grad_q: Vec<f32>,
    errors: Vec<f32>,
    /// The pass acting and evaluation reuse (acting borrows the learner immutably).
    acting: RefCell<Pass>,
}

impl HostUpdate {
    pub fn new(net: HostNet) -> Self {
        Self {
            net,
            next: Pass::default(),
            next_online: Pass::default(),
            current: Pass::default(),
            actions: Vec::new(),
            grad_q: Vec::new(),
            errors: Vec::new(),
            acting: RefCell::new(Pass::default()),
        }
    }

    /// The TD errors `Q(s, a) - y` of the last update.
    pub fn errors(&self) -> &[f32] {
        &self.errors
    }

    /// Greedy actions of `online` for observations `obs` (`[B, obs_dim]` row-major), into
    /// `actions` (`B` of them; the caller checks).
    pub fn greedy(&self, online: &dyn QFunction, obs: Rows, actions: &mut [i64]) -> Result<()> {
        let mut pass = self.acting.borrow_mut();
        // SAFETY: nothing writes the parameters during this call.
        let params = unsafe { host_slice(online.flat()) }?;
        self.net.forward(params, obs, &mut pass);
        for (action, best) in actions
            .iter_mut()
            .zip(argmax_rows(pass.q(), self.net.n_actions()))
        {
            *action = best as i64;
        }
        Ok(())
    }

    /// Writes the gradient of the TD loss of `batch` into `online`'s gradient buffer, as
    /// the ops path computes it: y = r + bootstrap * Q_target(s', a'), a' the target's
    /// argmax or (Double DQN) the online network's; loss the (weighted) batch mean of the
    /// squared or Huber error.
    pub fn gradient(
        &mut self,
        online: &dyn QFunction,
        target: Option<&dyn QFunction>,
        batch: Parts<'_>,
        double_dqn: bool,
        loss: Loss,
    ) -> Result<Measured> {
        let Parts {
            obs,
            next_obs,
            actions,
            rewards,
            bootstrap,
            weights,
        } = batch;
        // SAFETY: the parameters and the gradient buffer are distinct tensors; only the
        // gradient buffer is written, through the one slice made of it.
        let (params, grad) = unsafe {
            (
                host_slice(online.flat())?,
                host_slice_mut(online.flat_grad())?,
            )
        };
        let n = self.net.n_actions();
        self.actions.clear();
        for i in 0..actions.rows() {
            let a = actions.at(i, 0);
            if !(a >= 0.0 && a < n as f32 && a.fract() == 0.0) {
                bail!("the minibatch has action {a}, not one of 0..{n}");
            }
            self.actions.push(a as usize);
        }
        let bootstrap_params = match target {
            // SAFETY: the target network's buffer is not written during this call.
            Some(target) => unsafe { host_slice(target.flat())? },
            None => params,
        };
        self.net.forward(bootstrap_params, next_obs, &mut self.next);
        if double_dqn {
            self.net.forward(params, next_obs, &mut self.next_online);
        }
        self.net.forward(params, obs, &mut self.current);
        let chooser = if double_dqn {
            &self.next_online
        } else {
            &self.next
        };
        let next_q = self.next.q().chunks_exact(n);
        let choices = argmax_rows(chooser.q(), n);
        let batch_size = obs.rows();
        let scale = 1.0 / batch_size as f32;
        self.errors.clear();
        self.grad_q.clear();
        self.grad_q.resize(batch_size * n, 0.0);
        let (mut loss_sum, mut q_sum) = (0.0f64, 0.0f64);
        let rows = self.current.q().chunks_exact(n).zip(next_q).zip(choices);
        for (i, ((q_row, next_row), choice)) in rows.enumerate() {
            let next_value = next_row[choice];
            let y = rewards.at(i, 0) + bootstrap.at(i, 0) * next_value;
            let action = self.actions[i];
            let q = q_row[action];
            let error = q - y;
            let w = weights.map_or(1.0, |w| w[i]);
            let (l, g) = match loss {
                Loss::Mse => (error * error, 2.0 * error),
                Loss::Huber if error.abs() < 1.0 => (0.5 * error * error, error),
                Loss::Huber => (error.abs() - 0.5, error.signum()),
            };
            loss_sum += f64::from(w * l);
            q_sum += f64::from(q);
            self.grad_q[i * n + action] = w * g * scale;
            self.errors.push(error);
        }
        self.net
            .backward(params, obs, &mut self.current, &self.grad_q, grad);
        Ok(Measured {
            loss: loss_sum / batch_size as f64,
            mean_q: q_sum / batch_size as f64,
        })
    }
}
