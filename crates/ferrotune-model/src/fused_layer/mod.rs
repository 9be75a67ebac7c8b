//! One whole BERT layer (self-attention, output projection, dropout,
//! residual layer norm, feed-forward block, dropout, residual layer norm) as
//! a single CPU op with a hand-written backward pass.
//!
//! Built from candle's small differentiable ops a layer is some forty graph
//! nodes, and candle's backward allocates a zero tensor and adds into it for
//! every input of every node, keeps every intermediate alive until the whole
//! backward pass ends, and copies attention's heads into and out of
//! contiguous layouts. Here the matrix products run on `gemm` with strides
//! (heads are read and written in place), element-wise work is fused into
//! the passes that need it, dropout masks are bytes, the GELU output is
//! recomputed instead of kept, and each layer's saved activations are freed
//! as soon as its backward has run.
//!
//! The weights enter as one flat vector (`Tensor::cat` of the layer's
//! parameters) so that candle's ordinary backward hands each parameter its
//! slice of the gradient. The tests (in `bert.rs`) compare values and
//! gradients with the same layer built from candle's ops.

use std::ops::Range;
use std::sync::{Arc, Mutex};

mod attention;
mod elementwise;
mod lora;
mod matmul;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use crate::config::Activation;
use crate::ops::{contiguous_f32, layer_norm_rows_backward, layer_norm_rows_into, with_f32};
use crate::quant::PackedLinear;
use crate::scratch;
use elementwise::{
    activate, activate_in_place, activation_backward, column_sums, dropout_add, dropout_backward, dropout_mask,
    softmax_row,
};
pub(crate) use lora::{matrix_dims, LoraShape};
use lora::{LoraGroup, LoraSaved, LoraWeights};
pub(crate) use matmul::linear as fp32_linear;
pub(crate) use matmul::Products;
use matmul::{linear_backward, linear_in, linear_input_backward};

use crate::strided::{matmul_f32, Mat, Out};

// The layer's parameters in order: query, key, value, attention output
// (weight, bias each), attention layer norm (weight, bias), intermediate,
// output (weight, bias each), output layer norm (weight, bias). Indices:
// q, k and v are 0, 2, 4 (weights) and 1, 3, 5 (biases).
const WO: usize = 6;
const BO: usize = 7;
const LN1_W: usize = 8;
const LN1_B: usize = 9;
const WI: usize = 10;
const BI: usize = 11;
const W2: usize = 12;
const B2: usize = 13;
const LN2_W: usize = 14;
const LN2_B: usize = 15;

/// Rows per chunk of inference's feed-forward block (above
/// `row_matmul::MAX_ROWS`, so that chunks take the whole batch's kernel).
const FFN_ROWS: usize = 2 * crate::row_matmul::MAX_ROWS;

/// Sizes and settings of one layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerShape {
    /// Hidden size.
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward (intermediate) size.
    pub inner: usize,
    /// Layer norm epsilon.
    pub eps: f32,
    /// Feed-forward activation.
    pub activation: Activation,
}

impl LayerShape {
    /// The shape of `config`'s layers.
    pub(crate) fn of(c: &crate::BertConfig) -> Self {
        Self {
            hidden: c.hidden_size,
            heads: c.num_attention_heads,
            inner: c.intermediate_size,
            eps: c.layer_norm_eps as f32,
            activation: c.hidden_act,
        }
    }

    /// Element counts of the parameters, in order.
    fn sizes(&self) -> [usize; 16] {
        let (h, i) = (self.hidden, self.inner);
        [h * h, h, h * h, h, h * h, h, h * h, h, h, h, i * h, i, h * i, h, h, h]
    }

    /// The parameters' slices of a flat weight vector.
    fn split<'a>(&self, flat: &'a [f32]) -> Result<[&'a [f32]; 16]> {
        let (offsets, total) = self.offsets();
        if flat.len() != total {
            candle_core::bail!("BERT layer: {} weights do not fit {self:?} ({total} expected)", flat.len());
        }
        Ok(std::array::from_fn(|i| &flat[offsets[i]..offsets[i] + self.sizes()[i]]))
    }

    /// Start of each parameter in the flat vector, and the total length.
    fn offsets(&self) -> ([usize; 16], usize) {
        let mut offsets = [0; 16];
        let mut at = 0;
        for (o, size) in offsets.iter_mut().zip(self.sizes()) {
            *o = at;
            at += size;
        }
        (offsets, at)
    }
}

/// A layer's LoRA adapters for the op: their settings and `A`, `B`
/// matrices slot by slot (`None`: none).
pub(crate) type LayerAdapters<'a> = Option<(LoraShape, &'a [&'a Tensor])>;

/// Consecutive sequences of a batch and the adapters they run with.
pub(crate) type AdapterGroup<'a> = (Range<usize>, LayerAdapters<'a>);

