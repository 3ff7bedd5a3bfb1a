//! Adam over a flat parameter buffer, with state that checkpoints can save and restore.
//!
//! tch's `nn::Optimizer` keeps its moment estimates inside libtorch's C++ optimizer,
//! out of reach of a checkpoint; a resumed run would restart Adam from zero moments and
//! diverge from the uninterrupted one. This Adam computes what `torch.optim.Adam`
//! (and tch's `nn::Adam`) computes, on tensors qnet owns:
//!
//! ```text
//! m = beta1 * m + (1 - beta1) * g
//! v = beta2 * v + (1 - beta2) * g^2
//! p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```
//!
//! [`Adam`] runs libtorch's fused Adam kernel (`torch.optim.Adam(fused=True)`) on the
//! network's flat buffer, on any device, through a small C++ shim (`csrc/fused_adam.cpp`): one
//! pass over the parameters instead of eight, whatever the number of layers. [`HostAdam`] is the
//! same arithmetic on host buffers, for the host kernel. Each clips the gradient's global norm
//! first, as `torch.nn.utils.clip_grad_norm_` does.

mod host;

pub use host::HostAdam;

use std::ffi::CStr;
use std::os::raw::{c_char, c_int};

use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

mod ffi {
    use std::os::raw::{c_char, c_int};

    use torch_sys::C_tensor;

    extern "C" {
        /// See `csrc/fused_adam.cpp`. Returns 0 on success; otherwise sets `*error_out` to a
        /// message to be released with `qnet_free_string`.
        pub fn qnet_fused_adam(
            param: *const C_tensor,
            grad: *const C_tensor,
            exp_avg: *const C_tensor,
            exp_avg_sq: *const C_tensor,
            step: *const C_tensor,
            lr: f64,
            beta1: f64,
            beta2: f64,
            eps: f64,
            error_out: *mut *mut c_char,
        ) -> c_int;

        /// Frees an error message (defined in `csrc/torchscript_export.cpp`).
        pub fn qnet_free_string(s: *mut c_char);
    }
}

/// Adam hyperparameters (the learning rate comes with each step: it may follow a schedule).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
}

/// Adam's state for one flat parameter tensor, on its device.
#[derive(Debug)]
pub struct Adam {
    config: AdamConfig,
    m: Tensor,
    v: Tensor,
    step: u64,
    // The current step number as a float scalar on the parameters' device, for the kernel.
    step_tensor: Tensor,
}

impl Adam {
    /// Fresh state (zero moments, step 0) for a flat buffer like `params`.
    pub fn new(config: AdamConfig, params: &Tensor) -> Result<Self> {
        let zeros = || {
            params
                .f_zeros_like()
                .context("allocating Adam's moment estimates")
        };
        Ok(Self {
            config,
            m: zeros()?,
            v: zeros()?,
            step: 0,
            step_tensor: Tensor::f_zeros([], (Kind::Float, params.device()))?,
        })
    }

    /// Applies one update of learning rate `lr` to `params` (in place) from `grad`,
    /// optionally first scaling `grad` (in place) so its global L2 norm is at most
    /// `max_grad_norm`, as `torch.nn.utils.clip_grad_norm_` does (no host synchronisation).
    pub fn step(
        &mut self,
        params: &Tensor,
        grad: &Tensor,
        max_grad_norm: Option<f64>,
        lr: f64,
    ) -> Result<()> {
        let mut grad = grad.shallow_clone();
        tch::no_grad(|| {
            if let Some(max_norm) = max_grad_norm {
                clip_norm(&mut grad, max_norm);
            }
            let _ = self.step_tensor.fill_((self.step + 1) as f64);
        });
        let AdamConfig { beta1, beta2, eps } = self.config;
        let mut error: *mut c_char = std::ptr::null_mut();
        // SAFETY: every pointer is a live tensor owned by this call's borrows; the C++ side
        // catches all exceptions and only writes `error` (a malloc'd C string) on failure.
        let status: c_int = unsafe {
            ffi::qnet_fused_adam(
                params.as_ptr(),
                grad.as_ptr(),
                self.m.as_ptr(),
                self.v.as_ptr(),
                self.step_tensor.as_ptr(),
                lr,
                beta1,
                beta2,
                eps,
                &mut error,
            )
        };
        if status != 0 {
            let message = if error.is_null() {
                "unknown error".to_owned()
            } else {
                // SAFETY: a NUL-terminated string from strdup, freed right after copying.
                let text = unsafe { CStr::from_ptr(error) }
                    .to_string_lossy()
                    .into_owned();
                // SAFETY: `error` came from the shim's strdup and is freed once, here.
                unsafe { ffi::qnet_free_string(error) };
                text
            };
            bail!("libtorch's fused Adam step failed: {message}");
        }
        self.step += 1;
        Ok(())
    }

    /// Updates taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The first and second moment estimates.
    pub fn moments(&self) -> (&Tensor, &Tensor) {
        (&self.m, &self.v)
    }

    /// Restores moments and step count saved from an identical optimizer.
    pub fn restore(&mut self, m: &Tensor, v: &Tensor, step: u64) -> Result<()> {
        if m.size() != self.m.size() || v.size() != self.v.size() {
            bail!(
                "Adam state has {} moments, the network {} parameters",
                m.numel(),
                self.m.numel()
            );
        }
        tch::no_grad(|| {
            self.m.copy_(&m.to_kind(Kind::Float));
            self.v.copy_(&v.to_kind(Kind::Float));
        });
        self.step = step;
        Ok(())
    }
}

