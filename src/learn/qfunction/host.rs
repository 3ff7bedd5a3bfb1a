//! The host kernel: the fast path's arithmetic for a network on the CPU, done in place on
//! its flat buffer with the BLAS libtorch itself multiplies with (`sgemm_`, MKL in PyTorch's
//! x86 builds, found among the loaded libraries) and plain loops for the rest.
//!
//! A CartPole network is so small that an update through libtorch's ops costs mostly their
//! dispatch (some 90 ops; under perf the matrix products were about a quarter of it): this
//! runs the same arithmetic as a few BLAS calls on buffers it reuses. Where libtorch brings no
//! `sgemm_`, or the network is on a GPU, the learner keeps to the ops; tests hold this
//! kernel to them.

use anyhow::Result;
use tch::Device;

use super::products::{grad_bias, Gemm};
use super::spec::{Head, Layer, NetworkSpec};
use crate::config::Activation;
use crate::learn::rows::Rows;

fn to_usize(n: i64) -> Result<usize> {
    usize::try_from(n).map_err(|_| anyhow::anyhow!("negative tensor size {n}"))
}

/// A layer's place in the flat buffer as index ranges.
#[derive(Debug, Clone)]
struct Slot {
    fan_in: usize,
    fan_out: usize,
    weight: std::ops::Range<usize>,
    bias: std::ops::Range<usize>,
}

impl Slot {
    fn new(layer: &Layer) -> Result<Self> {
        let (offset, fan_in, fan_out) = (
            to_usize(layer.offset)?,
            to_usize(layer.fan_in)?,
            to_usize(layer.fan_out)?,
        );
        let weight_end = offset + fan_in * fan_out;
        Ok(Self {
            fan_in,
            fan_out,
            weight: offset..weight_end,
            bias: weight_end..weight_end + fan_out,
        })
    }
}

/// One forward pass's activations (kept for the backward pass) and the backward pass's
/// scratch; its buffers are reused from one pass to the next.
#[derive(Debug, Default)]
pub struct Pass {
    /// Each trunk layer's output, after the activation, `[B, width]`.
    hidden: Vec<Vec<f32>>,
    /// Dueling: `V` `[B]` and `A` `[B, n_actions]`.
    value: Vec<f32>,
    advantage: Vec<f32>,
    /// Q-values `[B, n_actions]`.
    q: Vec<f32>,
    // Backward scratch: dLoss/d(trunk output), dLoss/dz, and the dueling streams'.
    grad_hidden: Vec<f32>,
    grad_z: Vec<f32>,
    grad_value: Vec<f32>,
    grad_advantage: Vec<f32>,
    /// The narrow products' transposes.
    scratch: Vec<f32>,
}

impl Pass {
    /// The Q-values of the last forward pass, `[B, n_actions]` row-major.
    pub fn q(&self) -> &[f32] {
        &self.q
    }
}

/// A network's forward and backward passes on host memory.
#[derive(Debug)]
pub struct HostNet {
    trunk: Vec<Slot>,
    head: Vec<Slot>,
    kind: Head,
    activation: Activation,
    n_actions: usize,
    gemm: Gemm,
}

impl HostNet {
    /// The kernel for `spec`, when its parameters live on `device` = CPU and libtorch has
    /// brought a BLAS `sgemm_`; `None` otherwise (the ops path then serves).
    pub fn new(spec: &NetworkSpec, device: Device) -> Option<Self> {
        if device != Device::Cpu {
            return None;
        }
        let gemm = Gemm::find()?;
        let (trunk, head) = spec.layers();
        let slots = |layers: &[Layer]| layers.iter().map(Slot::new).collect::<Result<Vec<_>>>();
        Some(Self {
            trunk: slots(&trunk).ok()?,
            head: slots(&head).ok()?,
            kind: spec.head,
            activation: spec.activation,
            n_actions: to_usize(spec.n_actions).ok()?,
            gemm,
        })
    }

    /// Number of Q-values per observation.
    pub fn n_actions(&self) -> usize {
        self.n_actions
    }

    /// The Q-values of `x` under parameters `params`, into `pass` (with what the backward
    /// pass needs).
    pub fn forward(&self, params: &[f32], x: Rows, pass: &mut Pass) {
        let batch = x.rows;
        pass.hidden.resize_with(self.trunk.len(), Vec::new);
        for (index, slot) in self.trunk.iter().enumerate() {
            let (before, rest) = pass.hidden.split_at_mut(index);
            let input = match before.last() {
                Some(previous) => Rows::dense(previous, self.trunk[index - 1].fan_out),
                None => x,
            };
            let out = &mut rest[0];
            out.resize(batch * slot.fan_out, 0.0);
            self.gemm.linear(
                input,
                &params[slot.weight.clone()],
                &params[slot.bias.clone()],
                out,
                &mut pass.scratch,
            );
            self.activation.forward_in_place(out);
        }
        let h = self.trunk_output(&pass.hidden, x);
        let actions = self.n_actions;
        pass.q.resize(batch * actions, 0.0);
        match (self.kind, self.head.as_slice()) {
            (Head::Dueling, [value, advantage]) => {
                pass.value.resize(batch, 0.0);
                pass.advantage.resize(batch * actions, 0.0);
                let p = params;
                self.gemm.linear(
                    h,
                    &p[value.weight.clone()],
                    &p[value.bias.clone()],
                    &mut pass.value,
                    &mut pass.scratch,
                );
                self.gemm.linear(
                    h,
                    &p[advantage.weight.clone()],
                    &p[advantage.bias.clone()],
                    &mut pass.advantage,
                    &mut pass.scratch,
                );
                let rows = pass.advantage.chunks_exact(actions).zip(&pass.value);
                for (q, (a, v)) in pass.q.chunks_exact_mut(actions).zip(rows) {
                    let mean = a.iter().sum::<f32>() / actions as f32;
                    for (q, a) in q.iter_mut().zip(a) {
                        *q = (v + a) - mean;
                    }
                }
            }
            (_, layers) => {
                let slot = &layers[0];
                let (w, b) = (&params[slot.weight.clone()], &params[slot.bias.clone()]);
                self.gemm.linear(h, w, b, &mut pass.q, &mut pass.scratch);
            }
        }
    }