/// Dropout of one training forward pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerDropout {
    /// Seed of the masks' generator.
    pub seed: u64,
    /// Drop probability of hidden states.
    pub hidden_p: f32,
    /// Drop probability of attention probabilities.
    pub attention_p: f32,
}

// ------------------------------------------------------------------ the op

/// What the backward pass needs from the forward pass. The first layer
/// norm's output is computed again from its input (cheaper than keeping
/// it); the dropout masks are kept (a byte per value, where drawing them
/// again took a twentieth of a bf16 training step).
struct Saved {
    /// q, k, v side by side, `[rows, 3 * hidden]` (the attention
    /// probabilities are recomputed from them: `[batch, heads, len, len]`
    /// values would be the largest buffer kept).
    qkv: Vec<f32>,
    /// Attention context, `[rows, hidden]`.
    context: Vec<f32>,
    /// Input of the first layer norm and its row statistics.
    z1: Vec<f32>,
    stats1: Vec<(f32, f32)>,
    /// Feed-forward pre-activation, `[rows, inner]`.
    inner: Vec<f32>,
    z2: Vec<f32>,
    stats2: Vec<(f32, f32)>,
    /// The dropout masks of the attention probabilities and of the two
    /// residual branches (`None` without dropout).
    masks: [Option<Vec<u8>>; 3],
    /// Each adapted matrix's low-rank activations.
    lora: [Option<LoraSaved>; 6],
}

/// A layer's six weight matrices (query, key, value, attention output,
/// intermediate, output) in a lower precision, for inference.
pub(crate) type PackedLayer = [PackedLinear; 6];

/// One BERT layer as a candle op over (hidden `[batch, len, hidden]`, flat
/// weights, mask bias `[batch, len]`).
pub(crate) struct FusedLayer {
    shape: LayerShape,
    /// Lower-precision weight matrices (inference only).
    packed: Option<Arc<PackedLayer>>,
    dropout: Option<LayerDropout>,
    /// The linear layers' products when the weights are fp32.
    products: Products,
    /// The LoRA adapters on the weight matrices, if any.
    lora: Option<LoraShape>,
    /// When the adapters train: the frozen base parameters (the op's
    /// differentiable input is then the adapters' flat vector).
    frozen_base: Option<Vec<Tensor>>,
    /// Whether to keep activations for a backward pass.
    save: bool,
    saved: Mutex<Option<Saved>>,
}

/// The gradient of the op's flat input: the 16 base parameters', or the
/// adapters' when only they train.
enum Grads {
    Base(Vec<f32>),
    Lora(Vec<f32>),
}

/// The packed slot (0 to 5) of weight matrix `index` in the parameter order.
fn slot_of(index: usize) -> usize {
    match index {
        0 | 2 | 4 => index / 2,
        WO => 3,
        WI => 4,
        _ => 5,
    }
}

/// Runs `f` on the CPU f32 slices of `tensors`, read in place.
fn with_slices<R>(tensors: &[&Tensor], op: &str, f: impl FnOnce(&[&[f32]]) -> Result<R>) -> Result<R> {
    let guards: Vec<_> = tensors.iter().map(|w| w.storage_and_layout()).collect();
    let mut slices: Vec<&[f32]> = Vec::with_capacity(guards.len());
    for (storage, layout) in &guards {
        match &**storage {
            Storage::Cpu(cpu) => slices.push(contiguous_f32(cpu, layout, op)?),
            _ => candle_core::bail!("{op}: only the CPU backend is supported"),
        }
    }
    f(&slices)
}

