//! One description of a Q-network, read by training, checkpoints, export and the C++ shim:
//! its layer shapes, activation and head, the PyTorch names of its parameters and their
//! places in one flat buffer, and the TorchScript modules that compute it.
//!
//! A network is a trunk of hidden layers (`Linear` then the activation) and a head:
//! - plain: one `Linear` to the Q-values; parameters named as `torch.nn.Sequential` names
//!   them (`0.weight`, `0.bias`, `2.weight`, ..., the activations taking the odd indices);
//! - dueling (Wang et al., 2016): `value` (`Linear` to 1) and `advantage` (`Linear` to
//!   `n_actions`) on the trunk's output, `Q = V + A - mean(A)`; the trunk is an
//!   `nn.Sequential` named `trunk` (`trunk.0.weight`, ...).

use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

use crate::config::{Activation, Init, NetworkConfig};

/// The head on top of the trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// One linear layer to the Q-values.
    Plain,
    /// Value and advantage streams combined as `V + A - mean(A)`.
    Dueling,
}

/// One linear layer: its module path, its shape, its place in the flat buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Module path in PyTorch (`0`, `trunk.2`, `value`, ...).
    pub name: String,
    /// Input features.
    pub fan_in: i64,
    /// Output features.
    pub fan_out: i64,
    /// Offset of its weight `[fan_out, fan_in]` in the flat buffer; the bias follows it.
    pub offset: i64,
}

impl Layer {
    /// Parameters of the layer (bias and weight).
    pub fn numel(&self) -> i64 {
        self.fan_out * (self.fan_in + 1)
    }

    /// Views of `flat` as this layer's (weight `[out, in]`, bias `[out]`).
    pub fn views(&self, flat: &Tensor) -> (Tensor, Tensor) {
        let weight_numel = self.fan_out * self.fan_in;
        let weight = flat
            .narrow(0, self.offset, weight_numel)
            .view([self.fan_out, self.fan_in]);
        let bias = flat.narrow(0, self.offset + weight_numel, self.fan_out);
        (weight, bias)
    }
}

/// A TorchScript module of the export: its path (`""` for the root), class and `forward`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleDef {
    /// Dotted path from the root.
    pub path: String,
    /// Class name (modules of one class share their TorchScript type).
    pub class: &'static str,
    /// TorchScript source of its methods.
    pub source: String,
}

/// The description of a Q-network.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSpec {
    /// Observation width.
    pub obs_dim: i64,
    /// Number of actions (Q-values per observation).
    pub n_actions: i64,
    /// Hidden layer widths.
    pub hidden: Vec<i64>,
    /// Nonlinearity after each hidden layer.
    pub activation: Activation,
    /// The head.
    pub head: Head,
    /// Weight initialisation.
    pub init: Init,
}

impl NetworkSpec {
    /// The network `cfg` describes, from `obs_dim` observations to `n_actions` Q-values.
    pub fn new(cfg: &NetworkConfig, obs_dim: i64, n_actions: i64) -> Result<Self> {
        if cfg.hidden.is_empty() {
            bail!("network.hidden must list at least one hidden layer");
        }
        Ok(Self {
            obs_dim,
            n_actions,
            hidden: cfg.hidden.clone(),
            activation: cfg.activation,
            head: if cfg.dueling {
                Head::Dueling
            } else {
                Head::Plain
            },
            init: cfg.init,
        })
    }

    /// The hidden layers, then the head's layers, in flat-buffer order.
    pub fn layers(&self) -> (Vec<Layer>, Vec<Layer>) {
        let prefix = match self.head {
            Head::Plain => "",
            Head::Dueling => "trunk.",
        };
        let mut offset = 0;
        let mut layer = |name: String, fan_in: i64, fan_out: i64| {
            let l = Layer {
                name,
                fan_in,
                fan_out,
                offset,
            };
            offset += l.numel();
            l
        };
        let mut width = self.obs_dim;
        let mut trunk = Vec::with_capacity(self.hidden.len());
        for (index, &out) in self.hidden.iter().enumerate() {
            trunk.push(layer(format!("{prefix}{}", 2 * index), width, out));
            width = out;
        }
        let head = match self.head {
            Head::Plain => vec![layer(
                (2 * self.hidden.len()).to_string(),
                width,
                self.n_actions,
            )],
            Head::Dueling => vec![
                layer("value".to_owned(), width, 1),
                layer("advantage".to_owned(), width, self.n_actions),
            ],
        };
        (trunk, head)
    }

