//! The reference: the network built as tch expects, from `nn::seq` and `nn::Linear`
//! modules in a VarStore named like the PyTorch module, with libtorch's autograd computing
//! the gradients. Any new head works here first; the fast path is held to it by tests.
//!
//! The variables are views of one flat buffer, like the fast path's, so the optimizer and
//! checkpoints see the same layout whichever implementation trains.

use anyhow::{Context, Result};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::spec::{Head, NetworkSpec};
use super::{QFunction, Trace};

/// A Q-network trained through autograd.
#[derive(Debug)]
pub struct ReferenceQ {
    spec: NetworkSpec,
    // Owns the variables the modules hold.
    _vs: nn::VarStore,
    trunk: nn::Sequential,
    heads: Vec<nn::Linear>,
    flat: Tensor,
    flat_grad: Tensor,
    variables: Vec<Tensor>,
    grad_views: Vec<Tensor>,
}

impl ReferenceQ {
    /// The network `spec` describes, with parameters `flat` (taken over, not copied).
    pub fn new(spec: NetworkSpec, flat: Tensor) -> Result<Self> {
        let vs = nn::VarStore::new(flat.device());
        let root = vs.root();
        let (trunk_layers, head_layers) = spec.layers();
        // Variables start as zeros (no draw from the generator) and are then bound to `flat`.
        let linear = |name: &str, fan_in: i64, fan_out: i64| -> Result<nn::Linear> {
            let path = name.split('.').fold(root.clone(), |p, part| p / part);
            Ok(nn::Linear {
                ws: path.f_zeros("weight", &[fan_out, fan_in])?,
                bs: Some(path.f_zeros("bias", &[fan_out])?),
            })
        };
        let activation = spec.activation;
        let mut trunk = nn::seq();
        for layer in &trunk_layers {
            trunk = trunk
                .add(linear(&layer.name, layer.fan_in, layer.fan_out)?)
                .add_fn(move |x| activation.forward(x));
        }
        let heads = head_layers
            .iter()
            .map(|l| linear(&l.name, l.fan_in, l.fan_out))
            .collect::<Result<Vec<_>>>()?;
        let flat_grad = flat.f_zeros_like()?;
        let by_name = vs.variables();
        let mut variables = Vec::new();
        let mut grad_views = Vec::new();
        let named_grads = spec.named_parameters(&flat_grad)?;
        for ((name, view), (_, grad_view)) in
            spec.named_parameters(&flat)?.into_iter().zip(named_grads)
        {
            let mut variable = by_name
                .get(&name)
                .with_context(|| format!("the reference Q-network has no variable {name}"))?
                .shallow_clone();
            variable.set_data(&view);
            variables.push(variable);
            grad_views.push(grad_view);
        }
        Ok(Self {
            spec,
            _vs: vs,
            trunk,
            heads,
            flat,
            flat_grad,
            variables,
            grad_views,
        })
    }

    /// The VarStore's variable names (the PyTorch module's parameter names), for tests.
    #[cfg(test)]
    pub(super) fn variable_names(&self) -> Vec<String> {
        self._vs.variables().into_keys().collect()
    }

    fn run(&self, obs: &Tensor) -> Tensor {
        let h = self.trunk.forward(obs);
        match (self.spec.head, self.heads.as_slice()) {
            (Head::Dueling, [value, advantage]) => {
                super::dueling_q(&value.forward(&h), &advantage.forward(&h))
            }
            (_, heads) => heads[0].forward(&h),
        }
    }
}

impl QFunction for ReferenceQ {
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
        tch::no_grad(|| self.run(obs))
    }

    fn forward_traced(&self, obs: &Tensor) -> (Tensor, Trace) {
        let q = self.run(obs);
        (q.detach(), Trace { tensors: vec![q] })
    }

    /// Autograd's gradient of `sum(Q * grad_q)`, which is the backward pass of `grad_q`.
    fn backward(&self, trace: &Trace, grad_q: &Tensor) {
        let Some(q) = trace.tensors.first() else {
            return;
        };
        let objective = (q * grad_q.detach()).sum(Kind::Float);
        let grads = Tensor::run_backward(&[objective], &self.variables, false, false);
        tch::no_grad(|| {
            for (view, grad) in self.grad_views.iter().zip(&grads) {
                view.shallow_clone().copy_(grad);
            }
        });
    }
}