impl FusedLayer {
    /// Applies the layer to `x` `[batch, len, hidden]` with its 16 parameters
    /// in order (see the indices above); `dropout` in training. When anything
    /// needs a gradient the parameters go in as one flat, differentiable
    /// vector; otherwise they are read in place, and the weight matrices
    /// come from `packed` when it is given. The fp32 weight matrices'
    /// products (forward and backward) take `products`' operands. `lora`:
    /// the adapters and their `A`, `B` matrices (slot by slot); when they
    /// need gradients the base parameters are frozen.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply(
        shape: LayerShape,
        x: &Tensor,
        weights: [&Tensor; 16],
        packed: Option<&Arc<PackedLayer>>,
        products: Products,
        mask_bias: &Tensor,
        dropout: Option<LayerDropout>,
        lora: LayerAdapters,
    ) -> Result<Tensor> {
        let (lora_shape, adapters) = match lora {
            Some((s, a)) => (Some(s), a),
            None => (None, &[][..]),
        };
        let lora_p = lora_shape.map_or(0.0, |l| l.dropout);
        let dropout = dropout.filter(|d| d.hidden_p > 0.0 || d.attention_p > 0.0 || lora_p > 0.0);
        let base_trains = weights.iter().any(|w| w.track_op());
        let adapters_train = adapters.iter().any(|w| w.track_op());
        if base_trains && adapters_train {
            candle_core::bail!("BERT layer: the base weights and the LoRA adapters cannot train together");
        }
        let save = x.track_op() || base_trains || adapters_train;
        let packed = packed.filter(|_| !save).cloned();
        let mut op = FusedLayer {
            shape,
            packed,
            dropout,
            products,
            lora: lora_shape,
            frozen_base: None,
            save,
            saved: Mutex::new(None),
        };
        let (x, mask_bias) = (x.contiguous()?, mask_bias.contiguous()?);
        let flatten = |ts: &[&Tensor]| -> Result<Tensor> {
            Tensor::cat(&ts.iter().map(|w| w.flatten_all()).collect::<Result<Vec<_>>>()?, 0)
        };
        if save && lora_shape.is_some() {
            if base_trains {
                candle_core::bail!("BERT layer: full fine-tuning of a model with LoRA adapters; merge them first");
            }
            op.frozen_base = Some(weights.iter().map(|w| w.detach()).collect());
            return x.apply_op3(&flatten(adapters)?, &mask_bias, op);
        }
        if save {
            return x.apply_op3(&flatten(&weights)?, &mask_bias, op);
        }
        let batch = x.dim(0)?;
        op.infer(&x, &weights, &mask_bias, &[(0..batch, lora)])
    }

    /// Inference over a batch whose sequences run with different adapters:
    /// `groups` are ascending, disjoint ranges of sequences, each with its
    /// adapters (`None`: the base alone). The base's products run once for
    /// the whole batch; each group adds its own low-rank products.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply_grouped(
        shape: LayerShape,
        x: &Tensor,
        weights: [&Tensor; 16],
        packed: Option<&Arc<PackedLayer>>,
        products: Products,
        mask_bias: &Tensor,
        groups: &[AdapterGroup],
    ) -> Result<Tensor> {
        let op = FusedLayer {
            shape,
            packed: packed.cloned(),
            dropout: None,
            products,
            lora: None,
            frozen_base: None,
            save: false,
            saved: Mutex::new(None),
        };
        op.infer(&x.contiguous()?, &weights, &mask_bias.contiguous()?, groups)
    }

    /// The forward pass without saving anything, the weights read in place
    /// (see [`Self::apply_grouped`] for `groups`).
    fn infer(
        &self,
        x: &Tensor,
        weights: &[&Tensor; 16],
        mask_bias: &Tensor,
        groups: &[AdapterGroup],
    ) -> Result<Tensor> {
        let batch = check_shapes(&self.shape, x.dims(), mask_bias.dims(), self.name())?;
        let len = x.dim(1)?;
        let mut next = 0;
        for (sequences, _) in groups {
            if sequences.start < next || sequences.end > batch {
                candle_core::bail!(
                    "{}: adapter groups {sequences:?} out of order or past {batch} sequences",
                    self.name()
                );
            }
            next = sequences.end;
        }
        let adapters: Vec<&Tensor> = groups.iter().flat_map(|(_, l)| l.map_or(&[][..], |(_, t)| t)).copied().collect();
        let y = self.with_base(weights, |w| {
            with_slices(&adapters, self.name(), |parts| {
                let mut lora = Vec::new();
                let mut parts = parts;
                for (sequences, adapters) in groups {
                    let Some((shape, tensors)) = adapters else { continue };
                    let (mine, rest) = parts.split_at(tensors.len().min(parts.len()));
                    parts = rest;
                    let weights = shape.weights_of(&self.shape, mine)?;
                    lora.push(LoraGroup {
                        start: sequences.start * len,
                        end: sequences.end * len,
                        shape: *shape,
                        weights,
                    });
                }
                with_f32(x, self.name(), |x| {
                    with_f32(mask_bias, self.name(), |m| Ok(self.forward(x, w, &lora, m, batch).0))
                })
            })
        })?;
        Tensor::from_vec(y, x.shape(), x.device())
    }

    /// Runs `f` on the 16 base parameters read in place (packed weight
    /// matrices leave their fp32 ones empty).
    fn with_base<R>(&self, weights: &[&Tensor], f: impl FnOnce(&[&[f32]; 16]) -> Result<R>) -> Result<R> {
        let shape = self.shape;
        with_slices(weights, self.name(), |slices| {
            for (i, (slice, size)) in slices.iter().zip(shape.sizes()).enumerate() {
                let packed_matrix = self.packed.is_some() && matches!(i, 0 | 2 | 4 | WO | WI | W2);
                if slice.len() != size && !(packed_matrix && slice.is_empty()) {
                    candle_core::bail!(
                        "{}: a parameter of {} elements where {size} fit {shape:?}",
                        self.name(),
                        slice.len()
                    );
                }
            }
            let w: &[&[f32]; 16] = slices.try_into().map_err(|_| candle_core::Error::Msg("16 parameters".into()))?;
            f(w)
        })
    }

    /// `out[:, col..] = x · Wᵀ + b` for weight matrix `index` (0, 2, 4, 6,
    /// 10, 12 in the parameter order), from the packed matrices if any,
    /// plus each adapter group's low-rank product on its rows (`x` holds
    /// the batch's rows from `first_row` on); returns what the adapter's
    /// backward pass needs when the layer saves activations (training: one
    /// group).
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &self,
        index: usize,
        w: &[&[f32]; 16],
        lora: &[LoraGroup],
        x: &[f32],
        in_dim: usize,
        out: &mut [f32],
        width: usize,
        col: usize,
        first_row: usize,
    ) -> Option<LoraSaved> {
        match &self.packed {
            Some(packed) => packed[slot_of(index)].linear(x, w[index + 1], out, width, col),
            None => linear_in(self.products, x, in_dim, w[index], w[index + 1], out, width, col),
        }
        self.adapt(index, lora, x, in_dim, out, width, col, first_row)
    }

    /// The query, key and value projections of `x` into `qkv`'s rows of
    /// `3 · hidden` (see [`Self::linear`]); packed int8 or bf16 matrices
    /// share one quantization or conversion of `x`.
    fn project_qkv(&self, w: &[&[f32]; 16], lora: &[LoraGroup], x: &[f32], qkv: &mut [f32]) -> [Option<LoraSaved>; 3] {
        let h = self.shape.hidden;
        let Some(packed) = &self.packed else {
            return std::array::from_fn(|j| self.linear(2 * j, w, lora, x, h, qkv, 3 * h, j * h, 0));
        };
        let parts: Vec<_> = (0..3).map(|j| (&packed[j], w[2 * j + 1], j * h)).collect();
        PackedLinear::linear_shared(&parts, x, qkv, 3 * h);
        std::array::from_fn(|j| self.adapt(2 * j, lora, x, h, qkv, 3 * h, j * h, 0))
    }

    /// Adds each adapter group's low-rank product for weight matrix
    /// `index` to its rows of `out` (see [`Self::linear`]).
    #[allow(clippy::too_many_arguments)]
    fn adapt(
        &self,
        index: usize,
        lora: &[LoraGroup],
        x: &[f32],
        in_dim: usize,
        out: &mut [f32],
        width: usize,
        col: usize,
        first_row: usize,
    ) -> Option<LoraSaved> {
        let slot = slot_of(index);
        let rows = x.len() / in_dim;
        let mut saved = None;
        for group in lora {
            let (Some(a), Some(b)) = (group.weights.a[slot], group.weights.b[slot]) else { continue };
            let (start, end) = (group.start.max(first_row) - first_row, group.end.min(first_row + rows) - first_row);
            if start >= end {
                continue;
            }
            let x = &x[start * in_dim..end * in_dim];
            let mask = match &self.dropout {
                Some(d) if group.shape.dropout > 0.0 => {
                    Some(lora::input_mask(x.len(), group.shape.dropout, d.seed, slot))
                }
                _ => None,
            };
            let out = &mut out[start * width..end * width];
            saved = Some(lora::forward(&group.shape, x, in_dim, a, b, mask, out, width, col));
        }
        saved.filter(|_| self.save)
    }

    /// Backward of weight matrix `index` (see [`Self::linear`]) given `dy`
    /// (rows `dy_stride` apart): `dx` (+)= `dy W` plus the adapter's part;
    /// the matrix's gradient into `grads` (the base's, or its adapter's).
    #[allow(clippy::too_many_arguments)]
    fn linear_grad(
        &self,
        index: usize,
        w: &[&[f32]; 16],
        lora: Option<&LoraWeights>,
        saved: &mut [Option<LoraSaved>; 6],
        dy: &[f32],
        dy_stride: usize,
        x: &[f32],
        in_dim: usize,
        grads: &mut Grads,
        dx: &mut [f32],
        accumulate: bool,
    ) {
        let slot = slot_of(index);
        match grads {
            Grads::Base(dw) => {
                let (o, _) = self.shape.offsets();
                let dw = &mut dw[o[index]..o[index] + self.shape.sizes()[index]];
                linear_backward(self.products, dy, dy_stride, x, in_dim, w[index], dw, dx, accumulate);
            }
            Grads::Lora(dl) => {
                linear_input_backward(self.products, dy, dy_stride, in_dim, w[index], dx, accumulate);
                let (Some(shape), Some(lora), Some(s)) = (&self.lora, lora, saved[slot].take()) else { return };
                let (Some(a), Some(b)) = (lora.a[slot], lora.b[slot]) else { return };
                let (ra, rb) = shape.ranges(&self.shape)[slot].clone().expect("an adapted slot");
                let (da, db) = dl[ra.start..rb.end].split_at_mut(ra.len());
                lora::backward(shape, &s, dy, dy_stride, x, in_dim, a, b, da, db, dx);
            }
        }
    }

    fn mask(&self, n: usize, stream: u64) -> Option<Vec<u8>> {
        let d = self.dropout.as_ref()?;
        let p = if stream == 0 { d.attention_p } else { d.hidden_p };
        (p > 0.0).then(|| dropout_mask(n, p, d.seed, stream))
    }

    fn hidden_p(&self) -> f32 {
        self.dropout.as_ref().map_or(0.0, |d| d.hidden_p)
    }

    fn attention_p(&self) -> f32 {
        self.dropout.as_ref().map_or(0.0, |d| d.attention_p)
    }

    fn forward(
        &self,
        x: &[f32],
        w: &[&[f32]; 16],
        lora: &[LoraGroup],
        mask_bias: &[f32],
        batch: usize,
    ) -> (Vec<f32>, Option<Saved>) {
        let LayerShape { hidden: h, heads, inner: inner_dim, eps, activation } = self.shape;
        let (rows, head_dim) = (x.len() / h, h / heads);
        let len = rows / batch;
        let weight = |i: usize| w[i];

        let mut lora_saved: [Option<LoraSaved>; 6] = Default::default();
        let mut qkv = scratch::take(rows * 3 * h);
        for (saved, projected) in lora_saved.iter_mut().zip(self.project_qkv(w, lora, x, &mut qkv)) {
            *saved = projected;
        }

        // Attention, one (sequence, head) pair per task; heads are read from
        // and written to their columns in place. Its products (QKᵀ, PV and,
        // backward, their gradients) are fp32 whatever the linear layers'
        // precision: in bf16 they took bf16 inference's F1 0.18 points below
        // fp32's (past its 0.1-point budget) and a bf16 training step a
        // twentieth longer (each pair's small operands packed again); in int8
        // inference the fp32 kernel is the faster.
        let scale = 1.0 / (head_dim as f32).sqrt();
        let pairs = batch * heads;
        let attention_mask = self.mask(pairs * len * len, 0);
        let keep = 1.0 / (1.0 - self.attention_p());
        let mut context = scratch::take(rows * h);
        let context_out = Out(context.as_mut_ptr());
        let qkv_ref = &qkv;
        // One (sequence, head) pair: its probabilities into `p`, its context
        // into its columns of `context`.
        let attend = |bh: usize, p: &mut [f32], dropped: &mut [f32]| {
            let (b, head) = (bh / heads, bh % heads);
            let base = b * len * 3 * h + head * head_dim;
            let q = Mat::rows(qkv_ref, base, 3 * h);
            let k = Mat::rows(qkv_ref, base + h, 3 * h);
            let v = Mat::rows(qkv_ref, base + 2 * h, 3 * h);
            // SAFETY: q, k, v are `len x head_dim` inside `qkv`; `p` is
            // this pair's `len x len` block.
            unsafe { matmul_f32(len, len, head_dim, p.as_mut_ptr(), len, false, q, k.t(), 1) };
            let mask = &mask_bias[b * len..(b + 1) * len];
            for row in p.chunks_mut(len) {
                softmax_row(row, mask, scale);
            }
            let used: &[f32] = match &attention_mask {
                Some(m) => {
                    let m = &m[bh * len * len..(bh + 1) * len * len];
                    dropped.iter_mut().zip(p.iter().zip(m)).for_each(|(d, (&p, &m))| *d = p * (m as f32 * keep));
                    dropped
                }
                None => p,
            };
            // SAFETY: this pair writes only its head's columns of its
            // sequence's rows of `context`.
            unsafe {
                let out = context_out.get().add(b * len * h + head * head_dim);
                matmul_f32(len, head_dim, len, out, h, false, Mat::rows(used, 0, len), v, 1);
            }
        };
        if !self.save && attention_mask.is_none() && attention::available(head_dim) {
            // Inference with AVX2: the pair's products on one small kernel.
            (0..pairs).into_par_iter().for_each_init(
                || (attention::AttentionScratch::default(), vec![0f32; len * head_dim]),
                |(scratch, pair_context), bh| {
                    let (b, head) = (bh / heads, bh % heads);
                    let base = b * len * 3 * h + head * head_dim;
                    let rows = attention::HeadRows {
                        queries: &qkv_ref[base..],
                        keys: &qkv_ref[base + h..],
                        values: &qkv_ref[base + 2 * h..],
                        stride: 3 * h,
                    };
                    let mask = &mask_bias[b * len..(b + 1) * len];
                    attention::attend(&rows, len, head_dim, mask, scale, scratch, pair_context);
                    for (i, row) in pair_context.chunks(head_dim).enumerate() {
                        // SAFETY: this pair writes only its head's columns of
                        // its sequence's rows of `context`.
                        unsafe {
                            let out = context_out.get().add((b * len + i) * h + head * head_dim);
                            std::ptr::copy_nonoverlapping(row.as_ptr(), out, head_dim);
                        }
                    }
                },
            );
        } else {
            // One pair's probabilities at a time per thread (the backward
            // pass recomputes them).
            (0..pairs).into_par_iter().for_each_init(
                || (vec![0f32; len * len], vec![0f32; len * len]),
                |(p, dropped), bh| attend(bh, p, dropped),
            );
        }

        let mut z1 = scratch::take(rows * h);
        lora_saved[3] = self.linear(WO, w, lora, &context, h, &mut z1, h, 0, 0);
        // Inference keeps nothing for a backward pass: its buffers go back
        // as soon as they are used, for the feed-forward block to take.
        let (qkv, context) = if self.save {
            (qkv, context)
        } else {
            scratch::give_back(qkv);
            scratch::give_back(context);
            (Vec::new(), Vec::new())
        };
        let hidden_mask_1 = self.mask(rows * h, 1);
        dropout_add(&mut z1, hidden_mask_1.as_deref(), self.hidden_p(), x);
        let mut attended = scratch::take(rows * h);
        let stats1 = layer_norm_rows_into(&z1, weight(LN1_W), weight(LN1_B), eps, &mut attended);

        let mut z2 = scratch::take(rows * h);
        let inner = if self.save {
            let mut inner = scratch::take(rows * inner_dim);
            lora_saved[4] = self.linear(WI, w, lora, &attended, h, &mut inner, inner_dim, 0, 0);
            let activated = activate(&inner, activation);
            lora_saved[5] = self.linear(W2, w, lora, &activated, inner_dim, &mut z2, h, 0, 0);
            scratch::give_back(activated);
            inner
        } else {
            scratch::give_back(std::mem::take(&mut z1));
            self.feed_forward_in_chunks(w, lora, &attended, &mut z2);
            Vec::new()
        };
        let hidden_mask_2 = self.mask(rows * h, 2);
        dropout_add(&mut z2, hidden_mask_2.as_deref(), self.hidden_p(), &attended);
        scratch::give_back(attended);
        // The layer's output outlives the pass's pool: a fresh buffer (a
        // pooled one could be a larger buffer kept alive by the output).
        let mut y = vec![0f32; rows * h];
        let stats2 = layer_norm_rows_into(&z2, weight(LN2_W), weight(LN2_B), eps, &mut y);

        if !self.save {
            scratch::give_back(z2);
            return (y, None);
        }
        let masks = [attention_mask, hidden_mask_1, hidden_mask_2];
        let saved = Some(Saved { qkv, context, z1, stats1, inner, z2, stats2, masks, lora: lora_saved });
        (y, saved)
    }

    /// Inference's feed-forward block (`z2 = W2 · act(Wi · attended)`), a
    /// few hundred rows at a time: its `[rows, inner]` activations are a
    /// layer's largest buffer, and per chunk they stay small. Chunks are at
    /// least [`FFN_ROWS`] rows, so each takes the same product kernel as the
    /// whole would.
    fn feed_forward_in_chunks(&self, w: &[&[f32]; 16], lora: &[LoraGroup], attended: &[f32], z2: &mut [f32]) {
        let LayerShape { hidden: h, inner: inner_dim, activation, .. } = self.shape;
        let rows = attended.len() / h;
        let chunks = (rows / FFN_ROWS).max(1);
        let mut inner = scratch::take((rows - (chunks - 1) * FFN_ROWS) * inner_dim);
        for chunk in 0..chunks {
            let start = chunk * FFN_ROWS;
            let end = if chunk + 1 == chunks { rows } else { start + FFN_ROWS };
            let values = &mut inner[..(end - start) * inner_dim];
            self.linear(WI, w, lora, &attended[start * h..end * h], h, values, inner_dim, 0, start);
            activate_in_place(values, activation);
            self.linear(W2, w, lora, values, inner_dim, &mut z2[start * h..end * h], h, 0, start);
        }
        scratch::give_back(inner);
    }

    /// The backward pass: `dx` and the gradient of the op's flat input
    /// (the base parameters', or the adapters' when `lora` trains).
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        mut s: Saved,
        x: &[f32],
        w: &[&[f32]; 16],
        lora: Option<&LoraWeights>,
        mask_bias: &[f32],
        batch: usize,
        dy: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let LayerShape { hidden: h, heads, inner: inner_dim, activation, eps } = self.shape;
        let (o, total) = self.shape.offsets();
        let sizes = self.shape.sizes();
        let (rows, head_dim) = (x.len() / h, h / heads);
        let len = rows / batch;
        let weight = |i: usize| w[i];
        let mut grads = match (&self.lora, &self.frozen_base) {
            (Some(l), Some(_)) => Grads::Lora(vec![0f32; l.len(&self.shape)]),
            _ => Grads::Base(vec![0f32; total]),
        };
        // Writes the gradient of base parameter `i` (not of a frozen base).
        let set = |grads: &mut Grads, i: usize, values: &[f32]| {
            if let Grads::Base(dw) = grads {
                dw[o[i]..o[i] + sizes[i]].copy_from_slice(values);
            }
        };
        let trains_base = matches!(grads, Grads::Base(_));
        let mut lora_saved = std::mem::take(&mut s.lora);

        // Second layer norm, dropout, residual.
        let (mut d_out, ln_w, ln_b) = layer_norm_rows_backward(&s.z2, &s.stats2, weight(LN2_W), dy);
        set(&mut grads, LN2_W, &ln_w);
        set(&mut grads, LN2_B, &ln_b);
        let mut d_attended = d_out.clone();
        let [attention_mask, hidden_mask_1, hidden_mask_2] = std::mem::take(&mut s.masks);
        dropout_backward(&mut d_out, hidden_mask_2.as_deref(), self.hidden_p());

        // Feed-forward output projection.
        if trains_base {
            set(&mut grads, B2, &column_sums(&d_out, h));
        }
        let activated = activate(&s.inner, activation);
        let mut d_inner = scratch::take(rows * inner_dim);
        #[rustfmt::skip]
        self.linear_grad(W2, w, lora, &mut lora_saved, &d_out, h, &activated, inner_dim, &mut grads, &mut d_inner, false);
        scratch::give_back(activated);
        drop(d_out);
        activation_backward(&mut d_inner, &s.inner, activation);
        scratch::give_back(std::mem::take(&mut s.inner));

        // Feed-forward input projection.
        if trains_base {
            set(&mut grads, BI, &column_sums(&d_inner, inner_dim));
        }
        let mut attended = scratch::take(rows * h);
        layer_norm_rows_into(&s.z1, weight(LN1_W), weight(LN1_B), eps, &mut attended);
        #[rustfmt::skip]
        self.linear_grad(WI, w, lora, &mut lora_saved, &d_inner, inner_dim, &attended, h, &mut grads, &mut d_attended, true);
        scratch::give_back(attended);
        scratch::give_back(d_inner);

        // First layer norm, dropout, residual.
        let (mut d_proj, ln_w, ln_b) = layer_norm_rows_backward(&s.z1, &s.stats1, weight(LN1_W), &d_attended);
        drop(d_attended);
        set(&mut grads, LN1_W, &ln_w);
        set(&mut grads, LN1_B, &ln_b);
        let mut dx = d_proj.clone();
        dropout_backward(&mut d_proj, hidden_mask_1.as_deref(), self.hidden_p());

        // Attention output projection.
        if trains_base {
            set(&mut grads, BO, &column_sums(&d_proj, h));
        }
        let mut d_context = scratch::take(rows * h);
        #[rustfmt::skip]
        self.linear_grad(WO, w, lora, &mut lora_saved, &d_proj, h, &s.context, h, &mut grads, &mut d_context, false);
        drop(d_proj);
        scratch::give_back(std::mem::take(&mut s.context));

        // Attention, one (sequence, head) pair per task.
        let scale = 1.0 / (head_dim as f32).sqrt();
        let keep = 1.0 / (1.0 - self.attention_p());
        // Every head writes all of its columns of `d_qkv`.
        let mut d_qkv = scratch::take(rows * 3 * h);
        let d_qkv_out = Out(d_qkv.as_mut_ptr());
        let (qkv, d_context_ref, attention_mask) = (&s.qkv, &d_context, attention_mask.as_deref());
        (0..batch * heads).into_par_iter().for_each_init(
            || (vec![0f32; len * len], vec![0f32; len * len], vec![0f32; len * len]),
            |(p, dropped, d_scores), bh| {
                let (b, head) = (bh / heads, bh % heads);
                let base = b * len * 3 * h + head * head_dim;
                let q = Mat::rows(qkv, base, 3 * h);
                let k = Mat::rows(qkv, base + h, 3 * h);
                let v = Mat::rows(qkv, base + 2 * h, 3 * h);
                // The forward pass's probabilities, recomputed with its
                // kernel and operands: the same values.
                // SAFETY: q and k are `len x head_dim` inside `qkv`; `p` is
                // this task's `len x len` scratch.
                unsafe { matmul_f32(len, len, head_dim, p.as_mut_ptr(), len, false, q, k.t(), 1) };
                for row in p.chunks_mut(len) {
                    softmax_row(row, &mask_bias[b * len..(b + 1) * len], scale);
                }
                let p = &*p;
                let dc = Mat::rows(d_context_ref, b * len * h + head * head_dim, h);
                let m = attention_mask.map(|m| &m[bh * len * len..(bh + 1) * len * len]);
                let used: &[f32] = match m {
                    Some(m) => {
                        dropped.iter_mut().zip(p.iter().zip(m)).for_each(|(d, (&p, &m))| *d = p * (m as f32 * keep));
                        dropped
                    }
                    None => p,
                };
                // SAFETY: reads inside `qkv`/`d_context`; writes this task's
                // head columns of its sequence's rows of `d_qkv`, and its own
                // scratch.
                unsafe {
                    let out = d_qkv_out.get().add(base);
                    matmul_f32(len, head_dim, len, out.add(2 * h), 3 * h, false, Mat::rows(used, 0, len).t(), dc, 1);
                    matmul_f32(len, len, head_dim, d_scores.as_mut_ptr(), len, false, dc, v.t(), 1);
                }
                for (r, (ds, p)) in d_scores.chunks_mut(len).zip(p.chunks(len)).enumerate() {
                    if let Some(m) = m {
                        ds.iter_mut().zip(&m[r * len..(r + 1) * len]).for_each(|(d, &m)| *d *= m as f32 * keep);
                    }
                    let dot: f32 = ds.iter().zip(p).map(|(a, b)| a * b).sum();
                    ds.iter_mut().zip(p).for_each(|(d, &p)| *d = scale * p * (*d - dot));
                }
                // SAFETY: as above: this head's dq and dk columns of its own
                // rows, which no other task writes.
                unsafe {
                    let out = d_qkv_out.get().add(base);
                    matmul_f32(len, head_dim, len, out, 3 * h, false, Mat::rows(d_scores, 0, len), k, 1);
                    matmul_f32(len, head_dim, len, out.add(h), 3 * h, false, Mat::rows(d_scores, 0, len).t(), q, 1);
                }
            },
        );
        scratch::give_back(d_context);
        scratch::give_back(std::mem::take(&mut s.qkv));

        // q, k, v projections.
        if trains_base {
            let bias_grads = column_sums(&d_qkv, 3 * h);
            for j in 0..3 {
                set(&mut grads, 2 * j + 1, &bias_grads[j * h..(j + 1) * h]);
            }
        }
        for j in 0..3 {
            #[rustfmt::skip]
            self.linear_grad(2 * j, w, lora, &mut lora_saved, &d_qkv[j * h..], 3 * h, x, h, &mut grads, &mut dx, true);
        }
        scratch::give_back(d_qkv);
        scratch::give_back(s.z1);
        scratch::give_back(s.z2);
        match grads {
            Grads::Base(dw) | Grads::Lora(dw) => (dx, dw),
        }
    }
}

