//! The fast path: the network's hand-derived backward pass, written straight into the flat
//! gradient buffer (per layer two matrix products and a bias sum), instead of autograd's
//! graph of some 25 nodes. A small network's update is dominated by per-op dispatch, so
//! this is where its speed comes from; tests hold it to the autograd reference.

use anyhow::Result;
use tch::{Kind, Tensor};

use super::spec::{Head, Layer, NetworkSpec};
use super::{QFunction, Trace};

/// A layer's parameters and gradients, as views of the flat buffers.
#[derive(Debug)]
struct LayerViews {
    weight: Tensor,
    bias: Tensor,
    grad_weight: Tensor,
    grad_bias: Tensor,
}

impl LayerViews {
    fn new(layer: &Layer, flat: &Tensor, flat_grad: &Tensor) -> Self {
        let (weight, bias) = layer.views(flat);
        let (grad_weight, grad_bias) = layer.views(flat_grad);
        Self {
            weight,
            bias,
            grad_weight,
            grad_bias,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, Some(&self.bias))
    }

    /// For `z = x W^T + b`: `dW = dz^T x` and `db = sum_B dz` into the gradient views.
    fn accumulate(&self, dz: &Tensor, x: &Tensor) {
        let _ = dz.tr().mm_out(&self.grad_weight, x);
        let _ = dz.sum_intlist_out(&self.grad_bias, [0i64].as_slice(), false, Kind::Float);
    }
}

/// A Q-network trained through its hand-derived backward pass.
#[derive(Debug)]
pub struct FastQ {
    spec: NetworkSpec,
    flat: Tensor,
    flat_grad: Tensor,
    trunk: Vec<LayerViews>,
    head: Vec<LayerViews>,
}

impl FastQ {
    /// The network `spec` describes, with parameters `flat` (taken over, not copied).
    pub fn new(spec: NetworkSpec, flat: Tensor) -> Result<Self> {
        let flat_grad = flat.f_zeros_like()?;
        let (trunk, head) = spec.layers();
        let views = |layers: &[Layer]| {
            layers
                .iter()
                .map(|l| LayerViews::new(l, &flat, &flat_grad))
                .collect()
        };
        Ok(Self {
            trunk: views(&trunk),
            head: views(&head),
            spec,
            flat,
            flat_grad,
        })
    }

    /// Q-values of `obs`; `inputs` (if given) receives each trunk layer's input and then the
    /// trunk's output, which the backward pass needs.
    fn run(&self, obs: &Tensor, mut inputs: Option<&mut Vec<Tensor>>) -> Tensor {
        let mut x = obs.shallow_clone();
        for layer in &self.trunk {
            let y = self.spec.activation.forward(&layer.forward(&x));
            if let Some(inputs) = inputs.as_deref_mut() {
                inputs.push(x);
            }
            x = y;
        }
        let q = match (self.spec.head, self.head.as_slice()) {
            (Head::Dueling, [value, advantage]) => {
                super::dueling_q(&value.forward(&x), &advantage.forward(&x))
            }
            (_, layers) => layers[0].forward(&x),
        };
        if let Some(inputs) = inputs {
            inputs.push(x);
        }
        q
    }
}

impl QFunction for FastQ {
    fn spec(&self) -> &NetworkSpec {
        &self.spec
    }

    fn flat(&self) -> &Tensor {
        &self.flat
    }

    fn flat_grad(&self) -> &Tensor {
        &self.flat_grad
    }

    fn forward(&self, obs: &Tensor) -> Tensor {
        tch::no_grad(|| self.run(obs, None))
    }

    fn forward_traced(&self, obs: &Tensor) -> (Tensor, Trace) {
        tch::no_grad(|| {
            let mut inputs = Vec::with_capacity(self.trunk.len() + 1);
            let q = self.run(obs, Some(&mut inputs));
            (q, Trace { tensors: inputs })
        })
    }

    /// The head's gradients, then back through the trunk: `dx = dz W`, and
    /// `dz_prev = act'(dx)` read off the activation's output.
    fn backward(&self, trace: &Trace, grad_q: &Tensor) {
        tch::no_grad(|| {
            let inputs = &trace.tensors;
            let Some(h) = inputs.last() else { return };
            let mut dh = match (self.spec.head, self.head.as_slice()) {
                // Q = V + A - mean(A): dV = sum_a dQ, dA = dQ - mean_a(dQ).
                (Head::Dueling, [value, advantage]) => {
                    let dv = grad_q.sum_dim_intlist(1, true, Kind::Float);
                    let da = grad_q - grad_q.mean_dim(1, true, Kind::Float);
                    value.accumulate(&dv, h);
                    advantage.accumulate(&da, h);
                    dv.mm(&value.weight).addmm(&da, &advantage.weight)
                }
                (_, layers) => {
                    layers[0].accumulate(grad_q, h);
                    grad_q.mm(&layers[0].weight)
                }
            };
            for (index, layer) in self.trunk.iter().enumerate().rev() {
                let dz = self.spec.activation.backward(&dh, &inputs[index + 1]);
                layer.accumulate(&dz, &inputs[index]);
                if index > 0 {
                    dh = dz.mm(&layer.weight);
                }
            }
        })
    }
}