/// Scales `grad` in place so its L2 norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_` does. On the CPU the norm is read back (free there)
/// and the scaling skipped when not needed; elsewhere it stays on the device, so no
/// synchronisation stalls the update.
fn clip_norm(grad: &mut Tensor, max_norm: f64) {
    let norm = grad.norm();
    if grad.device() == tch::Device::Cpu {
        let norm = norm.double_value(&[]);
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            let _ = grad.g_mul_scalar_(coef);
        }
    } else {
        let mut coef = (norm + 1e-6).reciprocal() * max_norm;
        let _ = coef.clamp_max_(1.0);
        let _ = grad.g_mul_(&coef);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, Module, OptimizerConfig};
    use tch::Device;

    /// Same network, same data: our flat Adam tracks libtorch's own Adam.
    #[test]
    fn matches_libtorch_adam() -> Result<()> {
        tch::manual_seed(7);
        let config = crate::config::NetworkConfig {
            hidden: vec![16, 16],
            activation: crate::config::Activation::Relu,
            init: crate::config::Init::Torch,
            dueling: false,
            implementation: crate::config::Implementation::Fast,
        };
        let ours = crate::learn::qfunction::build(&config, 4, 2, Device::Cpu)?;
        // A plain nn::seq with identical weights, trained with nn::Adam.
        let vs = nn::VarStore::new(Device::Cpu);
        let reference = nn::seq()
            .add(nn::linear(&vs.root() / "0", 4, 16, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(&vs.root() / "2", 16, 16, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(&vs.root() / "4", 16, 2, Default::default()));
        let variables = vs.variables();
        for (name, value) in ours.spec().named_parameters(ours.flat())? {
            tch::no_grad(|| variables[&name].shallow_clone().copy_(&value));
        }
        let mut theirs = nn::Adam {
            beta1: 0.9,
            beta2: 0.999,
            wd: 0.0,
            eps: 1e-8,
            amsgrad: false,
        }
        .build(&vs, 1e-2)?;
        let mut adam = Adam::new(
            AdamConfig {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            ours.flat(),
        )?;
        for step in 0..50 {
            let x = Tensor::randn([32, 4], (Kind::Float, Device::Cpu));
            let y = Tensor::randn([32, 2], (Kind::Float, Device::Cpu));
            // Our network's gradient through its hand-derived backward pass.
            let (q, trace) = ours.forward_traced(&x);
            ours.backward(&trace, &((&q - &y) * (2.0 / q.numel() as f64)));
            adam.step(ours.flat(), ours.flat_grad(), None, 1e-2)?;
            theirs.zero_grad();
            reference
                .forward(&x)
                .mse_loss(&y, tch::Reduction::Mean)
                .backward();
            theirs.step();
            let probe = Tensor::randn([8, 4], (Kind::Float, Device::Cpu));
            let diff = (ours.forward(&probe) - reference.forward(&probe))
                .abs()
                .max()
                .double_value(&[]);
            assert!(diff < 1e-5, "step {step}: outputs differ by {diff}");
        }
        assert_eq!(adam.steps(), 50);
        Ok(())
    }

    /// The host Adam (clipping included) takes the fused kernel's steps.
    #[test]
    fn the_host_step_matches_the_fused_kernel() -> Result<()> {
        let config = AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        tch::manual_seed(4);
        let fused_params = Tensor::randn([300], (Kind::Float, Device::Cpu));
        let mut fused = Adam::new(config, &fused_params)?;
        let mut host = HostAdam::new(config, 300)?;
        let mut host_params = Vec::<f32>::try_from(&fused_params)?;
        for step in 0..30 {
            // Large gradients on even steps, so that clipping to norm 1 acts on those only.
            let scale = if step % 2 == 0 { 5.0 } else { 0.01 };
            let grad = Tensor::randn([300], (Kind::Float, Device::Cpu)) * scale;
            let mut host_grad = Vec::<f32>::try_from(&grad)?;
            fused.step(&fused_params, &grad, Some(1.0), 3e-3)?;
            host.step(&mut host_params, &mut host_grad, Some(1.0), 3e-3)?;
            let tensor = |values: &[f32]| Tensor::from_slice(values);
            assert!(
                grad.allclose(&tensor(&host_grad), 1e-5, 1e-7, false),
                "step {step}: clipping"
            );
            let diff = (&fused_params - tensor(&host_params))
                .abs()
                .max()
                .double_value(&[]);
            assert!(diff < 1e-6, "step {step}: parameters differ by {diff}");
            let (fm, fv) = fused.moments();
            let (hm, hv) = host.moments();
            assert!(
                fm.allclose(&tensor(hm), 1e-5, 1e-8, false)
                    && fv.allclose(&tensor(hv), 1e-5, 1e-10, false)
            );
        }
        assert!(fused_params.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        assert_eq!(host.steps(), 30);
        Ok(())
    }

    #[test]
    fn clipping_bounds_the_gradient_norm() -> Result<()> {
        let params = Tensor::zeros([3], (Kind::Float, Device::Cpu));
        let grad = Tensor::from_slice(&[30.0f32, 40.0, 0.0]);
        let mut adam = Adam::new(
            AdamConfig {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            &params,
        )?;
        adam.step(&params, &grad, Some(5.0), 0.1)?;
        let norm = grad.norm().double_value(&[]);
        assert!((norm - 5.0).abs() < 1e-4, "clipped norm {norm}");
        // A small gradient is left alone.
        let small = Tensor::from_slice(&[0.3f32, 0.4, 0.0]);
        adam.step(&params, &small, Some(5.0), 0.1)?;
        assert!((small.norm().double_value(&[]) - 0.5).abs() < 1e-6);
        Ok(())
    }
}
