//! The Q-network: an MLP from observation to one Q-value per action, as a tch `nn::seq`.
//!
//! Layers are registered under the names `torch.nn.Sequential` gives them (`0`, `2`, `4`,
//! ... for the linear layers, the activations in between taking the odd indices), so the
//! VarStore's variable names (`0.weight`, `0.bias`, ...) are the PyTorch state_dict keys.
//!
//! A small network's update is dominated by per-op dispatch, not arithmetic, so training
//! avoids ops where it can:
//! - all parameters live in one contiguous buffer ([`QNetwork::flat`]), each VarStore variable
//!   a view into it, so the optimizer, gradient clipping and target copies are one op each;
//! - the training pass uses the MLP's hand-derived backward pass ([`QNetwork::backward`]):
//!   per layer, two matrix products and a bias sum written straight into a flat gradient
//!   buffer, instead of autograd's graph of some 25 nodes. A test checks it against
//!   autograd for both activations.

use anyhow::{bail, Context, Result};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use crate::config::{Activation, Init, NetworkConfig};

/// One linear layer's place in the flat parameter buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerShape {
    /// Input features.
    pub fan_in: i64,
    /// Output features.
    pub fan_out: i64,
}

/// An MLP Q-network whose parameters share one flat buffer.
#[derive(Debug)]
pub struct QNetwork {
    vs: nn::VarStore,
    seq: nn::Sequential,
    layers: Vec<LayerShape>,
    activation: Activation,
    flat: Tensor,
    flat_grad: Tensor,
    params: Vec<Tensor>,
    grad_views: Vec<Tensor>,
}

/// The input of each linear layer in a training forward pass, kept for [`QNetwork::backward`].
#[derive(Debug)]
pub struct Trace {
    inputs: Vec<Tensor>,
}

impl QNetwork {
    /// Builds `obs_dim -> hidden... -> n_actions` on `device`, initialised from libtorch's
    /// generator (seed it with `tch::manual_seed` first for a reproducible network).
    pub fn new(cfg: &NetworkConfig, obs_dim: i64, n_actions: i64, device: Device) -> Result<Self> {
        if cfg.hidden.is_empty() {
            bail!("network.hidden must list at least one hidden layer");
        }
        let mut sizes = vec![obs_dim];
        sizes.extend(&cfg.hidden);
        sizes.push(n_actions);
        let layers: Vec<LayerShape> = sizes
            .windows(2)
            .map(|pair| LayerShape {
                fan_in: pair[0],
                fan_out: pair[1],
            })
            .collect();
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let mut seq = nn::seq();
        for (index, layer) in layers.iter().enumerate() {
            let name = (2 * index).to_string();
            let linear = fallible_linear(&(&root / name.as_str()), layer, cfg.init)
                .with_context(|| format!("allocating layer {name} of the Q-network"))?;
            seq = seq.add(linear);
            if index + 1 < layers.len() {
                seq = match cfg.activation {
                    Activation::Relu => seq.add_fn(|x| x.relu()),
                    Activation::Tanh => seq.add_fn(|x| x.tanh()),
                };
            }
        }
        let numel: i64 = layers.iter().map(|l| l.fan_out * (l.fan_in + 1)).sum();
        let flat = Tensor::f_zeros([numel], (Kind::Float, device))
            .context("allocating the Q-network's parameters")?;
        let flat_grad = Tensor::f_zeros([numel], (Kind::Float, device))
            .context("allocating the Q-network's gradients")?;
        let mut net = Self {
            vs,
            seq,
            layers,
            activation: cfg.activation,
            flat,
            flat_grad,
            params: Vec::new(),
            grad_views: Vec::new(),
        };
        net.bind_to_flat()?;
        Ok(net)
    }

    /// Makes every variable a view into `self.flat`, keeping its current values.
    fn bind_to_flat(&mut self) -> Result<()> {
        let variables = self.vs.variables();
        let mut offset = 0;
        for (index, layer) in self.layers.iter().enumerate() {
            for (suffix, shape) in [
                ("weight", vec![layer.fan_out, layer.fan_in]),
                ("bias", vec![layer.fan_out]),
            ] {
                let name = format!("{}.{suffix}", 2 * index);
                let mut var = variables
                    .get(&name)
                    .with_context(|| format!("the Q-network has no variable {name}"))?
                    .shallow_clone();
                let numel: i64 = shape.iter().product();
                let view = self.flat.narrow(0, offset, numel).view(shape.as_slice());
                tch::no_grad(|| view.shallow_clone().copy_(&var));
                var.set_data(&view);
                self.params.push(var);
                self.grad_views.push(
                    self.flat_grad
                        .narrow(0, offset, numel)
                        .view(shape.as_slice()),
                );
                offset += numel;
            }
        }
        Ok(())
    }