    /// The trunk's output of the pass (`x` itself for a network without hidden layers).
    fn trunk_output<'a>(&self, hidden: &'a [Vec<f32>], x: Rows<'a>) -> Rows<'a> {
        match (hidden.last(), self.trunk.last()) {
            (Some(h), Some(slot)) => Rows::dense(h, slot.fan_out),
            _ => x,
        }
    }

    /// Back-propagates dLoss/dQ `grad_q` `[B, n_actions]` through the forward pass of `x`
    /// recorded in `pass`, writing dLoss/dparameters over `grad` (the flat layout).
    pub fn backward(
        &self,
        params: &[f32],
        x: Rows,
        pass: &mut Pass,
        grad_q: &[f32],
        grad: &mut [f32],
    ) {
        let batch = x.rows;
        let mut grad_hidden = std::mem::take(&mut pass.grad_hidden);
        let mut grad_z = std::mem::take(&mut pass.grad_z);
        self.backward_head(params, x, pass, grad_q, grad, &mut grad_hidden);
        for (index, slot) in self.trunk.iter().enumerate().rev() {
            // dz = dy * act'(z), read off the activation's output y.
            let y = &pass.hidden[index];
            self.activation.backward_into(&grad_hidden, y, &mut grad_z);
            let input = match index {
                0 => x,
                _ => Rows::dense(&pass.hidden[index - 1], slot.fan_in),
            };
            let dz = Rows::dense(&grad_z, slot.fan_out);
            let dw = &mut grad[slot.weight.clone()];
            self.gemm.grad_weight(dz, input, dw, &mut pass.scratch);
            grad_bias(&grad_z, &mut grad[slot.bias.clone()]);
            if index > 0 {
                grad_hidden.resize(batch * slot.fan_in, 0.0);
                let w = &params[slot.weight.clone()];
                self.gemm
                    .grad_input(dz, w, slot.fan_in, 0.0, &mut grad_hidden);
            }
        }
        pass.grad_hidden = grad_hidden;
        pass.grad_z = grad_z;
    }

    /// The head's part of [`HostNet::backward`]: its parameters' gradients into `grad`, and
    /// dLoss/d(trunk output) into `grad_hidden`.
    fn backward_head(
        &self,
        params: &[f32],
        x: Rows,
        pass: &mut Pass,
        grad_q: &[f32],
        grad: &mut [f32],
        grad_hidden: &mut Vec<f32>,
    ) {
        let actions = self.n_actions;
        let h = self.trunk_output(&pass.hidden, x);
        grad_hidden.resize(x.rows * h.cols, 0.0);
        let dq = Rows::dense(grad_q, actions);
        match (self.kind, self.head.as_slice()) {
            // Q = V + A - mean(A): dV = sum_a dQ, dA = dQ - mean_a(dQ).
            (Head::Dueling, [value, advantage]) => {
                let (dv, da) = (&mut pass.grad_value, &mut pass.grad_advantage);
                dv.clear();
                da.clear();
                for row in grad_q.chunks_exact(actions) {
                    let sum = row.iter().sum::<f32>();
                    dv.push(sum);
                    let mean = sum / actions as f32;
                    da.extend(row.iter().map(|g| g - mean));
                }
                let (dv, da) = (Rows::dense(dv, 1), Rows::dense(da, actions));
                for (slot, dz) in [(value, dv), (advantage, da)] {
                    let dw = &mut grad[slot.weight.clone()];
                    self.gemm.grad_weight(dz, h, dw, &mut pass.scratch);
                    grad_bias(dz.data, &mut grad[slot.bias.clone()]);
                }
                let wv = &params[value.weight.clone()];
                let wa = &params[advantage.weight.clone()];
                self.gemm.grad_input(dv, wv, h.cols, 0.0, grad_hidden);
                self.gemm.grad_input(da, wa, h.cols, 1.0, grad_hidden);
            }
            (_, layers) => {
                let slot = &layers[0];
                let dw = &mut grad[slot.weight.clone()];
                self.gemm.grad_weight(dq, h, dw, &mut pass.scratch);
                grad_bias(grad_q, &mut grad[slot.bias.clone()]);
                let w = &params[slot.weight.clone()];
                self.gemm.grad_input(dq, w, h.cols, 0.0, grad_hidden);
            }
        }
    }
}

/// The index of each row's largest value (the first of equal ones, as `argmax`).
pub fn argmax_rows(values: &[f32], cols: usize) -> impl Iterator<Item = usize> + '_ {
    values.chunks_exact(cols).map(|row| {
        let mut best = 0;
        for (index, &v) in row.iter().enumerate().skip(1) {
            if v > row[best] {
                best = index;
            }
        }
        best
    })
}
