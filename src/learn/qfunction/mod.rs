//! The Q-function seam: one interface the learner trains through, two implementations.
//!
//! - [`ReferenceQ`]: built as tch expects (`nn::seq`, `nn::Linear`), gradients by
//!   libtorch's autograd. Any new head works here first.
//! - [`FastQ`]: the hand-derived backward pass, for the heads it covers (plain and
//!   dueling); tests hold it to the reference. On the CPU the learner runs the same
//!   arithmetic on [`HostNet`], the host kernel, which skips libtorch's per-op dispatch.
//!
//! Both keep every parameter in one flat buffer (the variables are views of it), so the
//! optimizer, gradient clipping, target copies and checkpoints are one op each, and both
//! are described by one [`NetworkSpec`], which export and the C++ shim read too.

mod activation;
mod fast;
mod host;
mod products;
mod reference;
mod spec;

use std::fmt;

use anyhow::{bail, Context, Result};
use tch::{Device, Tensor};

use crate::config::{Implementation, NetworkConfig};

pub use fast::FastQ;
pub use host::{argmax_rows, HostNet, Pass};
#[cfg(test)]
pub(crate) use products::blas_available;
pub use reference::ReferenceQ;
pub use spec::{Head, Layer, ModuleDef, NetworkSpec};

/// The dueling head's combine (Wang et al., 2016), `Q = V + A - mean_a(A)`, for `V` `[B, 1]`
/// and `A` `[B, n_actions]`: the one tensor form both implementations compute.
fn dueling_q(value: &Tensor, advantage: &Tensor) -> Tensor {
    value + advantage - advantage.mean_dim(1, true, tch::Kind::Float)
}

/// What a traced forward pass keeps for the backward pass (opaque to callers).
#[derive(Debug)]
pub struct Trace {
    tensors: Vec<Tensor>,
}

/// A Q-network the learner can act with and train.
pub trait QFunction: fmt::Debug {
    /// Its description.
    fn spec(&self) -> &NetworkSpec;
    /// All parameters, as one flat tensor that the layers' parameters are views of.
    fn flat(&self) -> &Tensor;
    /// The gradients the last [`QFunction::backward`] wrote, in [`QFunction::flat`]'s order.
    fn flat_grad(&self) -> &Tensor;
    /// Q-values `[B, n_actions]` of observations `[B, obs_dim]`, without a graph.
    fn forward(&self, obs: &Tensor) -> Tensor;
    /// Q-values of `obs` (detached), keeping what [`QFunction::backward`] needs.
    fn forward_traced(&self, obs: &Tensor) -> (Tensor, Trace);
    /// Back-propagates dLoss/dQ `[B, n_actions]` through the pass `trace` recorded, writing
    /// dLoss/dparameters into [`QFunction::flat_grad`] (overwriting it).
    fn backward(&self, trace: &Trace, grad_q: &Tensor);

    /// The device the parameters live on.
    fn device(&self) -> Device {
        self.flat().device()
    }

    /// Overwrites all parameters with `flat` (same length, any device).
    fn load_flat(&self, flat: &Tensor) -> Result<()> {
        if flat.size() != self.flat().size() {
            bail!(
                "parameter count mismatch: the network has {} parameters, the checkpoint {}",
                self.flat().numel(),
                flat.numel()
            );
        }
        tch::no_grad(|| {
            self.flat()
                .shallow_clone()
                .f_copy_(flat)
                .context("copying parameters into the Q-network")
        })
    }
}

/// The network `cfg` describes (`obs_dim` observations, `n_actions` Q-values) on `device`,
/// initialised from libtorch's generator (seed it with `tch::manual_seed` first).
pub fn build(
    cfg: &NetworkConfig,
    obs_dim: i64,
    n_actions: i64,
    device: Device,
) -> Result<Box<dyn QFunction>> {
    let spec = NetworkSpec::new(cfg, obs_dim, n_actions)?;
    let flat = spec.init_flat(device)?;
    with_implementation(cfg.implementation, spec, flat)
}

