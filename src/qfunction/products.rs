//! The host kernel's matrix products: BLAS `sgemm_` where every side is wide, plain loops
//! where one is narrow.
//!
//! A CartPole network's products are mostly narrow: 4 observations in, 1 value and 2
//! advantages out, a single row when acting. MKL (PyTorch's x86 BLAS) spends longer setting
//! those up than multiplying. Timed call by call on the 2-core AMD EPYC CI machine, the
//! narrow products of one default update took 63 us through MKL and 36 us as the loops below
//! (the first layer's weight gradient, `[64, 128] x [128, 4]`, 14.6 against 3.9 us), while
//! each wide `[128, 64] x [64, 64]` took MKL 15-19 us, which is why those stay with it.

use std::ffi::{c_char, c_int, c_void};

use super::host::Rows;
use crate::simd::vectorized;

/// A side at most this long makes a product narrow (loops, not BLAS).
const NARROW: usize = 8;

/// A product of a `[batch, fan_in]` input and a `[fan_out, fan_in]` weight has a narrow side.
fn narrow(batch: usize, fan_in: usize, fan_out: usize) -> bool {
    batch.min(fan_in).min(fan_out) <= NARROW
}

/// Fortran BLAS `sgemm_` (column-major, arguments by reference, 32-bit sizes).
type SgemmFn = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    *const c_int,
    *const c_int,
    *const c_int,
    *const f32,
    *const f32,
    *const c_int,
    *const f32,
    *const c_int,
    *const f32,
    *mut f32,
    *const c_int,
);

fn to_int(n: usize) -> c_int {
    // Sizes here are layer widths and batch sizes, which the config bounds far below this.
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

/// `x . y` in eight running sums, so that the compiler vectorizes it.
#[inline(always)]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let (xs, ys) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(a, b)| a * b)
        .sum();
    let mut sums = [0.0f32; 8];
    for (x, y) in xs.zip(ys) {
        for ((s, a), b) in sums.iter_mut().zip(x).zip(y) {
            *s += a * b;
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// `y += a x`.
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `[rows, cols]` row-major `m` written transposed into `t` (`[cols, rows]`, as long as `m`).
fn transpose_into(m: &[f32], rows: usize, cols: usize, t: &mut [f32]) {
    for (c, column) in t.chunks_exact_mut(rows).enumerate() {
        for (r, t) in column.iter_mut().enumerate() {
            *t = m[r * cols + c];
        }
    }
}

/// Row-major matrix products for the host kernel: through `sgemm_` (a row-major `[r, c]`
/// matrix is the column-major `[c, r]` one, so each product is written transposed), or as
/// loops when a side is narrow. `scratch` is a buffer the caller keeps between calls.
#[derive(Clone, Copy)]
pub(super) struct Gemm {
    sgemm: SgemmFn,
    /// The CPU has AVX2, which the loops use.
    avx2: bool,
}

impl std::fmt::Debug for Gemm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sgemm_")
    }
}

impl Gemm {
    /// The loaded BLAS's `sgemm_`, if libtorch brought one, and whether the CPU has AVX2.
    pub fn find() -> Option<Self> {
        let function = crate::symbols::lookup(c"sgemm_")?;
        // SAFETY: `sgemm_` is the reference BLAS routine with this signature in every BLAS
        // (MKL's LP64 interface, which PyTorch's builds use, and OpenBLAS alike).
        let sgemm = unsafe { std::mem::transmute::<*mut c_void, SgemmFn>(function) };
        Some(Self {
            sgemm,
            avx2: crate::simd::avx2(),
        })
    }

    /// `C = alpha op(A) op(B) + beta C`, column-major, as BLAS defines it.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &self,
        trans: (u8, u8),
        (m, n, k): (usize, usize, usize),
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        beta: f32,
        c: &mut [f32],
        ldc: usize,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        // What BLAS reads and writes: the caller's slices must cover it.
        let covers = |len: usize, transposed: bool, (rows, cols): (usize, usize), ld: usize| {
            let (rows, cols) = if transposed {
                (cols, rows)
            } else {
                (rows, cols)
            };
            cols == 0 || rows == 0 || (ld >= rows && len >= (cols - 1) * ld + rows)
        };
        assert!(covers(a.len(), trans.0 != b'N', (m, k), lda));
        assert!(covers(b.len(), trans.1 != b'N', (k, n), ldb));
        assert!(covers(c.len(), false, (m, n), ldc));
        let (ta, tb) = (trans.0 as c_char, trans.1 as c_char);
        let (m, n, k) = (to_int(m), to_int(n), to_int(k));
        let (lda, ldb, ldc) = (to_int(lda), to_int(ldb), to_int(ldc));
        let alpha = 1.0f32;
        // SAFETY: the sizes and leading dimensions describe matrices inside the slices
        // (checked above); BLAS touches nothing else.
        unsafe {
            (self.sgemm)(
                &ta,
                &tb,
                &m,
                &n,
                &k,
                &alpha,
                a.as_ptr(),
                &lda,
                b.as_ptr(),
                &ldb,
                &beta,
                c.as_mut_ptr(),
                &ldc,
            );
        }
    }

    /// `y = x W^T + bias` for `x` `[B, in]`, `W` `[out, in]`, into `y` `[B, out]`.
    pub fn linear(
        &self,
        x: Rows,
        weight: &[f32],
        bias: &[f32],
        y: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        let (batch, fan_in, fan_out) = (x.rows(), x.cols(), bias.len());
        for row in y.chunks_exact_mut(fan_out) {
            row.copy_from_slice(bias);
        }
        if narrow(batch, fan_in, fan_out) {
            narrow_linear(self.avx2, x, weight, fan_out, y, scratch);
            return;
        }
        let (data, ld) = x.raw();
        self.call(
            (b'T', b'N'),
            (fan_out, batch, fan_in),
            weight,
            fan_in,
            data,
            ld,
            1.0,
            y,
            fan_out,
        );
    }

    /// `dW = dz^T x` for `dz` `[B, out]`, `x` `[B, in]`, into `dW` `[out, in]`.
    pub fn grad_weight(&self, dz: Rows, x: Rows, grad_weight: &mut [f32], scratch: &mut Vec<f32>) {
        let (batch, fan_in, fan_out) = (x.rows(), x.cols(), dz.cols());
        if narrow(batch, fan_in, fan_out) {
            narrow_grad_weight(self.avx2, dz, x, grad_weight, scratch);
            return;
        }
        let ((x_data, x_ld), (dz_data, dz_ld)) = (x.raw(), dz.raw());
        self.call(
            (b'N', b'T'),
            (fan_in, fan_out, batch),
            x_data,
            x_ld,
            dz_data,
            dz_ld,
            0.0,
            grad_weight,
            fan_in,
        );
    }

    /// `dx (+)= dz W` for `dz` `[B, out]`, `W` `[out, in]`, into `dx` `[B, in]` (`beta` 0
    /// overwrites it, 1 adds to it).
    pub fn grad_input(&self, dz: Rows, weight: &[f32], fan_in: usize, beta: f32, dx: &mut [f32]) {
        let (batch, fan_out) = (dz.rows(), dz.cols());
        if narrow(batch, fan_in, fan_out) {
            narrow_grad_input(self.avx2, dz, weight, fan_in, beta, dx);
            return;
        }
        let (data, ld) = dz.raw();
        self.call(
            (b'N', b'N'),
            (fan_in, batch, fan_out),
            weight,
            fan_in,
            data,
            ld,
            beta,
            dx,
            fan_in,
        );
    }
}