    /// Q-values `[B, n_actions]` of observations `[B, obs_dim]`.
    pub fn forward(&self, obs: &Tensor) -> Tensor {
        self.seq.forward(obs)
    }

    /// All parameters, as one flat tensor that the variables are views of.
    pub fn flat(&self) -> &Tensor {
        &self.flat
    }

    /// Q-values `[B, n_actions]` of `obs`, keeping what [`QNetwork::backward`] needs.
    pub fn forward_traced(&self, obs: &Tensor) -> (Tensor, Trace) {
        tch::no_grad(|| {
            let n_layers = self.layers.len();
            let mut inputs = Vec::with_capacity(n_layers);
            let mut x = obs.shallow_clone();
            for index in 0..n_layers {
                let (weight, bias) = (&self.params[2 * index], &self.params[2 * index + 1]);
                let z = x.linear(weight, Some(bias));
                inputs.push(x);
                x = if index + 1 == n_layers {
                    z
                } else {
                    match self.activation {
                        Activation::Relu => z.relu(),
                        Activation::Tanh => z.tanh(),
                    }
                };
            }
            (x, Trace { inputs })
        })
    }

    /// Back-propagates `grad_output` (dLoss/dQ, `[B, n_actions]`) through the pass `trace`
    /// recorded, writing dLoss/dparameters into [`QNetwork::flat_grad`] (overwriting it).
    ///
    /// For `z = x W^T + b` with `x = act(z_prev)`: `dW = dz^T x`, `db = sum_B dz`,
    /// `dx = dz W`, `dz_prev = dx * act'(z_prev)`, with `act'` read off the activation's
    /// output (relu: `x > 0`; tanh: `1 - x^2`).
    pub fn backward(&self, trace: &Trace, grad_output: &Tensor) {
        tch::no_grad(|| {
            let mut dz = grad_output.shallow_clone();
            for index in (0..self.layers.len()).rev() {
                let x = &trace.inputs[index];
                let (grad_weight, grad_bias) =
                    (&self.grad_views[2 * index], &self.grad_views[2 * index + 1]);
                let _ = dz.tr().mm_out(grad_weight, x);
                let _ = dz.sum_intlist_out(grad_bias, [0i64].as_slice(), false, Kind::Float);
                if index > 0 {
                    let dx = dz.mm(&self.params[2 * index]);
                    dz = match self.activation {
                        Activation::Relu => x.threshold_backward(&dx, 0.0),
                        Activation::Tanh => Tensor::tanh_backward(&dx, x),
                    };
                }
            }
        })
    }

    /// The VarStore variables (views of the flat buffer), in its order, for tests.
    #[cfg(test)]
    pub(crate) fn variables(&self) -> &[Tensor] {
        &self.params
    }

    /// The gradients written by the last [`QNetwork::backward`], in [`QNetwork::flat`]'s order.
    pub fn flat_grad(&self) -> &Tensor {
        &self.flat_grad
    }

    /// The parameters in layer order: (weight `[out, in]`, bias `[out]`) per linear layer.
    pub fn layer_tensors(&self) -> Vec<(Tensor, Tensor)> {
        self.layer_views(&self.flat)
    }

    /// Views of `flat`, a buffer laid out like [`QNetwork::flat`], as (weight, bias) per layer.
    pub fn layer_views(&self, flat: &Tensor) -> Vec<(Tensor, Tensor)> {
        let mut offset = 0;
        self.layers
            .iter()
            .map(|layer| {
                let weight_numel = layer.fan_out * layer.fan_in;
                let weight = flat
                    .narrow(0, offset, weight_numel)
                    .view([layer.fan_out, layer.fan_in]);
                let bias = flat.narrow(0, offset + weight_numel, layer.fan_out);
                offset += weight_numel + layer.fan_out;
                (weight, bias)
            })
            .collect()
    }

    /// The layer sizes.
    pub fn layers(&self) -> &[LayerShape] {
        &self.layers
    }

    /// The hidden-layer nonlinearity.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.flat.device()
    }

    /// Overwrites all parameters with `flat` (same length, any device).
    pub fn load_flat(&self, flat: &Tensor) -> Result<()> {
        if flat.size() != self.flat.size() {
            bail!(
                "parameter count mismatch: the network has {} parameters, the checkpoint {}",
                self.flat.numel(),
                flat.numel()
            );
        }
        tch::no_grad(|| {
            self.flat
                .shallow_clone()
                .f_copy_(flat)
                .context("copying parameters into the Q-network")
        })
    }
}

