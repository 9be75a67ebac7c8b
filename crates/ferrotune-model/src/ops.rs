//! CPU kernels with a backward pass for the ops of a BERT layer that candle
//! either fuses without a gradient (`softmax_last_dim`, `layer_norm`) or
//! composes from many small ops (scaled, masked softmax; GELU's backward).
//! On other devices (CUDA) the same functions use candle's composed,
//! differentiable ops (`composed` below); the tests check that both paths
//! give the same values and gradients.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

/// Rows smaller than this many elements in total are not worth a thread.
const PARALLEL_MIN: usize = 1 << 14;

pub(crate) fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(v) => v.as_slice(),
        _ => candle_core::bail!("{op}: only f32 tensors are supported"),
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// Runs `f` on a contiguous f32 tensor's data.
pub(crate) fn with_f32<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(contiguous_f32(cpu, layout, op)?),
        _ => candle_core::bail!("{op}: only the CPU backend is supported"),
    }
}

fn rows_mut<'a>(out: &'a mut [f32], width: usize) -> impl IndexedParallelIterator<Item = (usize, &'a mut [f32])> {
    let min = (PARALLEL_MIN / width.max(1)).max(1);
    out.par_chunks_mut(width).with_min_len(min).enumerate()
}

// ---------------------------------------------------------------- softmax

/// Attention softmax over the last dimension of `[batch, ..., width]`
/// scores: `softmax(scale * x + mask[batch])`, the mask `[batch, width]`
/// holding 0 for real tokens and a large negative number for padding.
struct MaskedSoftmax {
    scale: f32,
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "ferrotune-masked-softmax"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let mask = contiguous_f32(s2, l2, self.name())?;
        let width = l1.dims().last().copied().unwrap_or(1);
        let batch = l2.dims().first().copied().unwrap_or(1);
        if mask.len() != batch * width || x.len() % (batch * width) != 0 {
            candle_core::bail!("{}: mask {:?} does not fit scores {:?}", self.name(), l2.dims(), l1.dims());
        }
        let rows_per_batch = x.len() / width / batch;
        let scale = self.scale;
        let mut out = vec![0f32; x.len()];
        rows_mut(&mut out, width).for_each(|(r, y)| {
            let x = &x[r * width..(r + 1) * width];
            let b = r / rows_per_batch;
            let m = &mask[b * width..(b + 1) * width];
            let mut max = f32::NEG_INFINITY;
            for i in 0..width {
                y[i] = x[i] * scale + m[i];
                max = max.max(y[i]);
            }
            let mut sum = 0f32;
            for y in y.iter_mut() {
                *y = (*y - max).exp();
                sum += *y;
            }
            let inv = 1.0 / sum;
            y.iter_mut().for_each(|y| *y *= inv);
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _mask: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let width = res.dims().last().copied().unwrap_or(1);
        let scale = self.scale;
        let dx = with_f32(res, "softmax-bwd", |y| {
            with_f32(grad, "softmax-bwd", |dy| {
                let mut dx = vec![0f32; y.len()];
                rows_mut(&mut dx, width).for_each(|(r, dx)| {
                    let y = &y[r * width..(r + 1) * width];
                    let dy = &dy[r * width..(r + 1) * width];
                    let dot: f32 = y.iter().zip(dy).map(|(a, b)| a * b).sum();
                    for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
                        *dx = scale * y * (dy - dot);
                    }
                });
                Ok(dx)
            })
        })?;
        Ok((Some(Tensor::from_vec(dx, res.shape(), res.device())?), None))
    }
}

/// `softmax(scale * x + mask)` over the last dimension, with a backward pass
/// for `x`; `mask` is `[batch, width]` and applies to every row of its batch.
pub fn masked_softmax(x: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return composed::masked_softmax(x, mask, scale);
    }
    x.contiguous()?.apply_op2(&mask.contiguous()?, MaskedSoftmax { scale: scale as f32 })
}

// ------------------------------------------------------------- layer norm

/// Layer normalisation over the last dimension with weight and bias.
struct LayerNorm {
    eps: f32,
}

