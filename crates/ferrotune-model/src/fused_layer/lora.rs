//! LoRA inside the fused layer: each adapted weight matrix `W` adds
//! `s · drop(x) Aᵀ Bᵀ` to its product (`A` `[r, in]`, `B` `[out, r]`,
//! `s = alpha / r`), as PEFT's `lora.Linear` does. The low-rank products are
//! small (`r` is 4 to 64), so they run in fp32 whatever the base's precision.
//!
//! When the adapters train, the base weights are frozen: the op's
//! differentiable input is the flat vector of the adapters' matrices, and
//! the backward pass computes no weight gradient of the base (the two
//! largest products of each matrix's backward).

use candle_core::Result;

use super::elementwise::dropout_mask;
use super::LayerShape;
use crate::strided::{matmul_f32, Mat};

/// Which of a layer's six weight matrices (query, key, value, attention
/// output, intermediate, output) carry an adapter, and its settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LoraShape {
    /// Adapted matrices, in the packed order.
    pub slots: [bool; 6],
    /// Rank `r`.
    pub rank: usize,
    /// `s`, the factor of the low-rank product.
    pub scaling: f32,
    /// Dropout probability of the adapters' input (training only).
    pub dropout: f32,
}

/// `(out, in)` of matrix `slot` of a layer.
pub(crate) fn matrix_dims(layer: &LayerShape, slot: usize) -> (usize, usize) {
    let (h, i) = (layer.hidden, layer.inner);
    match slot {
        0..=3 => (h, h),
        4 => (i, h),
        _ => (h, i),
    }
}

impl LoraShape {
    /// Where each adapted matrix's `A` and `B` start in the flat vector
    /// (`A` then `B`, slot by slot), and the total length.
    fn offsets(&self, layer: &LayerShape) -> ([Option<(usize, usize)>; 6], usize) {
        let mut at = 0;
        let mut offsets = [None; 6];
        for (slot, offset) in offsets.iter_mut().enumerate().filter(|(s, _)| self.slots[*s]) {
            let (out, inp) = matrix_dims(layer, slot);
            *offset = Some((at, at + self.rank * inp));
            at += self.rank * (inp + out);
        }
        (offsets, at)
    }

    /// Total number of adapter values.
    pub(crate) fn len(&self, layer: &LayerShape) -> usize {
        self.offsets(layer).1
    }

    /// The adapters' `A` and `B` slices of a flat vector.
    pub(crate) fn split<'a>(&self, layer: &LayerShape, flat: &'a [f32]) -> Result<LoraWeights<'a>> {
        let (offsets, total) = self.offsets(layer);
        if flat.len() != total {
            candle_core::bail!("LoRA: {} values do not fit rank {} on {:?}", flat.len(), self.rank, self.slots);
        }
        let mut weights = LoraWeights { a: [None; 6], b: [None; 6] };
        for (slot, offset) in offsets.iter().enumerate() {
            if let Some((a, b)) = *offset {
                let (out, _) = matrix_dims(layer, slot);
                weights.a[slot] = Some(&flat[a..b]);
                weights.b[slot] = Some(&flat[b..b + out * self.rank]);
            }
        }
        Ok(weights)
    }

    /// The adapters' `A` and `B` slices from one slice per matrix, in the
    /// flat order (`A` then `B`, slot by slot).
    pub(crate) fn weights_of<'a>(&self, layer: &LayerShape, parts: &[&'a [f32]]) -> Result<LoraWeights<'a>> {
        let mut weights = LoraWeights { a: [None; 6], b: [None; 6] };
        let mut parts = parts.iter();
        for slot in (0..6).filter(|&s| self.slots[s]) {
            let (out, inp) = matrix_dims(layer, slot);
            let (Some(&a), Some(&b)) = (parts.next(), parts.next()) else {
                candle_core::bail!("LoRA: too few adapter matrices for {:?}", self.slots);
            };
            if a.len() != self.rank * inp || b.len() != out * self.rank {
                candle_core::bail!(
                    "LoRA: matrix {slot} adapters of {} and {} values, rank {}",
                    a.len(),
                    b.len(),
                    self.rank
                );
            }
            weights.a[slot] = Some(a);
            weights.b[slot] = Some(b);
        }
        Ok(weights)
    }

    /// Each adapted slot's `(A, B)` ranges in the flat vector.
    pub(super) fn ranges(&self, layer: &LayerShape) -> [Option<(std::ops::Range<usize>, std::ops::Range<usize>)>; 6] {
        let (offsets, _) = self.offsets(layer);
        std::array::from_fn(|slot| {
            offsets[slot].map(|(a, b)| {
                let (out, _) = matrix_dims(layer, slot);
                (a..b, b..b + out * self.rank)
            })
        })
    }
}

/// The adapters' matrices of one layer, by slot.
#[derive(Clone, Copy)]
pub(crate) struct LoraWeights<'a> {
    pub a: [Option<&'a [f32]>; 6],
    pub b: [Option<&'a [f32]>; 6],
}

/// Consecutive rows (tokens) of a batch and the adapters they run with:
/// one group over every row in training, one per adapter in an inference
/// batch that mixes them.
#[derive(Clone, Copy)]
pub(super) struct LoraGroup<'a> {
    /// First row.
    pub start: usize,
    /// One past the last row.
    pub end: usize,
    /// The adapters' settings.
    pub shape: LoraShape,
    /// Their matrices.
    pub weights: LoraWeights<'a>,
}