/// `nn::linear`, but an allocation failure is an error rather than a panic.
fn fallible_linear(path: &nn::Path<'_>, layer: &LayerShape, init: Init) -> Result<nn::Linear> {
    let config = linear_config(init, layer);
    let ws = path.f_var("weight", &[layer.fan_out, layer.fan_in], config.ws_init)?;
    let bs = match config.bs_init {
        Some(bs_init) => Some(path.f_var("bias", &[layer.fan_out], bs_init)?),
        None => None,
    };
    Ok(nn::Linear { ws, bs })
}

fn linear_config(init: Init, layer: &LayerShape) -> nn::LinearConfig {
    match init {
        // PyTorch's nn.Linear.reset_parameters: kaiming_uniform(a = sqrt(5)) for the
        // weight, which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same for the bias.
        // (tch's own default uses the ReLU gain, sqrt(6 / fan_in).)
        Init::Torch => {
            let bound = 1.0 / (layer.fan_in as f64).sqrt();
            let uniform = nn::Init::Uniform {
                lo: -bound,
                up: bound,
            };
            nn::LinearConfig {
                ws_init: uniform,
                bs_init: Some(uniform),
                bias: true,
            }
        }
        // Keras Dense: glorot_uniform kernel, zero bias.
        Init::GlorotUniform => {
            let bound = (6.0 / (layer.fan_in + layer.fan_out) as f64).sqrt();
            nn::LinearConfig {
                ws_init: nn::Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
                bs_init: Some(nn::Init::Const(0.0)),
                bias: true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(hidden: Vec<i64>, init: Init) -> NetworkConfig {
        NetworkConfig {
            hidden,
            activation: Activation::Relu,
            init,
        }
    }

    #[test]
    fn variables_are_named_like_nn_sequential_and_view_the_flat_buffer() -> Result<()> {
        let net = QNetwork::new(&config(vec![32, 32], Init::Torch), 4, 2, Device::Cpu)?;
        let mut names: Vec<String> = net.vs.variables().into_keys().collect();
        names.sort();
        assert_eq!(
            names,
            ["0.bias", "0.weight", "2.bias", "2.weight", "4.bias", "4.weight"]
        );
        assert_eq!(net.flat().numel(), 4 * 32 + 32 + 32 * 32 + 32 + 32 * 2 + 2);
        // Writing the flat buffer changes what the network computes.
        let obs = Tensor::ones([3, 4], (Kind::Float, Device::Cpu));
        let before = net.forward(&obs);
        tch::no_grad(|| {
            let _ = net.flat().shallow_clone().fill_(0.0);
        });
        let after = net.forward(&obs);
        assert!(before.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        assert_eq!(after.abs().sum(Kind::Float).double_value(&[]), 0.0);
        Ok(())
    }

    #[test]
    fn init_bounds_match_pytorch_and_keras() -> Result<()> {
        let torch = QNetwork::new(&config(vec![64], Init::Torch), 4, 2, Device::Cpu)?;
        let (w0, b0) = &torch.layer_tensors()[0];
        assert!(w0.abs().max().double_value(&[]) <= 0.5 + 1e-7);
        assert!(w0.abs().max().double_value(&[]) > 0.4);
        assert!(b0.abs().max().double_value(&[]) > 0.0);
        let keras = QNetwork::new(&config(vec![64], Init::GlorotUniform), 4, 2, Device::Cpu)?;
        let (w0, b0) = &keras.layer_tensors()[0];
        let bound = (6.0f64 / 68.0).sqrt();
        assert!(w0.abs().max().double_value(&[]) <= bound + 1e-7);
        assert_eq!(b0.abs().max().double_value(&[]), 0.0);
        Ok(())
    }

    /// The hand-derived backward pass gives autograd's gradients.
    #[test]
    fn backward_matches_autograd() -> Result<()> {
        for activation in [Activation::Relu, Activation::Tanh] {
            tch::manual_seed(11);
            let cfg = NetworkConfig {
                hidden: vec![16, 8],
                activation,
                init: Init::Torch,
            };
            let net = QNetwork::new(&cfg, 4, 2, Device::Cpu)?;
            let obs = Tensor::randn([32, 4], (Kind::Float, Device::Cpu));
            let upstream = Tensor::randn([32, 2], (Kind::Float, Device::Cpu));
            // Autograd: d(sum(Q * upstream))/dparams = backprop of upstream.
            (net.forward(&obs) * &upstream).sum(Kind::Float).backward();
            let autograd = Tensor::cat(
                &net.params
                    .iter()
                    .map(|p| p.grad().flatten(0, -1))
                    .collect::<Vec<_>>(),
                0,
            );
            let (q, trace) = net.forward_traced(&obs);
            assert!(q.allclose(&net.forward(&obs), 1e-6, 1e-6, false));
            net.backward(&trace, &upstream);
            let diff = (net.flat_grad() - &autograd).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{activation:?}: gradients differ by {diff}");
            assert!(autograd.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        }
        Ok(())
    }
}