/// Mean and 1/std of a row.
pub(crate) fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "ferrotune-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let w = contiguous_f32(s2, l2, self.name())?;
        let b = contiguous_f32(s3, l3, self.name())?;
        let width = w.len();
        let mut out = vec![0f32; x.len()];
        rows_mut(&mut out, width).for_each(|(r, y)| {
            let x = &x[r * width..(r + 1) * width];
            let (mean, inv_std) = row_stats(x, self.eps);
            for i in 0..width {
                y[i] = (x[i] - mean) * inv_std * w[i] + b[i];
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let width = w.elem_count();
        let eps = self.eps;
        let (dx, dw, db) = with_f32(x, "layer-norm-bwd", |x| {
            with_f32(w, "layer-norm-bwd", |w| {
                with_f32(grad, "layer-norm-bwd", |dy| {
                    let mut dx = vec![0f32; x.len()];
                    // dx per row; dw/db as partial sums over fixed blocks of
                    // rows, added in order, so results do not depend on
                    // how rayon schedules the blocks.
                    let rows_per_block = (PARALLEL_MIN / width).max(1);
                    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
                        .par_chunks_mut(width * rows_per_block)
                        .enumerate()
                        .map(|(block, dx)| {
                            let mut dw = vec![0f32; width];
                            let mut db = vec![0f32; width];
                            for (k, dx) in dx.chunks_mut(width).enumerate() {
                                let r = block * rows_per_block + k;
                                let x = &x[r * width..(r + 1) * width];
                                let dy = &dy[r * width..(r + 1) * width];
                                let (mean, inv_std) = row_stats(x, eps);
                                let mut sum_g = 0f32;
                                let mut sum_gx = 0f32;
                                for i in 0..width {
                                    let xhat = (x[i] - mean) * inv_std;
                                    let g = dy[i] * w[i];
                                    sum_g += g;
                                    sum_gx += g * xhat;
                                    dw[i] += dy[i] * xhat;
                                    db[i] += dy[i];
                                }
                                let n = width as f32;
                                for i in 0..width {
                                    let xhat = (x[i] - mean) * inv_std;
                                    dx[i] = inv_std * (dy[i] * w[i] - sum_g / n - xhat * sum_gx / n);
                                }
                            }
                            (dw, db)
                        })
                        .collect();
                    let mut dw = vec![0f32; width];
                    let mut db = vec![0f32; width];
                    for (pw, pb) in partials {
                        dw.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
                        db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
                    }
                    Ok((dx, dw, db))
                })
            })
        })?;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, w.shape(), dev)?),
            Some(Tensor::from_vec(db, w.shape(), dev)?),
        ))
    }
}

/// Layer normalisation over the last dimension (`(x - mean) / sqrt(var +
/// eps) * weight + bias`), with a backward pass for all three inputs.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return composed::layer_norm(x, weight, bias, eps);
    }
    x.contiguous()?.apply_op3(weight, bias, LayerNorm { eps: eps as f32 })
}

// ------------------------------------------------------------------- GELU

/// GELU with the exact (erf) form, as BERT's `hidden_act = "gelu"`.
struct GeluErf;

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// erf by a rational approximation on [-4, 4] (beyond which erf is ±1 in
/// f32), accurate to a few ulp and branch-free, so loops over it vectorise
/// (plain multiply-adds: `mul_add` would call a software fma without
/// target features).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    x * p / q
}

#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2))
}

