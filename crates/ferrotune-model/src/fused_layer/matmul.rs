//! The fused layer's dense `x Wᵀ + b` and its backward, with fp32 or bf16
//! products.

use rayon::prelude::*;

use crate::quant::matmul_bf16;
use crate::row_matmul;
use crate::strided::{matmul_f32, Mat};

/// The number format of a training pass's linear-layer products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Products {
    /// fp32 operands.
    #[default]
    Fp32,
    /// Operands rounded to bf16, fp32 accumulation (mixed precision).
    Bf16,
}

/// `dst (m x n, row stride dst_rs) [+]= a (m x k) · b (k x n)` with
/// `products`' operands, on up to `threads` of the pool's threads.
///
/// # Safety
/// As [`matmul_f32`].
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn product(
    products: Products,
    threads: usize,
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    a: Mat,
    b: Mat,
) {
    // SAFETY: forwarded to the caller.
    unsafe {
        match products {
            Products::Fp32 => matmul_f32(m, n, k, dst, dst_rs, accumulate, a, b, threads),
            Products::Bf16 => matmul_bf16(m, n, k, dst, dst_rs, accumulate, a, b, threads),
        }
    }
}

/// `out[:, col..col + w_rows] = x · Wᵀ + b` for `x` `[rows, in]`, `W`
/// `[w_rows, in]`, into `out` rows of `out_width` elements, in fp32.
pub(crate) fn linear(x: &[f32], in_dim: usize, w: &[f32], b: &[f32], out: &mut [f32], out_width: usize, col: usize) {
    linear_in(Products::Fp32, x, in_dim, w, b, out, out_width, col)
}

/// [`linear`] with `products`' operands.
#[allow(clippy::too_many_arguments)]
pub(super) fn linear_in(
    products: Products,
    x: &[f32],
    in_dim: usize,
    w: &[f32],
    b: &[f32],
    out: &mut [f32],
    out_width: usize,
    col: usize,
) {
    let (rows, out_dim) = (x.len() / in_dim, b.len());
    if products == Products::Fp32 && rows <= row_matmul::MAX_ROWS && row_matmul::available() {
        return row_matmul::linear(x, in_dim, w, b, out, out_width, col);
    }
    assert!(x.len() == rows * in_dim && w.len() >= out_dim * in_dim && out.len() == rows * out_width);
    assert!(col + out_dim <= out_width);
    out.par_chunks_mut(out_width).with_min_len(64).for_each(|row| row[col..col + out_dim].copy_from_slice(b));
    // SAFETY: shapes checked above; `out` is borrowed mutably.
    unsafe {
        product(
            products,
            rayon::current_num_threads(),
            rows,
            out_dim,
            in_dim,
            out[col..].as_mut_ptr(),
            out_width,
            true,
            Mat::rows(x, 0, in_dim),
            Mat::rows(w, 0, in_dim).t(),
        );
    }
}

/// Backward of `y = x Wᵀ (+ b)` for `x` `[rows, in_dim]` and `W`
/// `[out, in_dim]`, given `dy` as rows of `out` values `dy_stride` apart:
/// writes `dW = dyᵀ x` into `dw` and `dy W` into `dx` (added to it when
/// `accumulate`), with `products`' operands. The bias gradient is `dy`'s
/// column sums.
#[allow(clippy::too_many_arguments)]
pub(super) fn linear_backward(
    products: Products,
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
        product(products, threads, out, in_dim, rows, dw.as_mut_ptr(), in_dim, false, d.t(), Mat::rows(x, 0, in_dim));
        product(products, threads, rows, in_dim, out, dx.as_mut_ptr(), in_dim, accumulate, d, Mat::rows(w, 0, in_dim));
    }
}

/// [`linear_backward`] for a frozen `W`: only `dx` (+)= `dy W`.
pub(super) fn linear_input_backward(
    products: Products,
    dy: &[f32],
    dy_stride: usize,
    in_dim: usize,
    w: &[f32],
    dx: &mut [f32],
    accumulate: bool,
) {
    let (rows, out) = (dx.len() / in_dim, w.len() / in_dim);
    assert!(dx.len() == rows * in_dim && w.len() == out * in_dim);
    assert!(rows == 0 || (rows - 1) * dy_stride + out <= dy.len());
    let (d, threads) = (Mat::rows(dy, 0, dy_stride), rayon::current_num_threads());
    // SAFETY: every operand's reach was checked above; `dx` is borrowed
    // mutably.
    unsafe {
        product(products, threads, rows, in_dim, out, dx.as_mut_ptr(), in_dim, accumulate, d, Mat::rows(w, 0, in_dim));
    }
}