    /// Parameters in all.
    pub fn numel(&self) -> i64 {
        let (trunk, head) = self.layers();
        trunk.iter().chain(&head).map(Layer::numel).sum()
    }

    /// Every parameter under its PyTorch name, as a view of `flat` (weights before biases,
    /// layer by layer, which is `state_dict` order).
    pub fn named_parameters(&self, flat: &Tensor) -> Result<Vec<(String, Tensor)>> {
        if flat.size() != [self.numel()] || !matches!(flat.f_kind()?, Kind::Float) {
            bail!(
                "a {:?} {:?} buffer does not hold this network's {} float parameters",
                flat.f_kind()?,
                flat.size(),
                self.numel()
            );
        }
        let (trunk, head) = self.layers();
        Ok(trunk
            .iter()
            .chain(&head)
            .flat_map(|layer| {
                let (weight, bias) = layer.views(flat);
                [
                    (format!("{}.weight", layer.name), weight),
                    (format!("{}.bias", layer.name), bias),
                ]
            })
            .collect())
    }

    /// The head's name in metadata (`plain` or `dueling`).
    pub fn head_name(&self) -> &'static str {
        match self.head {
            Head::Plain => "plain",
            Head::Dueling => "dueling",
        }
    }

    /// The TorchScript modules computing this network, children before their parents, the
    /// root (path `""`) last.
    pub fn torchscript_modules(&self) -> Vec<ModuleDef> {
        let (trunk, head) = self.layers();
        let linear = |layer: &Layer| ModuleDef {
            path: layer.name.clone(),
            class: "Linear",
            source: "def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n"
                .to_owned(),
        };
        let act = self.activation.torchscript();
        // The trunk's layers by their index in their own sequential.
        let chain = |layers: &[Layer], activate_last: bool| {
            let mut source = String::from("def forward(self, x):\n");
            for (i, layer) in layers.iter().enumerate() {
                let child = layer.name.rsplit('.').next().unwrap_or(&layer.name);
                source.push_str(&format!("    x = getattr(self, '{child}').forward(x)\n"));
                if activate_last || i + 1 < layers.len() {
                    source.push_str(&format!("    x = {act}(x)\n"));
                }
            }
            source.push_str("    return x\n");
            source
        };
        let mut modules: Vec<ModuleDef> = trunk.iter().chain(&head).map(linear).collect();
        match self.head {
            Head::Plain => {
                let all: Vec<Layer> = trunk.iter().chain(&head).cloned().collect();
                modules.push(ModuleDef {
                    path: String::new(),
                    class: "QNetwork",
                    source: chain(&all, false),
                });
            }
            Head::Dueling => {
                modules.push(ModuleDef {
                    path: "trunk".to_owned(),
                    class: "Trunk",
                    source: chain(&trunk, true),
                });
                modules.push(ModuleDef {
                    path: String::new(),
                    class: "DuelingQNetwork",
                    source: "def forward(self, x):\n    h = self.trunk.forward(x)\n    \
                             a = self.advantage.forward(h)\n    \
                             return self.value.forward(h) + a - a.mean(1, keepdim=True)\n"
                        .to_owned(),
                });
            }
        }
        modules
    }

    /// A flat buffer of freshly initialised parameters on `device`, drawn from libtorch's
    /// generator in the order of tch's `nn::linear` (bias, then weight, layer by layer).
    pub fn init_flat(&self, device: tch::Device) -> Result<Tensor> {
        let flat = Tensor::f_zeros([self.numel()], (Kind::Float, device))
            .context("allocating the Q-network's parameters")?;
        let (trunk, head) = self.layers();
        tch::no_grad(|| -> Result<()> {
            for layer in trunk.iter().chain(&head) {
                let (weight, bias) = layer.views(&flat);
                let (weight_init, bias_init) = self.init.bounds(layer.fan_in, layer.fan_out);
                for (mut tensor, bound) in [(bias, bias_init), (weight, weight_init)] {
                    let _ = match bound {
                        Some(b) => tensor.f_uniform_(-b, b)?,
                        None => tensor.f_zero_()?,
                    };
                }
            }
            Ok(())
        })?;
        Ok(flat)
    }
}