/// What an adapted matrix's backward pass needs: `s · drop(x) Aᵀ` and the
/// dropout mask of its input.
pub(super) struct LoraSaved {
    xa: Vec<f32>,
    mask: Option<Vec<u8>>,
}

/// The dropout mask of slot `slot`'s adapter input (stream 3 + slot; the
/// layer's own dropout uses streams 0 to 2).
pub(super) fn input_mask(n: usize, p: f32, seed: u64, slot: usize) -> Vec<u8> {
    dropout_mask(n, p, seed, 3 + slot as u64)
}

/// `x` with the dropout mask applied (kept values scaled by `1 / (1 - p)`).
fn dropped(x: &[f32], mask: &[u8], p: f32) -> Vec<f32> {
    let keep = 1.0 / (1.0 - p);
    x.iter().zip(mask).map(|(&v, &m)| v * (m as f32 * keep)).collect()
}

/// `out[:, col..col + out_dim] += s · drop(x) Aᵀ Bᵀ` for `x` `[rows, in]`
/// into rows of `width` values; returns what the backward pass needs.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    lora: &LoraShape,
    x: &[f32],
    in_dim: usize,
    a: &[f32],
    b: &[f32],
    mask: Option<Vec<u8>>,
    out: &mut [f32],
    width: usize,
    col: usize,
) -> LoraSaved {
    let (rows, r) = (x.len() / in_dim, lora.rank);
    let out_dim = b.len() / r;
    assert!(a.len() == r * in_dim && out.len() == rows * width && col + out_dim <= width);
    let input = mask.as_ref().map(|m| dropped(x, m, lora.dropout));
    let input = input.as_deref().unwrap_or(x);
    let mut xa = vec![0f32; rows * r];
    let threads = rayon::current_num_threads();
    // SAFETY: `input` is `rows x in_dim`, `a` is `r x in_dim`, `xa` is
    // `rows x r`; `out` holds `rows` rows of `width` with `col + out_dim`
    // inside each (checked above).
    unsafe {
        matmul_f32(
            rows,
            r,
            in_dim,
            xa.as_mut_ptr(),
            r,
            false,
            Mat::rows(input, 0, in_dim),
            Mat::rows(a, 0, in_dim).t(),
            threads,
        );
    }
    xa.iter_mut().for_each(|v| *v *= lora.scaling);
    // SAFETY: as above.
    unsafe {
        matmul_f32(
            rows,
            out_dim,
            r,
            out[col..].as_mut_ptr(),
            width,
            true,
            Mat::rows(&xa, 0, r),
            Mat::rows(b, 0, r).t(),
            threads,
        );
    }
    LoraSaved { xa, mask }
}

/// Backward of [`forward`] given `dy` (rows of `out_dim` values
/// `dy_stride` apart): writes `dA` and `dB` and adds the adapter's part of
/// `dx`.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    lora: &LoraShape,
    saved: &LoraSaved,
    dy: &[f32],
    dy_stride: usize,
    x: &[f32],
    in_dim: usize,
    a: &[f32],
    b: &[f32],
    da: &mut [f32],
    db: &mut [f32],
    dx: &mut [f32],
) {
    let (rows, r) = (x.len() / in_dim, lora.rank);
    let out_dim = b.len() / r;
    assert!(da.len() == a.len() && db.len() == b.len() && dx.len() == x.len() && saved.xa.len() == rows * r);
    assert!(rows == 0 || (rows - 1) * dy_stride + out_dim <= dy.len());
    let threads = rayon::current_num_threads();
    let d = Mat::rows(dy, 0, dy_stride);
    let mut d_xa = vec![0f32; rows * r];
    // SAFETY: every operand's reach is checked above.
    unsafe {
        // dB = dyᵀ (s · drop(x) Aᵀ)
        matmul_f32(out_dim, r, rows, db.as_mut_ptr(), r, false, d.t(), Mat::rows(&saved.xa, 0, r), threads);
        // d(drop(x) Aᵀ) = s · dy B
        matmul_f32(rows, r, out_dim, d_xa.as_mut_ptr(), r, false, d, Mat::rows(b, 0, r), threads);
    }
    d_xa.iter_mut().for_each(|v| *v *= lora.scaling);
    let input = saved.mask.as_ref().map(|m| dropped(x, m, lora.dropout));
    let input = input.as_deref().unwrap_or(x);
    let mut d_input = vec![0f32; rows * in_dim];
    // SAFETY: as above.
    unsafe {
        // dA = d(drop(x) Aᵀ)ᵀ drop(x)
        matmul_f32(
            r,
            in_dim,
            rows,
            da.as_mut_ptr(),
            in_dim,
            false,
            Mat::rows(&d_xa, 0, r).t(),
            Mat::rows(input, 0, in_dim),
            threads,
        );
        matmul_f32(
            rows,
            in_dim,
            r,
            d_input.as_mut_ptr(),
            in_dim,
            false,
            Mat::rows(&d_xa, 0, r),
            Mat::rows(a, 0, in_dim),
            threads,
        );
    }
    match &saved.mask {
        Some(m) => {
            let keep = 1.0 / (1.0 - lora.dropout);
            dx.iter_mut().zip(d_input.iter().zip(m)).for_each(|(d, (&g, &m))| *d += g * (m as f32 * keep));
        }
        None => dx.iter_mut().zip(&d_input).for_each(|(d, &g)| *d += g),
    }
}