#[inline(always)]
pub(crate) fn gelu_grad(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * FRAC_1_SQRT_2)) + x * FRAC_1_SQRT_2PI * (-0.5 * x * x).exp()
}

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "ferrotune-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, self.name())?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(PARALLEL_MIN)
            .zip(x.par_chunks(PARALLEL_MIN))
            .for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(y, &x)| *y = gelu(x)));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_f32(arg, "gelu-bwd", |x| {
            with_f32(grad, "gelu-bwd", |dy| {
                let mut dx = vec![0f32; x.len()];
                dx.par_chunks_mut(PARALLEL_MIN)
                    .zip(x.par_chunks(PARALLEL_MIN).zip(dy.par_chunks(PARALLEL_MIN)))
                    .for_each(|(dx, (x, dy))| {
                        for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
                            *dx = dy * gelu_grad(x);
                        }
                    });
                Ok(dx)
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// Exact GELU, `x * Φ(x)`, with a backward pass.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return composed::gelu_erf(x);
    }
    x.contiguous()?.apply_op1(GeluErf)
}

// --------------------------------------------------------- batched matmul

/// A batch of small matrix products (attention's `q k^T` and `p v`): the
/// products run in parallel, one single-threaded `gemm` each, instead of
/// one after another with threads spread over each small product.
struct BatchedMatmul;

/// The element stride between consecutive matrices of a `[..., rows, cols]`
/// layout whose batch dimensions collapse into one (0 for a single matrix).
fn batch_stride(layout: &Layout, op: &str) -> Result<usize> {
    let (dims, stride) = (layout.dims(), layout.stride());
    let rank = dims.len();
    for i in 0..rank.saturating_sub(3) {
        if dims[i + 1] > 1 && stride[i] != stride[i + 1] * dims[i + 1] {
            candle_core::bail!("{op}: batch dimensions {:?} (strides {:?}) do not collapse", dims, stride);
        }
    }
    Ok(if rank > 2 { stride[rank - 3] } else { 0 })
}

/// A raw pointer that may cross to the pool's threads: each thread writes
/// a disjoint matrix of the output and only reads the inputs.
#[derive(Clone, Copy)]
struct SendPtr(*const f32);
// SAFETY: see `SendPtr`; the pointees outlive the parallel loop.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl CustomOp2 for BatchedMatmul {
    fn name(&self) -> &'static str {
        "ferrotune-batched-matmul"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (a, b) = match (s1, s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => (a, b),
            _ => candle_core::bail!("{}: only f32 tensors are supported", self.name()),
        };
        let (da, db) = (l1.dims(), l2.dims());
        let rank = da.len();
        if rank < 2 || db.len() != rank || da[..rank - 2] != db[..rank - 2] || da[rank - 1] != db[rank - 2] {
            candle_core::bail!("{}: cannot multiply {:?} by {:?}", self.name(), da, db);
        }
        let (m, k, n) = (da[rank - 2], da[rank - 1], db[rank - 1]);
        let batch: usize = da[..rank - 2].iter().product();
        let (a_skip, b_skip) = (batch_stride(l1, self.name())?, batch_stride(l2, self.name())?);
        let (sa, sb) = (l1.stride(), l2.stride());
        let (a_rs, a_cs, b_rs, b_cs) = (sa[rank - 2] as isize, sa[rank - 1] as isize, sb[rank - 2] as isize, sb[rank - 1] as isize);
        // Every element the strides reach must be inside the storage.
        let reach = |skip: usize, rows: usize, rs: isize, cols: usize, cs: isize| {
            (batch.max(1) - 1) * skip + (rows.max(1) - 1) * rs as usize + (cols.max(1) - 1) * cs as usize
        };
        if l1.start_offset() + reach(a_skip, m, a_rs, k, a_cs) >= a.len().max(1)
            || l2.start_offset() + reach(b_skip, k, b_rs, n, b_cs) >= b.len().max(1)
        {
            candle_core::bail!("{}: layout out of bounds", self.name());
        }
        let (pa, pb) = (SendPtr(a[l1.start_offset()..].as_ptr()), SendPtr(b[l2.start_offset()..].as_ptr()));
        let mut out = vec![0f32; batch * m * n];
        out.par_chunks_mut((m * n).max(1)).enumerate().for_each(|(i, c)| {
            let (pa, pb) = (pa, pb);
            // SAFETY: the bounds were checked above; `c` is this matrix's
            // own part of the output, `m x n` row-major.
            unsafe {
                gemm::gemm(
                    m, n, k, c.as_mut_ptr(), 1, n as isize, false,
                    pa.0.add(i * a_skip), a_cs, a_rs,
                    pb.0.add(i * b_skip), b_cs, b_rs,
                    0.0, 1.0, false, false, false, gemm::Parallelism::None,
                );
            }
        });
        let mut shape = da[..rank - 1].to_vec();
        shape.push(n);
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(batched_matmul(grad, &b.t()?)?), Some(batched_matmul(&a.t()?, grad)?)))
    }
}

/// `a @ b` over the last two dimensions of `[..., m, k]` and `[..., k, n]`
/// with the same batch dimensions, with a backward pass. For many small
/// products (attention); on other devices candle's `matmul`.
pub fn batched_matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !a.device().is_cpu() {
        return a.matmul(b);
    }
    a.apply_op2(b, BatchedMatmul)
}

/// The same three ops from candle's differentiable building blocks, for
/// devices without our kernels.
mod composed {
    use candle_core::{Result, Tensor, D};

