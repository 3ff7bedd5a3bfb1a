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

use crate::learn::rows::Rows;
use crate::platform::simd::{vectorized, Avx2};

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

/// Whether `sgemm` multiplies a known `[2, 3] x [3, 2]` product as the LP64 `sgemm_` of the
/// reference BLAS does (MKL's LP64 interface, which PyTorch's builds use, and OpenBLAS alike).
///
/// Each integer argument is the low half of eight bytes whose high half is all ones: an
/// LP64 BLAS reads the 32-bit value, while an ILP64 one (64-bit integers) reads a negative
/// size, refuses it and leaves C alone; a function of another meaning that happens to be
/// named `sgemm_` gives other numbers. Either way the host kernel is not used, as where no
/// BLAS is found.
fn computes_a_known_product(sgemm: SgemmFn) -> bool {
    if cfg!(target_endian = "big") {
        // The high half would come first, and an ILP64 read a huge positive size.
        return false;
    }
    // Column-major A = [[1, 2, 3], [4, 5, 6]] and B = [[1, 2], [3, 4], [5, 6]].
    let a = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0];
    let b = [1.0f32, 3.0, 5.0, 2.0, 4.0, 6.0];
    let mut c = [-1.0f32; 4];
    let wide = |value: c_int| [value, -1];
    let (m, n, k) = (wide(2), wide(2), wide(3));
    let (lda, ldb, ldc) = (wide(2), wide(3), wide(2));
    let (no_transpose, alpha, beta) = (b'N' as c_char, 1.0f32, 0.0f32);
    // SAFETY: A, B and C are `[2, 3]`, `[3, 2]` and `[2, 2]` column-major arrays with these
    // leading dimensions, which an LP64 `sgemm_` reads from the first int of each pair; an
    // ILP64 one reads negative sizes and returns before touching any matrix.
    unsafe {
        sgemm(
            &no_transpose,
            &no_transpose,
            m.as_ptr(),
            n.as_ptr(),
            k.as_ptr(),
            &alpha,
            a.as_ptr(),
            lda.as_ptr(),
            b.as_ptr(),
            ldb.as_ptr(),
            &beta,
            c.as_mut_ptr(),
            ldc.as_ptr(),
        );
    }
    c == [22.0, 49.0, 28.0, 64.0]
}

/// Row-major matrix products for the host kernel: through `sgemm_` (a row-major `[r, c]`
/// matrix is the column-major `[c, r]` one, so each product is written transposed), or as
/// loops when a side is narrow. `scratch` is a buffer the caller keeps between calls.
#[derive(Clone, Copy)]
pub(super) struct Gemm {
    sgemm: SgemmFn,
    /// The proof that the CPU has AVX2, which the loops then use.
    avx2: Option<Avx2>,
}

impl std::fmt::Debug for Gemm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sgemm_")
    }
}

impl Gemm {
    /// The loaded BLAS's `sgemm_`, if libtorch brought one that computes a known product as
    /// an LP64 BLAS does (see [`computes_a_known_product`]), and whether the CPU has AVX2.
    pub fn find() -> Option<Self> {
        let function = crate::platform::symbols::lookup(c"sgemm_")?;
        // SAFETY: a function pointer of the reference BLAS signature; what it points to is
        // only called once `computes_a_known_product` has shown it behaves as one.
        let sgemm = unsafe { std::mem::transmute::<*mut c_void, SgemmFn>(function) };
        computes_a_known_product(sgemm).then(|| Self {
            sgemm,
            avx2: Avx2::detect(),
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

    /// A stand-in `sgemm_` that reads its first size as a BLAS with `SIZE`-typed integers
    /// would, and writes `value` into the four cells of C when that size is 2.
    #[allow(clippy::too_many_arguments)]
    unsafe extern "C" fn fake_sgemm<SIZE: Copy + TryInto<i32>, const VALUE: i32>(
        _: *const c_char,
        _: *const c_char,
        m: *const c_int,
        _: *const c_int,
        _: *const c_int,
        _: *const f32,
        _: *const f32,
        _: *const c_int,
        _: *const f32,
        _: *const c_int,
        _: *const f32,
        c: *mut f32,
        _: *const c_int,
    ) {
        // SAFETY: the probe passes eight bytes behind every size, and a 2x2 C.
        unsafe {
            let m = m.cast::<SIZE>().read_unaligned().try_into().unwrap_or(-1);
            if m == 2 {
                std::slice::from_raw_parts_mut(c, 4).fill(VALUE as f32);
            }
        }
    }

    #[test]
    fn a_blas_that_does_not_compute_the_known_product_is_refused() {
        // 32-bit sizes but the wrong numbers: not BLAS's sgemm_.
        assert!(!computes_a_known_product(fake_sgemm::<i32, 7>));
        // 64-bit sizes: the probe's sizes read as negative, and C is left alone.
        assert!(!computes_a_known_product(fake_sgemm::<i64, 22>));
        if blas_available() {
            let blas = Gemm::find().expect("blas_available() found sgemm_");
            assert!(computes_a_known_product(blas.sgemm));
        }
    }

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
        let builds = [Gemm { avx2: None, ..blas }, blas];
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
                let what = format!(
                    "[{batch}, {fan_in}] -> {fan_out}, avx2 {}",
                    gemm.avx2.is_some()
                );
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