vectorized! {
    /// [`Gemm::linear`]'s loops, `y` already holding the bias.
    fn narrow_linear(x: Rows, weight: &[f32], fan_out: usize, y: &mut [f32], scratch: &mut Vec<f32>) {
        let fan_in = x.cols();
        if fan_in < fan_out {
            // Few inputs: each output row sums `fan_in` rows of W^T, as long as the output's.
            scratch.resize(weight.len(), 0.0);
            transpose_into(weight, fan_out, fan_in, scratch);
            for (r, out) in y.chunks_exact_mut(fan_out).enumerate() {
                for (xi, wt) in x.row(r).iter().zip(scratch.chunks_exact(fan_out)) {
                    axpy(out, *xi, wt);
                }
            }
        } else {
            // Few outputs (or rows): a dot product of each row with each row of W.
            for (r, out) in y.chunks_exact_mut(fan_out).enumerate() {
                let input = x.row(r);
                for (o, w) in out.iter_mut().zip(weight.chunks_exact(fan_in)) {
                    *o += dot(input, w);
                }
            }
        }
    }
}

vectorized! {
    /// [`Gemm::grad_weight`]'s loops.
    fn narrow_grad_weight(dz: Rows, x: Rows, grad_weight: &mut [f32], scratch: &mut Vec<f32>) {
        let (fan_in, fan_out) = (x.cols(), dz.cols());
        if fan_in < fan_out {
            // Few inputs: sum into dW^T, whose rows are as long as dz's, then transpose.
            scratch.clear();
            scratch.resize(fan_in * fan_out, 0.0);
            for r in 0..x.rows() {
                let d = dz.row(r);
                for (xi, gt) in x.row(r).iter().zip(scratch.chunks_exact_mut(fan_out)) {
                    axpy(gt, *xi, d);
                }
            }
            transpose_into(scratch, fan_in, fan_out, grad_weight);
        } else {
            grad_weight.fill(0.0);
            for r in 0..x.rows() {
                let input = x.row(r);
                for (d, g) in dz.row(r).iter().zip(grad_weight.chunks_exact_mut(fan_in)) {
                    axpy(g, *d, input);
                }
            }
        }
    }
}