    pub fn masked_softmax(x: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
        let (batch, width) = mask.dims2()?;
        let mut shape = vec![batch];
        shape.extend(std::iter::repeat_n(1, x.rank() - 2));
        shape.push(width);
        candle_nn::ops::softmax(&(x * scale)?.broadcast_add(&mask.reshape(shape)?)?, D::Minus1)
    }

    pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
        candle_nn::ops::layer_norm_slow(x, weight, bias, eps as f32)
    }

    pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
        x.gelu_erf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn randn(shape: &[usize], seed: u64) -> Tensor {
        // Deterministic pseudo-random values in [-2, 2).
        let n: usize = shape.iter().product();
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let data: Vec<f32> = (0..n)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    /// Compares value and gradients of `ours` and `reference` (candle's
    /// composed ops) for the loss `sum(f(x) * probe)`.
    fn check(inputs: &[Tensor], ours: impl Fn(&[Tensor]) -> Tensor, reference: impl Fn(&[Tensor]) -> Tensor) {
        let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let a = ours(&ts);
        let b = reference(&ts);
        assert!(max_diff(&a, &b) < 1e-5, "forward differs by {}", max_diff(&a, &b));
        let probe = randn(a.dims(), 99);
        let ga = (&a * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (&b * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for (i, t) in ts.iter().enumerate() {
            let (x, y) = (ga.get(t).expect("gradient from our op"), gb.get(t).unwrap());
            let scale = 1.0 + y.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            assert!(max_diff(x, y) / scale < 1e-5, "input {i}: gradient differs by {}", max_diff(x, y));
        }
    }

    fn padding_mask(batch: usize, width: usize, real: &[usize]) -> Tensor {
        let data: Vec<f32> = (0..batch * width)
            .map(|i| if i % width < real[i / width] { 0.0 } else { f32::MIN })
            .collect();
        Tensor::from_vec(data, (batch, width), &Device::Cpu).unwrap()
    }

    #[test]
    fn masked_softmax_matches_composed_softmax() {
        let mask = padding_mask(3, 37, &[37, 20, 1]);
        check(
            &[randn(&[3, 4, 5, 37], 1)],
            |t| masked_softmax(&t[0], &mask, 0.125).unwrap(),
            |t| composed::masked_softmax(&t[0], &mask, 0.125).unwrap(),
        );
    }

    #[test]
    fn masked_positions_get_zero_probability() {
        let x = Tensor::new(&[[[1f32, 5.0, 2.0]]], &Device::Cpu).unwrap();
        let y: Vec<f32> = masked_softmax(&x, &padding_mask(1, 3, &[2]), 1.0).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(y[2], 0.0);
        assert!((y[0] + y[1] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn layer_norm_matches_layer_norm_slow() {
        check(
            &[randn(&[5, 3, 48], 2), randn(&[48], 3), randn(&[48], 4)],
            |t| layer_norm(&t[0], &t[1], &t[2], 1e-12).unwrap(),
            |t| composed::layer_norm(&t[0], &t[1], &t[2], 1e-12).unwrap(),
        );
    }

    #[test]
    fn batched_matmul_matches_candle_matmul() {
        // Attention's shapes: q k^T with k transposed as a view, then p v.
        check(
            &[randn(&[2, 3, 5, 4], 6), randn(&[2, 3, 7, 4], 7)],
            |t| batched_matmul(&t[0], &t[1].t().unwrap()).unwrap(),
            |t| t[0].matmul(&t[1].t().unwrap()).unwrap(),
        );
        check(
            &[randn(&[2, 3, 5, 7], 8), randn(&[2, 3, 7, 4], 9)],
            |t| batched_matmul(&t[0], &t[1]).unwrap(),
            |t| t[0].matmul(&t[1]).unwrap(),
        );
        let bad = batched_matmul(&randn(&[2, 3, 4], 1), &randn(&[2, 5, 4], 2)).unwrap_err().to_string();
        assert!(bad.contains("cannot multiply"), "{bad}");
    }

    #[test]
    fn gelu_matches_candle_gelu_erf() {
        check(&[randn(&[7, 129], 5)], |t| gelu_erf(&t[0]).unwrap(), |t| composed::gelu_erf(&t[0]).unwrap());
    }
}