impl FusedLayer {
    /// Runs `f` on the base parameters and the adapters given the op's flat
    /// input: the base's 16 parameters, or, when the adapters train, theirs
    /// (the frozen base then read in place).
    fn with_flat<R>(
        &self,
        flat: &[f32],
        f: impl FnOnce(&[&[f32]; 16], Option<&LoraWeights>) -> Result<R>,
    ) -> Result<R> {
        match (&self.lora, &self.frozen_base) {
            (Some(lora), Some(base)) => {
                let adapters = lora.split(&self.shape, flat)?;
                let base: Vec<&Tensor> = base.iter().collect();
                self.with_base(&base, |w| f(w, Some(&adapters)))
            }
            _ => f(&self.shape.split(flat)?, None),
        }
    }
}

impl CustomOp3 for FusedLayer {
    fn name(&self) -> &'static str {
        "ferrotune-bert-layer"
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
        let flat = contiguous_f32(s2, l2, self.name())?;
        let mask = contiguous_f32(s3, l3, self.name())?;
        let batch = check_shapes(&self.shape, l1.dims(), l3.dims(), self.name())?;
        let rows = x.len() / self.shape.hidden;
        let (y, saved) = self.with_flat(flat, |w, lora| {
            let group = lora.zip(self.lora).map(|(&weights, shape)| LoraGroup { start: 0, end: rows, shape, weights });
            Ok(self.forward(x, w, group.as_slice(), mask, batch))
        })?;
        if saved.is_some() {
            *self.saved.lock().unwrap_or_else(|e| e.into_inner()) = saved;
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        mask: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let saved = self.saved.lock().unwrap_or_else(|e| e.into_inner()).take();
        let saved = saved.ok_or_else(|| {
            candle_core::Error::Msg("BERT layer backward: no saved activations (backward run twice?)".into())
        })?;
        let batch = x.dim(0)?;
        let (dx, dw) = with_f32(x, self.name(), |x| {
            with_f32(w, self.name(), |flat| {
                self.with_flat(flat, |w, lora| {
                    with_f32(mask, self.name(), |m| {
                        with_f32(grad, self.name(), |dy| Ok(self.backward(saved, x, w, lora, m, batch, dy)))
                    })
                })
            })
        })?;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            Some(Tensor::from_vec(dw, w.shape(), w.device())?),
            None,
        ))
    }
}

/// Checks the inputs against the layer's shape; returns the batch size.
fn check_shapes(shape: &LayerShape, x: &[usize], mask: &[usize], op: &str) -> Result<usize> {
    let ok = matches!((x, mask), ([b, l, h], [mb, ml]) if b == mb && l == ml && *h == shape.hidden)
        && shape.hidden.is_multiple_of(shape.heads);
    if !ok {
        candle_core::bail!("{op}: hidden {x:?} and mask {mask:?} do not fit {shape:?}");
    }
    Ok(x[0])
}