/// The network `spec` describes with the parameters `flat` (taken over), trained through
/// `implementation`.
pub fn with_implementation(
    implementation: Implementation,
    spec: NetworkSpec,
    flat: Tensor,
) -> Result<Box<dyn QFunction>> {
    Ok(match implementation {
        Implementation::Fast => Box::new(FastQ::new(spec, flat)?),
        Implementation::Reference => Box::new(ReferenceQ::new(spec, flat)?),
    })
}

/// The network `spec` describes with the parameters `flat` (read from a model file, say), to
/// play greedily: the reference implementation, libtorch's own modules.
pub fn with_parameters(spec: NetworkSpec, flat: Tensor) -> Result<Box<dyn QFunction>> {
    Ok(Box::new(ReferenceQ::new(spec, flat)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Activation, Init};
    use tch::Kind;

    /// Fast and reference networks over the same parameters.
    fn pair(
        hidden: Vec<i64>,
        activation: Activation,
        dueling: bool,
    ) -> Result<(FastQ, ReferenceQ)> {
        let cfg = NetworkConfig {
            hidden,
            activation,
            init: Init::Torch,
            dueling,
            implementation: Implementation::Fast,
        };
        let spec = NetworkSpec::new(&cfg, 4, 2)?;
        tch::manual_seed(11);
        let flat = spec.init_flat(Device::Cpu)?;
        Ok((
            FastQ::new(spec.clone(), flat.copy())?,
            ReferenceQ::new(spec, flat)?,
        ))
    }

    /// The hand-derived backward pass gives autograd's gradients, for every head and
    /// activation; the forward passes agree.
    #[test]
    fn the_fast_path_matches_the_reference() -> Result<()> {
        for dueling in [false, true] {
            for activation in [Activation::Relu, Activation::Tanh] {
                let (fast, reference) = pair(vec![16, 8], activation, dueling)?;
                tch::manual_seed(3);
                let obs = Tensor::randn([32, 4], (Kind::Float, Device::Cpu));
                let upstream = Tensor::randn([32, 2], (Kind::Float, Device::Cpu));
                let (q_fast, trace) = fast.forward_traced(&obs);
                let (q_ref, ref_trace) = reference.forward_traced(&obs);
                let what = format!("dueling {dueling}, {activation:?}");
                assert!(
                    q_fast.allclose(&q_ref, 1e-6, 1e-6, false),
                    "{what}: Q differs"
                );
                assert!(q_fast.allclose(&fast.forward(&obs), 0.0, 0.0, false));
                fast.backward(&trace, &upstream);
                reference.backward(&ref_trace, &upstream);
                let diff = (fast.flat_grad() - reference.flat_grad())
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(diff < 1e-5, "{what}: gradients differ by {diff}");
                let norm = reference
                    .flat_grad()
                    .abs()
                    .sum(Kind::Float)
                    .double_value(&[]);
                assert!(norm > 0.0, "{what}: a zero gradient proves nothing");
            }
        }
        Ok(())
    }

    #[test]
    fn reference_variables_are_named_like_the_pytorch_module_and_view_the_flat_buffer() -> Result<()>
    {
        let (_, reference) = pair(vec![8], Activation::Relu, true)?;
        let mut names: Vec<String> = reference.variable_names();
        names.sort();
        assert_eq!(
            names,
            [
                "advantage.bias",
                "advantage.weight",
                "trunk.0.bias",
                "trunk.0.weight",
                "value.bias",
                "value.weight"
            ]
        );
        // Writing the flat buffer changes what the network computes.
        let obs = Tensor::ones([3, 4], (Kind::Float, Device::Cpu));
        let before = reference.forward(&obs);
        tch::no_grad(|| {
            let _ = reference.flat().shallow_clone().fill_(0.0);
        });
        assert!(before.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        let after = reference
            .forward(&obs)
            .abs()
            .sum(Kind::Float)
            .double_value(&[]);
        assert_eq!(after, 0.0);
        Ok(())
    }
}
