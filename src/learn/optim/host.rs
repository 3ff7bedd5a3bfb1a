//! Adam on host buffers, for the host kernel: the same clipping and the same arithmetic as
//! libtorch's fused kernel, in loops built eight floats wide where the CPU has AVX2.

use anyhow::{bail, Result};

use super::AdamConfig;
use crate::platform::simd::{vectorized, Avx2};

/// Adam's state for one flat host parameter buffer.
#[derive(Debug)]
pub struct HostAdam {
    config: AdamConfig,
    m: Vec<f32>,
    v: Vec<f32>,
    step: u64,
}

impl HostAdam {
    /// Fresh state (zero moments, step 0) for `len` parameters.
    pub fn new(config: AdamConfig, len: usize) -> Result<Self> {
        let zeros = || -> Result<Vec<f32>> {
            let mut values = Vec::new();
            if values.try_reserve_exact(len).is_err() {
                bail!("cannot allocate Adam's moment estimates ({len} floats)");
            }
            values.resize(len, 0.0);
            Ok(values)
        };
        Ok(Self {
            config,
            m: zeros()?,
            v: zeros()?,
            step: 0,
        })
    }

    /// Applies one update of learning rate `lr` to `params` (in place) from `grad`,
    /// optionally first scaling `grad` (in place) so its global L2 norm is at most
    /// `max_grad_norm`.
    pub fn step(
        &mut self,
        params: &mut [f32],
        grad: &mut [f32],
        max_grad_norm: Option<f64>,
        lr: f64,
    ) -> Result<()> {
        if self.m.len() != params.len() || grad.len() != params.len() {
            bail!(
                "Adam has {} moments for {} parameters and {} gradients",
                self.m.len(),
                params.len(),
                grad.len()
            );
        }
        let avx2 = Avx2::detect();
        if let Some(max_norm) = max_grad_norm {
            let norm = l2_norm(avx2, grad);
            let coef = max_norm / (norm + 1e-6);
            if coef < 1.0 {
                scale(avx2, grad, coef as f32);
            }
        }
        let AdamConfig { beta1, beta2, eps } = self.config;
        let step = (self.step + 1) as f64;
        let constants = AdamStep {
            step_size: (lr / (1.0 - beta1.powf(step))) as f32,
            correction2_sqrt: (1.0 - beta2.powf(step)).sqrt() as f32,
            one_minus_beta1: (1.0 - beta1) as f32,
            beta2: beta2 as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            eps: eps as f32,
        };
        adam_elements(avx2, params, grad, &mut self.m, &mut self.v, constants);
        self.step += 1;
        Ok(())
    }

    /// Updates taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The first and second moment estimates.
    pub fn moments(&self) -> (&[f32], &[f32]) {
        (&self.m, &self.v)
    }

    /// Restores moments and step count saved from an identical optimizer.
    pub fn restore(&mut self, m: &[f32], v: &[f32], step: u64) -> Result<()> {
        if m.len() != self.m.len() || v.len() != self.v.len() {
            bail!(
                "Adam state has {} moments, the network {} parameters",
                m.len(),
                self.m.len()
            );
        }
        self.m.copy_from_slice(m);
        self.v.copy_from_slice(v);
        self.step = step;
        Ok(())
    }
}

/// One Adam step's constants, in the floats [`adam_elements`] computes with.
#[derive(Debug, Clone, Copy)]
struct AdamStep {
    step_size: f32,
    correction2_sqrt: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
}

vectorized! {
    /// The L2 norm of `grad`, in eight running f64 sums (one sum would be a chain of
    /// dependent adds, which does not vectorize).
    fn l2_norm(grad: &[f32]) -> f64 {
        let mut sums = [0.0f64; 8];
        let chunks = grad.chunks_exact(8);
        let tail = chunks
            .remainder()
            .iter()
            .map(|&g| f64::from(g) * f64::from(g))
            .sum::<f64>();
        for chunk in chunks {
            for (s, &g) in sums.iter_mut().zip(chunk) {
                *s += f64::from(g) * f64::from(g);
            }
        }
        (sums.iter().sum::<f64>() + tail).sqrt()
    }
}

vectorized! {
    /// `grad *= coef`.
    fn scale(grad: &mut [f32], coef: f32) {
        grad.iter_mut().for_each(|g| *g *= coef);
    }
}

vectorized! {
    /// Adam's update of each parameter, its moments and its gradient, as libtorch's fused
    /// kernel computes it.
    fn adam_elements(params: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], c: AdamStep) {
        for (((p, &g), m), v) in params.iter_mut().zip(grad).zip(m).zip(v) {
            *m += c.one_minus_beta1 * (g - *m);
            *v = c.beta2 * *v + c.one_minus_beta2 * g * g;
            *p -= c.step_size * *m / (v.sqrt() / c.correction2_sqrt + c.eps);
        }
    }
}
