//! Layer normalisation as a CPU kernel with a backward pass (candle's fused
//! `layer_norm` has none; its composed one is many small ops), and the
//! helpers that our CPU kernels share. On other devices (CUDA) `layer_norm`
//! uses candle's composed, differentiable ops; the tests check that both
//! paths give the same values and gradients.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};
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

// ------------------------------------------------------------- layer norm

/// Mean and 1/std of a row.
#[inline(always)]
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = lane_sum(x, |v| v) / n;
    let var = lane_sum(x, |v| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// `Σ f(x)` with 16 independent partial sums, so that the loop vectorises
/// (a single running sum must add in order).
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l += f(v);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

crate::simd::multiversion! {
    /// One row of layer norm; returns its (mean, 1/std).
    fn normalize_row(y: &mut [f32], z: &[f32], w: &[f32], b: &[f32], eps: f32) -> (f32, f32) {
        let (mean, inv_std) = row_stats(z, eps);
        for (((y, z), w), b) in y.iter_mut().zip(z).zip(w).zip(b) {
            *y = (z - mean) * inv_std * w + b;
        }
        (mean, inv_std)
    }
}

/// Layer norm of each row of `z` (rows of `w.len()` elements), with each
/// row's (mean, 1/std) for the backward pass.
pub(crate) fn layer_norm_rows(z: &[f32], w: &[f32], b: &[f32], eps: f32) -> (Vec<f32>, Vec<(f32, f32)>) {
    let mut out = vec![0f32; z.len()];
    let stats = layer_norm_rows_into(z, w, b, eps, &mut out);
    (out, stats)
}

/// [`layer_norm_rows`] into `out` (as long as `z`; its values are
/// overwritten), returning the statistics.
pub(crate) fn layer_norm_rows_into(z: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) -> Vec<(f32, f32)> {
    let width = w.len();
    assert_eq!(out.len(), z.len(), "layer norm: output and input lengths differ");
    out.par_chunks_mut(width)
        .zip(z.par_chunks(width))
        .with_min_len((PARALLEL_MIN / width.max(1)).max(1))
        .map(|(y, z)| normalize_row(y, z, w, b, eps))
        .collect()
}

/// Backward of [`layer_norm_rows`]: gradients for `z`, the weight and the
/// bias. The weight and bias gradients are partial sums over fixed blocks
/// of rows added in order, so they do not depend on thread scheduling.
pub(crate) fn layer_norm_rows_backward(
    z: &[f32],
    stats: &[(f32, f32)],
    w: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let width = w.len();
    let n = width as f32;
    let mut dz = vec![0f32; z.len()];
    let rows_per_block = (PARALLEL_MIN / width.max(1)).max(1);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dz
        .par_chunks_mut(width * rows_per_block)
        .enumerate()
        .map(|(block, dz)| {
            let (mut dw, mut db) = (vec![0f32; width], vec![0f32; width]);
            for (k, dz) in dz.chunks_mut(width).enumerate() {
                let r = block * rows_per_block + k;
                let (z, dy) = (&z[r * width..(r + 1) * width], &dy[r * width..(r + 1) * width]);
                let (mean, inv_std) = stats[r];
                let (mut sum_g, mut sum_gx) = (0f32, 0f32);
                for i in 0..width {
                    let xhat = (z[i] - mean) * inv_std;
                    let g = dy[i] * w[i];
                    sum_g += g;
                    sum_gx += g * xhat;
                    dw[i] += dy[i] * xhat;
                    db[i] += dy[i];
                }
                for i in 0..width {
                    let xhat = (z[i] - mean) * inv_std;
                    dz[i] = inv_std * (dy[i] * w[i] - sum_g / n - xhat * sum_gx / n);
                }
            }
            (dw, db)
        })
        .collect();
    let (mut dw, mut db) = (vec![0f32; width], vec![0f32; width]);
    for (pw, pb) in partials {
        dw.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
    }
    (dz, dw, db)
}

/// Layer normalisation over the last dimension with weight and bias.
struct LayerNorm {
    eps: f32,
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
        if w.is_empty() || w.len() != b.len() || x.len() % w.len() != 0 {
            candle_core::bail!("{}: {:?} does not fit weight {:?}", self.name(), l1.dims(), l2.dims());
        }
        Ok((CpuStorage::F32(layer_norm_rows(x, w, b, self.eps).0), l1.shape().clone()))
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
        let (dx, dw, db) = with_f32(x, self.name(), |x| {
            with_f32(w, self.name(), |w| {
                with_f32(grad, self.name(), |dy| {
                    let stats: Vec<_> = x.par_chunks(width).map(|row| row_stats(row, self.eps)).collect();
                    Ok(layer_norm_rows_backward(x, &stats, w, dy))
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

/// Layer norm from candle's differentiable building blocks, for devices
/// without our kernel.
mod composed {
    use candle_core::{Result, Tensor};

    pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
        candle_nn::ops::layer_norm_slow(x, weight, bias, eps as f32)
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

    #[test]
    fn layer_norm_matches_layer_norm_slow() {
        check(
            &[randn(&[5, 3, 48], 2), randn(&[48], 3), randn(&[48], 4)],
            |t| layer_norm(&t[0], &t[1], &t[2], 1e-12).unwrap(),
            |t| composed::layer_norm(&t[0], &t[1], &t[2], 1e-12).unwrap(),
        );
    }
}
