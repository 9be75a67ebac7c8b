//! Strided matrix products on `gemm` for the fused layer, and its dense
//! `x Wᵀ + b`.

use rayon::prelude::*;

use crate::row_matmul;

/// A strided matrix operand: element `(i, j)` at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(super) struct Mat {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

// SAFETY: operands are only read, from buffers that outlive the parallel
// loops that share them.
unsafe impl Send for Mat {}
// SAFETY: as for Send: shared references only read.
unsafe impl Sync for Mat {}

impl Mat {
    /// Row-major rows of `width` elements starting at `data[offset]`, with
    /// `stride` elements from one row to the next.
    pub(super) fn rows(data: &[f32], offset: usize, stride: usize) -> Self {
        assert!(offset <= data.len());
        Mat { ptr: data[offset..].as_ptr(), rs: stride as isize, cs: 1 }
    }

    /// The transpose (a view).
    pub(super) fn t(self) -> Self {
        Mat { ptr: self.ptr, rs: self.cs, cs: self.rs }
    }
}

/// A destination pointer that the pool's threads write disjoint parts of.
#[derive(Clone, Copy)]
pub(super) struct Out(pub(super) *mut f32);
// SAFETY: each thread writes its own rows/columns only.
unsafe impl Send for Out {}
// SAFETY: as for Send: threads sharing it write disjoint parts.
unsafe impl Sync for Out {}

impl Out {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}

/// `dst (m x n, row stride dst_rs) [+]= a (m x k) · b (k x n)`.
///
/// # Safety
/// Every element that the shapes and strides reach must be inside the
/// allocations behind `dst`, `a` and `b`, and no other thread may write the
/// part of `dst` reached.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    a: Mat,
    b: Mat,
    threads: usize,
) {
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: forwarded to the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            a.ptr,
            a.cs,
            a.rs,
            b.ptr,
            b.cs,
            b.rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `out[:, col..col + w_rows] = x · Wᵀ + b` for `x` `[rows, in]`, `W`
/// `[w_rows, in]`, into `out` rows of `out_width` elements.
pub(crate) fn linear(x: &[f32], in_dim: usize, w: &[f32], b: &[f32], out: &mut [f32], out_width: usize, col: usize) {
    let (rows, out_dim) = (x.len() / in_dim, b.len());
    if rows <= row_matmul::MAX_ROWS && row_matmul::available() {
        return row_matmul::linear(x, in_dim, w, b, out, out_width, col);
    }
    assert!(x.len() == rows * in_dim && w.len() >= out_dim * in_dim && out.len() == rows * out_width);
    assert!(col + out_dim <= out_width);
    out.par_chunks_mut(out_width).with_min_len(64).for_each(|row| row[col..col + out_dim].copy_from_slice(b));
    // SAFETY: shapes checked above; `out` is borrowed mutably.
    unsafe {
        matmul(
            rows,
            out_dim,
            in_dim,
            out[col..].as_mut_ptr(),
            out_width,
            true,
            Mat::rows(x, 0, in_dim),
            Mat::rows(w, 0, in_dim).t(),
            rayon::current_num_threads(),
        );
    }
}

/// Backward of `y = x Wᵀ (+ b)` for `x` `[rows, in_dim]` and `W`
/// `[out, in_dim]`, given `dy` as rows of `out` values `dy_stride` apart:
/// writes `dW = dyᵀ x` into `dw` and `dy W` into `dx` (added to it when
/// `accumulate`). The bias gradient is `dy`'s column sums.
#[allow(clippy::too_many_arguments)]
pub(super) fn linear_backward(
    dy: &[f32],
    dy_stride: usize,
    x: &[f32],
    in_dim: usize,
    w: &[f32],
    dw: &mut [f32],
    dx: &mut [f32],
    accumulate: bool,
) {
    let (rows, out) = (x.len() / in_dim, dw.len() / in_dim);
    assert!(x.len() == rows * in_dim && dx.len() == x.len() && w.len() == dw.len() && dw.len() == out * in_dim);
    assert!(rows == 0 || (rows - 1) * dy_stride + out <= dy.len());
    let (d, threads) = (Mat::rows(dy, 0, dy_stride), rayon::current_num_threads());
    // SAFETY: every operand's reach was checked above; `dw` and `dx` are
    // borrowed mutably.
    unsafe {
        matmul(out, in_dim, rows, dw.as_mut_ptr(), in_dim, false, d.t(), Mat::rows(x, 0, in_dim), threads);
        matmul(rows, in_dim, out, dx.as_mut_ptr(), in_dim, accumulate, d, Mat::rows(w, 0, in_dim), threads);
    }
}