vectorized! {
    /// [`Gemm::grad_input`]'s loops: each row of dx sums the rows of W its dz row weighs.
    fn narrow_grad_input(dz: Rows, weight: &[f32], fan_in: usize, beta: f32, dx: &mut [f32]) {
        for (r, row) in dx.chunks_exact_mut(fan_in).enumerate() {
            if beta == 0.0 {
                row.fill(0.0);
            }
            for (d, w) in dz.row(r).iter().zip(weight.chunks_exact(fan_in)) {
                axpy(row, *d, w);
            }
        }
    }
}

/// `db = sum over rows of dz` for `dz` `[B, out]`.
pub(super) fn grad_bias(dz: &[f32], grad_bias: &mut [f32]) {
    grad_bias.fill(0.0);
    for row in dz.chunks_exact(grad_bias.len()) {
        for (g, d) in grad_bias.iter_mut().zip(row) {
            *g += d;
        }
    }
}

/// Whether this libtorch gives the host kernel its BLAS; when it does not, the kernel's tests
/// say they skipped, and QNET_REQUIRE_HOST_KERNEL=1 (set by .ci/run, whose PyPI libtorch has
/// MKL) makes that a failure.
#[cfg(test)]
pub(crate) fn blas_available() -> bool {
    let found = Gemm::find().is_some();
    if !found {
        assert!(
            std::env::var("QNET_REQUIRE_HOST_KERNEL").map_or(true, |v| v != "1"),
            "QNET_REQUIRE_HOST_KERNEL=1 but libtorch has no BLAS sgemm_ for the host kernel"
        );
        eprintln!(
            "skipped: libtorch has no BLAS sgemm_, so the host kernel is not used here \
             (QNET_REQUIRE_HOST_KERNEL=1 makes this a failure)"
        );
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                ((i.wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)) % 2000) as f32 / 1000.0
                    - 1.0
            })
            .collect()
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what}, element {i}: {x} against {y}"
            );
        }
    }

    /// Each product, through BLAS or through either build of the loops, against the
    /// textbook triple loop, for narrow and wide shapes and strided input rows.
    #[test]
    fn products_match_the_textbook_sums() {
        if !blas_available() {
            return;
        }
        let blas = Gemm::find().expect("blas_available() found sgemm_");
        let builds = [
            Gemm {
                avx2: false,
                ..blas
            },
            blas,
        ];
        for (batch, fan_in, fan_out) in [
            (128, 4, 64),
            (128, 64, 64),
            (128, 64, 2),
            (128, 64, 1),
            (1, 64, 64),
            (3, 4, 16),
            (20, 12, 9),
        ] {
            let ld = fan_in + 3;
            let x_data = values(batch * ld, 1);
            let x = Rows::strided(&x_data, batch, fan_in, ld);
            let (w, bias, dz_data) = (
                values(fan_out * fan_in, 2),
                values(fan_out, 3),
                values(batch * fan_out, 4),
            );
            let dz = Rows::dense(&dz_data, fan_out);
            let mut want_y = vec![0.0; batch * fan_out];
            let mut want_dw = vec![0.0; fan_out * fan_in];
            let mut want_dx = vec![0.0; batch * fan_in];
            for r in 0..batch {
                for o in 0..fan_out {
                    want_y[r * fan_out + o] = bias[o]
                        + (0..fan_in)
                            .map(|i| x.at(r, i) * w[o * fan_in + i])
                            .sum::<f32>();
                    for i in 0..fan_in {
                        want_dw[o * fan_in + i] += dz.at(r, o) * x.at(r, i);
                        want_dx[r * fan_in + i] += dz.at(r, o) * w[o * fan_in + i];
                    }
                }
            }
            for gemm in builds {
                let what = format!("[{batch}, {fan_in}] -> {fan_out}, avx2 {}", gemm.avx2);
                let mut scratch = Vec::new();
                let mut y = vec![f32::NAN; batch * fan_out];
                gemm.linear(x, &w, &bias, &mut y, &mut scratch);
                close(&y, &want_y, &format!("{what}: linear"));
                let mut dw = vec![f32::NAN; fan_out * fan_in];
                gemm.grad_weight(dz, x, &mut dw, &mut scratch);
                close(&dw, &want_dw, &format!("{what}: grad_weight"));
                let mut dx = vec![f32::NAN; batch * fan_in];
                gemm.grad_input(dz, &w, fan_in, 0.0, &mut dx);
                close(&dx, &want_dx, &format!("{what}: grad_input"));
                gemm.grad_input(dz, &w, fan_in, 1.0, &mut dx);
                let twice: Vec<f32> = want_dx.iter().map(|v| 2.0 * v).collect();
                close(&dx, &twice, &format!("{what}: grad_input adding"));
            }
        }
    }
}