impl Init {
    /// Uniform bounds of a layer's (weight, bias); `None` is a zero init.
    fn bounds(self, fan_in: i64, fan_out: i64) -> (Option<f64>, Option<f64>) {
        match self {
            // PyTorch's nn.Linear.reset_parameters: kaiming_uniform(a = sqrt(5)) for the
            // weight, which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same for the bias.
            Init::Torch => {
                let bound = 1.0 / (fan_in as f64).sqrt();
                (Some(bound), Some(bound))
            }
            // Keras Dense: glorot_uniform kernel, zero bias.
            Init::GlorotUniform => (Some((6.0 / (fan_in + fan_out) as f64).sqrt()), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(hidden: Vec<i64>, dueling: bool) -> Result<NetworkSpec> {
        NetworkSpec::new(
            &NetworkConfig {
                hidden,
                activation: Activation::Relu,
                init: Init::Torch,
                dueling,
                implementation: crate::config::Implementation::Fast,
            },
            4,
            2,
        )
    }

    #[test]
    fn plain_parameters_are_named_like_nn_sequential() -> Result<()> {
        let net = spec(vec![32, 32], false)?;
        assert_eq!(net.numel(), 4 * 32 + 32 + 32 * 32 + 32 + 32 * 2 + 2);
        let flat = Tensor::zeros([net.numel()], (Kind::Float, tch::Device::Cpu));
        let names: Vec<String> = net
            .named_parameters(&flat)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
        );
        let modules = net.torchscript_modules();
        assert_eq!(modules.len(), 4);
        let root = &modules[3];
        assert_eq!((root.path.as_str(), root.class), ("", "QNetwork"));
        assert_eq!(root.source.matches("torch.relu").count(), 2);
        Ok(())
    }

    #[test]
    fn dueling_parameters_have_a_trunk_and_two_streams() -> Result<()> {
        let net = spec(vec![16], true)?;
        let flat = Tensor::zeros([net.numel()], (Kind::Float, tch::Device::Cpu));
        let named = net.named_parameters(&flat)?;
        let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "trunk.0.weight",
                "trunk.0.bias",
                "value.weight",
                "value.bias",
                "advantage.weight",
                "advantage.bias"
            ]
        );
        assert_eq!(named[2].1.size(), [1, 16]);
        assert_eq!(named[4].1.size(), [2, 16]);
        let modules = net.torchscript_modules();
        let paths: Vec<&str> = modules.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(paths, ["trunk.0", "value", "advantage", "trunk", ""]);
        assert!(net.named_parameters(&flat.narrow(0, 0, 3)).is_err());
        Ok(())
    }

    #[test]
    fn initial_values_follow_the_init_scheme() -> Result<()> {
        let net = spec(vec![64], false)?;
        let flat = net.init_flat(tch::Device::Cpu)?;
        let (trunk, _) = net.layers();
        let (w0, b0) = trunk[0].views(&flat);
        let max = |t: &Tensor| t.abs().max().double_value(&[]);
        assert!(max(&w0) <= 0.5 + 1e-7 && max(&w0) > 0.4);
        assert!(max(&b0) > 0.0);
        let keras = NetworkSpec {
            init: Init::GlorotUniform,
            ..net
        };
        let flat = keras.init_flat(tch::Device::Cpu)?;
        let (w0, b0) = keras.layers().0[0].views(&flat);
        assert!(max(&w0) <= (6.0f64 / 68.0).sqrt() + 1e-7);
        assert_eq!(max(&b0), 0.0);
        Ok(())
    }
}
