//! A BERT encoder in the layout of Hugging Face `BertModel` (the names below
//! are its tensor names): on the CPU each layer runs as one fused op
//! (`fused_layer`), elsewhere from candle's differentiable ops.

use std::ops::Range;
use std::sync::Arc;

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rand::RngCore;

use crate::config::{Activation, BertConfig};
use crate::dropout::{Dropout, Mode};
use crate::fused_layer::{FusedLayer, LayerDropout, LayerShape, LoraShape, PackedLayer, Products};
use crate::lora::LoraSettings;
use crate::ops;
use crate::quant::{widen_int8, Int8Matrix, PackedLinear, Precision};
use crate::scratch::ScratchScope;

/// A dense layer `x W^T + b` over the last dimension, with a LoRA adapter
/// when the weights have one.
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
    adapter: Option<Adapter>,
}

/// A LoRA adapter: `A` `[r, in]`, `B` `[out, r]` (see [`crate::lora`]).
struct Adapter {
    a: Tensor,
    b: Tensor,
    scaling: f64,
    dropout: Dropout,
}

impl Linear {
    /// Loads `weight` `[out, in]` and `bias` `[out]`. A weight stored in
    /// int8 (beside a `weight_scale`, in a quantized folder) is left empty
    /// here: the encoder layer packs it for its kernels.
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        Self::with_adapter(vb, in_dim, out_dim, None)
    }

    /// [`Self::new`], plus the LoRA adapter stored beside the weight
    /// (`lora_A.weight`, `lora_B.weight`) when there is one; `lora` gives
    /// its scaling and dropout and must be set when there is.
    fn with_adapter(vb: VarBuilder, in_dim: usize, out_dim: usize, lora: Option<&LoraSettings>) -> Result<Self> {
        let weight = if vb.contains_tensor("weight_scale") {
            Tensor::zeros(0, DType::F32, vb.device())?
        } else {
            vb.get((out_dim, in_dim), "weight")?
        };
        let adapter = match (vb.contains_tensor("lora_A.weight"), lora) {
            (false, _) => None,
            (true, None) => candle_core::bail!("{}: LoRA matrices without adapter settings", vb.prefix()),
            (true, Some(lora)) => Some(Adapter {
                a: vb.get((lora.rank, in_dim), "lora_A.weight")?,
                b: vb.get((out_dim, lora.rank), "lora_B.weight")?,
                scaling: lora.scaling(),
                dropout: Dropout::new(lora.dropout),
            }),
        };
        Ok(Self { weight, bias: vb.get(out_dim, "bias")?, adapter })
    }

    /// The layer, with its adapter's dropout in training.
    fn forward_t(&self, x: &Tensor, mode: &mut Mode) -> Result<Tensor> {
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let x = x.reshape((x.elem_count() / in_dim, in_dim))?;
        let mut y = x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?;
        if let Some(adapter) = &self.adapter {
            let low_rank = adapter.dropout.forward(&x, mode)?.matmul(&adapter.a.t()?)?.matmul(&adapter.b.t()?)?;
            y = (y + (low_rank * adapter.scaling)?)?;
        }
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("rank >= 1") = self.bias.dim(0)?;
        y.reshape(out_dims)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, &mut Mode::Eval)
    }
}

/// Layer normalisation with weight and bias.
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Loads `weight` and `bias` of size `dim`.
    pub fn new(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self { weight: vb.get(dim, "weight")?, bias: vb.get(dim, "bias")?, eps })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// The word-embedding table: f32, or int8 rows with one scale each as a
/// quantized folder stores them (widened row by row at lookup).
enum WordTable {
    F32(Tensor),
    Int8 { values: Tensor, scales: Tensor },
}

impl WordTable {
    fn new(vb: VarBuilder, vocab: usize, hidden: usize) -> Result<Self> {
        if vb.contains_tensor("weight_scale") {
            let values = vb.get_with_hints_dtype((vocab, hidden), "weight", candle_nn::Init::Const(0.), DType::U8)?;
            Ok(Self::Int8 { values, scales: vb.get(vocab, "weight_scale")? })
        } else {
            Ok(Self::F32(vb.get((vocab, hidden), "weight")?))
        }
    }

    /// The rows of `ids` (u32, one dimension).
    fn lookup(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Self::F32(table) => table.index_select(ids, 0),
            Self::Int8 { values, scales } => widen_int8(&values.index_select(ids, 0)?, &scales.index_select(ids, 0)?),
        }
    }

    fn values(&self) -> &Tensor {
        match self {
            Self::F32(table) => table,
            Self::Int8 { values, .. } => values,
        }
    }
}

/// Word, position and token-type embeddings, summed and normalised.
struct Embeddings {
    word: WordTable,
    position: Tensor,
    token_type: Tensor,
    norm: LayerNorm,
    dropout: Dropout,
}

impl Embeddings {
    fn new(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        Ok(Self {
            word: WordTable::new(vb.pp("word_embeddings"), c.vocab_size, c.hidden_size)?,
            position: vb.get((c.max_position_embeddings, c.hidden_size), "position_embeddings.weight")?,
            token_type: vb.get((c.type_vocab_size, c.hidden_size), "token_type_embeddings.weight")?,
            norm: LayerNorm::new(vb.pp("LayerNorm"), c.hidden_size, c.layer_norm_eps)?,
            dropout: Dropout::new(c.hidden_dropout_prob),
        })
    }

    fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, mode: &mut Mode) -> Result<Tensor> {
        let (batch, len) = input_ids.dims2()?;
        let hidden = self.word.values().dim(1)?;
        if len > self.position.dim(0)? {
            candle_core::bail!("input of {len} tokens exceeds max_position_embeddings {}", self.position.dim(0)?);
        }
        let words = self.word.lookup(&input_ids.flatten_all()?)?.reshape((batch, len, hidden))?;
        let types = self.token_type.index_select(&token_type_ids.flatten_all()?, 0)?.reshape((batch, len, hidden))?;
        let positions = self.position.narrow(0, 0, len)?;
        let sum = words.add(&types)?.broadcast_add(&positions)?;
        self.dropout.forward(&self.norm.forward(&sum)?, mode)
    }
}

/// `softmax(scale * x + mask)` over the last dimension of attention scores
/// `[batch, heads, len, len]`; `mask` `[batch, len]` applies to every row of
/// its sequence.
fn masked_softmax(x: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let (batch, width) = mask.dims2()?;
    let mask = mask.reshape((batch, 1, 1, width))?;
    candle_nn::ops::softmax(&(x * scale)?.broadcast_add(&mask)?, candle_core::D::Minus1)
}

/// Multi-head self-attention with its output projection and residual norm.
struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    norm: LayerNorm,
    heads: usize,
    probs_dropout: Dropout,
    hidden_dropout: Dropout,
}

impl Attention {
    fn new(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        let h = c.hidden_size;
        let sa = vb.pp("self");
        Ok(Self {
            query: Linear::with_adapter(sa.pp("query"), h, h, c.lora.as_ref())?,
            key: Linear::with_adapter(sa.pp("key"), h, h, c.lora.as_ref())?,
            value: Linear::with_adapter(sa.pp("value"), h, h, c.lora.as_ref())?,
            output: Linear::with_adapter(vb.pp("output").pp("dense"), h, h, c.lora.as_ref())?,
            norm: LayerNorm::new(vb.pp("output").pp("LayerNorm"), h, c.layer_norm_eps)?,
            heads: c.num_attention_heads,
            probs_dropout: Dropout::new(c.attention_probs_dropout_prob),
            hidden_dropout: Dropout::new(c.hidden_dropout_prob),
        })
    }

    /// `mask_bias`: `[batch, len]`, 0 for real tokens and a large negative
    /// number for padding.
    fn forward(&self, x: &Tensor, mask_bias: &Tensor, mode: &mut Mode) -> Result<Tensor> {
        let (batch, len, hidden) = x.dims3()?;
        let head_dim = hidden / self.heads;
        let split = |t: Tensor| t.reshape((batch, len, self.heads, head_dim))?.transpose(1, 2)?.contiguous();
        let q = split(self.query.forward_t(x, mode)?)?;
        let k = split(self.key.forward_t(x, mode)?)?;
        let v = split(self.value.forward_t(x, mode)?)?;
        let scores = q.matmul(&k.t()?)?;
        let probs = masked_softmax(&scores, mask_bias, 1.0 / (head_dim as f64).sqrt())?;
        let probs = self.probs_dropout.forward(&probs, mode)?;
        let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((batch, len, hidden))?;
        let out = self.output.forward_t(&context, mode)?;
        let out = self.hidden_dropout.forward(&out, mode)?;
        self.norm.forward(&out.add(x)?)
    }
}

/// One transformer layer: attention, then the feed-forward block. On the
/// CPU it runs as one fused op (`fused_layer`); elsewhere from candle's ops.
struct Layer {
    attention: Attention,
    intermediate: Linear,
    output: Linear,
    norm: LayerNorm,
    activation: Activation,
    dropout: Dropout,
    shape: LayerShape,
    hidden_dropout: f32,
    attention_dropout: f32,
    /// The weight matrices in a lower precision, for inference.
    packed: Option<Arc<PackedLayer>>,
    /// Which matrices (in the packed order) a quantized folder keeps in
    /// fp32: they stay fp32 in every precision.
    kept_fp32: [bool; 6],
    /// The products of the fp32 weight matrices (bf16: mixed precision).
    products: Products,
}

/// A weight matrix kept in fp32 among packed ones.
fn kept_matrix(linear: &Linear) -> Result<PackedLinear> {
    let (_, in_dim) = linear.weight.dims2()?;
    Ok(PackedLinear::Fp32 { weight: linear.weight.flatten_all()?.to_vec1()?, in_dim })
}

/// The six weight matrices of a layer in the packed order.
const MATRICES: [&str; 6] = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
];

impl Layer {
    fn new(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        let mut layer = Self {
            attention: Attention::new(vb.pp("attention"), c)?,
            intermediate: Linear::with_adapter(
                vb.pp("intermediate").pp("dense"),
                c.hidden_size,
                c.intermediate_size,
                c.lora.as_ref(),
            )?,
            output: Linear::with_adapter(
                vb.pp("output").pp("dense"),
                c.intermediate_size,
                c.hidden_size,
                c.lora.as_ref(),
            )?,
            norm: LayerNorm::new(vb.pp("output").pp("LayerNorm"), c.hidden_size, c.layer_norm_eps)?,
            activation: c.hidden_act,
            dropout: Dropout::new(c.hidden_dropout_prob),
            shape: LayerShape::of(c),
            hidden_dropout: c.hidden_dropout_prob,
            attention_dropout: c.attention_probs_dropout_prob,
            packed: None,
            kept_fp32: MATRICES.map(|name| {
                let weight = crate::hf_name(&format!("{}.{name}.weight", vb.prefix()));
                c.quantization.as_ref().is_some_and(|q| q.kept_fp32.contains(&weight))
            }),
            products: Products::Fp32,
        };
        layer.pack_stored_int8(&vb)?;
        Ok(layer)
    }

    /// Packs the matrices a quantized folder stores in int8, as they are
    /// (no f32 copy is made); those it keeps in fp32 stay fp32.
    fn pack_stored_int8(&mut self, vb: &VarBuilder) -> Result<()> {
        let stored = |name: &str| vb.contains_tensor(&format!("{name}.weight_scale"));
        if !MATRICES.iter().any(|name| stored(name)) {
            return Ok(());
        }
        let packed: Vec<PackedLinear> = MATRICES
            .iter()
            .zip(self.matrices())
            .zip(self.kept_fp32)
            .map(|((name, linear), kept)| {
                if kept {
                    return kept_matrix(linear);
                }
                let out_dim = linear.bias.dim(0)?;
                let matrix = if stored(name) {
                    let vb = vb.pp(name);
                    let scales: Vec<f32> = vb.get(out_dim, "weight_scale")?.to_vec1()?;
                    let q = vb.get_unchecked_dtype("weight", DType::U8)?;
                    let (rows, in_dim) = q.dims2()?;
                    if rows != out_dim {
                        candle_core::bail!("'{name}.weight' has {rows} rows, its bias {out_dim}");
                    }
                    let bytes: Vec<u8> = q.flatten_all()?.to_vec1()?;
                    Int8Matrix::from_quantized(bytemuck::cast_slice(&bytes), &scales, out_dim, in_dim)
                } else {
                    let (out_dim, in_dim) = linear.weight.dims2()?;
                    Int8Matrix::quantize(&linear.weight.flatten_all()?.to_vec1()?, out_dim, in_dim)
                };
                Ok(PackedLinear::Int8(matrix))
            })
            .collect::<Result<_>>()?;
        self.packed = Some(Arc::new(packed.try_into().expect("six matrices")));
        self.drop_fp32_matrices()
    }

    /// Frees the fp32 weight matrices once packed copies replace them.
    fn drop_fp32_matrices(&mut self) -> Result<()> {
        let a = &mut self.attention;
        for l in [&mut a.query, &mut a.key, &mut a.value, &mut a.output, &mut self.intermediate, &mut self.output] {
            l.weight = Tensor::zeros(0, DType::F32, l.bias.device())?;
        }
        Ok(())
    }

    /// The six weight matrices in the packed order, with their shapes.
    fn matrices(&self) -> [&Linear; 6] {
        let a = &self.attention;
        [&a.query, &a.key, &a.value, &a.output, &self.intermediate, &self.output]
    }

    /// Converts the weight matrices to `precision` for inference (those
    /// kept in fp32 stay fp32); a layer already packed (stored int8) only
    /// accepts its own precision.
    fn set_precision(&mut self, precision: Precision) -> Result<()> {
        if let Some(packed) = &self.packed {
            let stored = packed.iter().map(PackedLinear::precision).find(|&p| p != Precision::Fp32);
            return match stored {
                Some(p) if p != precision => {
                    candle_core::bail!("the weights are stored in {p}; they cannot run in {precision}")
                }
                _ => Ok(()),
            };
        }
        if precision == Precision::Fp32 || self.kept_fp32.iter().all(|&kept| kept) {
            return Ok(());
        }
        let packed: Vec<PackedLinear> = self
            .matrices()
            .iter()
            .zip(self.kept_fp32)
            .map(|(l, kept)| {
                if kept {
                    return kept_matrix(l);
                }
                let (out_dim, in_dim) = l.weight.dims2()?;
                let w: Vec<f32> = l.weight.flatten_all()?.to_vec1()?;
                Ok(PackedLinear::new(&w, out_dim, in_dim, precision).expect("a lower precision"))
            })
            .collect::<Result<_>>()?;
        self.packed = Some(Arc::new(packed.try_into().expect("six matrices")));
        self.drop_fp32_matrices()?;
        Ok(())
    }

    /// The parameters in the fused op's order.
    fn parameters(&self) -> [&Tensor; 16] {
        let (a, i, o) = (&self.attention, &self.intermediate, &self.output);
        [
            &a.query.weight,
            &a.query.bias,
            &a.key.weight,
            &a.key.bias,
            &a.value.weight,
            &a.value.bias,
            &a.output.weight,
            &a.output.bias,
            &a.norm.weight,
            &a.norm.bias,
            &i.weight,
            &i.bias,
            &o.weight,
            &o.bias,
            &self.norm.weight,
            &self.norm.bias,
        ]
    }

    fn forward(&self, x: &Tensor, mask_bias: &Tensor, mode: &mut Mode) -> Result<Tensor> {
        if !x.device().is_cpu() || x.dtype() != DType::F32 {
            return self.forward_composed(x, mask_bias, mode);
        }
        let dropout = match mode {
            Mode::Train(rng) => Some(LayerDropout {
                seed: rng.next_u64(),
                hidden_p: self.hidden_dropout,
                attention_p: self.attention_dropout,
            }),
            Mode::Eval => None,
        };
        let adapters = self.adapters()?;
        let lora = adapters.as_ref().map(|(shape, tensors)| (*shape, tensors.as_slice()));
        #[rustfmt::skip]
        let y = FusedLayer::apply(self.shape, x, self.parameters(), self.packed.as_ref(), self.products, mask_bias, dropout, lora);
        y
    }

    /// Inference over a batch whose sequences run with different adapters
    /// (see [`BertEncoder::forward_grouped`]): the base's products from
    /// this layer, each group's adapters from its own copy of the layer.
    fn forward_grouped(&self, x: &Tensor, mask_bias: &Tensor, groups: &[(Range<usize>, &Layer)]) -> Result<Tensor> {
        if !x.device().is_cpu() || x.dtype() != DType::F32 {
            let parts = groups
                .iter()
                .map(|(rows, layer)| {
                    let (x, mask) =
                        (x.narrow(0, rows.start, rows.len())?, mask_bias.narrow(0, rows.start, rows.len())?);
                    layer.forward_composed(&x, &mask, &mut Mode::Eval)
                })
                .collect::<Result<Vec<_>>>()?;
            return Tensor::cat(&parts, 0);
        }
        let adapters = groups.iter().map(|(_, layer)| layer.adapters()).collect::<Result<Vec<_>>>()?;
        let groups: Vec<_> = groups
            .iter()
            .zip(&adapters)
            .map(|((rows, _), a)| (rows.clone(), a.as_ref().map(|(shape, tensors)| (*shape, tensors.as_slice()))))
            .collect();
        #[rustfmt::skip]
        let y = FusedLayer::apply_grouped(self.shape, x, self.parameters(), self.packed.as_ref(), self.products, mask_bias, &groups);
        y
    }

    /// The layer's LoRA adapters for the fused op: which matrices carry
    /// one, and their `A`, `B` matrices slot by slot; `None` without any.
    fn adapters(&self) -> Result<Option<(LoraShape, Vec<&Tensor>)>> {
        let mut slots = [false; 6];
        let mut tensors = Vec::new();
        let mut settings = None;
        for (slot, linear) in self.matrices().into_iter().enumerate() {
            let Some(adapter) = &linear.adapter else { continue };
            let rank = adapter.a.dim(0)?;
            match settings {
                Some((r, s, _)) if r != rank || s != adapter.scaling => {
                    candle_core::bail!("LoRA adapters of one layer differ in rank or scaling")
                }
                _ => settings = Some((rank, adapter.scaling, adapter.dropout.p())),
            }
            slots[slot] = true;
            tensors.push(&adapter.a);
            tensors.push(&adapter.b);
        }
        Ok(settings
            .map(|(rank, scaling, dropout)| (LoraShape { slots, rank, scaling: scaling as f32, dropout }, tensors)))
    }

    /// The layer from candle's differentiable ops (any device).
    fn forward_composed(&self, x: &Tensor, mask_bias: &Tensor, mode: &mut Mode) -> Result<Tensor> {
        let attended = self.attention.forward(x, mask_bias, mode)?;
        let inner = self.intermediate.forward_t(&attended, mode)?;
        let inner = match self.activation {
            Activation::GeluErf => inner.gelu_erf()?,
            Activation::GeluTanh => inner.gelu()?,
            Activation::Relu => inner.relu()?,
        };
        let out = self.output.forward_t(&inner, mode)?;
        let out = self.dropout.forward(&out, mode)?;
        self.norm.forward(&out.add(&attended)?)
    }
}

/// An encoder's weight matrices in a lower precision, as packed for the
/// kernels, shareable between encoders on one base's weights.
#[derive(Clone)]
pub struct PackedWeights(Vec<Option<Arc<PackedLayer>>>);

impl PackedWeights {
    /// Whether any matrix is packed (not fp32).
    pub fn is_packed(&self) -> bool {
        self.0.iter().any(Option::is_some)
    }
}

/// The BERT encoder: embeddings and layers (no pooler).
pub struct BertEncoder {
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

impl BertEncoder {
    /// Loads the encoder's tensors (`embeddings.*`, `encoder.layer.N.*`).
    pub fn new(vb: VarBuilder, config: &BertConfig) -> Result<Self> {
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::new(vb.pp("encoder").pp("layer").pp(i), config))
            .collect::<Result<_>>()?;
        Ok(Self { embeddings: Embeddings::new(vb.pp("embeddings"), config)?, layers })
    }

    /// Runs the layers' weight matrices in `precision` from now on (for
    /// inference on the CPU: training and other devices use fp32); int8 and
    /// bf16 replace the fp32 matrices, so call it once, on a frozen model.
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        if precision != Precision::Fp32 && !self.embeddings.word.values().device().is_cpu() {
            candle_core::bail!("{precision} inference runs on the CPU only; use fp32 on this device");
        }
        self.layers.iter_mut().try_for_each(|l| l.set_precision(precision))
    }

    /// The layers' packed weight matrices (none in fp32), to share with
    /// other encoders on the same base weights (see [`Self::share_packed`]).
    pub fn packed_weights(&self) -> PackedWeights {
        PackedWeights(self.layers.iter().map(|l| l.packed.clone()).collect())
    }

    /// Runs on `packed`, taken from an encoder built on the same base
    /// weights, instead of packing them again (many LoRA adapters on one
    /// base hold one packed copy); the fp32 matrices it replaces are freed.
    pub fn share_packed(&mut self, packed: &PackedWeights) -> Result<()> {
        if packed.0.len() != self.layers.len() {
            candle_core::bail!("packed weights of {} layers for {} layers", packed.0.len(), self.layers.len());
        }
        for (layer, packed) in self.layers.iter_mut().zip(&packed.0) {
            if let Some(packed) = packed {
                layer.packed = Some(Arc::clone(packed));
                layer.drop_fp32_matrices()?;
            }
        }
        Ok(())
    }

    /// Mixed precision: the layers' weight-matrix products, forward and
    /// backward, take bf16 operands with fp32 accumulation while the
    /// weights, gradients and everything else stay fp32 (`Bf16`), or fp32
    /// throughout (`Fp32`). For training on the CPU; int8 is refused.
    pub fn set_training_precision(&mut self, precision: Precision) -> Result<()> {
        if self.layers.iter().any(|l| l.packed.is_some()) || matches!(self.embeddings.word, WordTable::Int8 { .. }) {
            candle_core::bail!("the weights are stored quantized, for inference only; train from the fp32 folder");
        }
        let products = match precision {
            Precision::Fp32 => Products::Fp32,
            Precision::Bf16 if self.embeddings.word.values().device().is_cpu() => Products::Bf16,
            Precision::Bf16 => candle_core::bail!("bf16 training runs on the CPU only; use fp32 on this device"),
            Precision::Int8 => candle_core::bail!("int8 is an inference precision; train in fp32 or bf16"),
        };
        self.layers.iter_mut().for_each(|l| l.products = products);
        Ok(())
    }

    /// Last hidden state `[batch, len, hidden]` of `input_ids` `[batch, len]`
    /// (u32), with `attention_mask` `[batch, len]` (f32, 1 for real tokens).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        attention_mask: &Tensor,
        mode: &mut Mode,
    ) -> Result<Tensor> {
        let (mut hidden, mask_bias) = self.embed(input_ids, token_type_ids, attention_mask, mode)?;
        // Inference layers pass their large buffers on to the next one.
        let _scratch = ScratchScope::enter();
        for layer in &self.layers {
            hidden = layer.forward(&hidden, &mask_bias, mode)?;
        }
        Ok(hidden)
    }

    /// The embeddings of a batch, and its attention mask as the additive
    /// bias the layers take: 0 where attended, the most negative f32 where
    /// padded (as transformers does).
    fn embed(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        attention_mask: &Tensor,
        mode: &mut Mode,
    ) -> Result<(Tensor, Tensor)> {
        // Inputs are built on the CPU; the model may live elsewhere.
        let device = self.embeddings.word.values().device();
        let (input_ids, token_type_ids) = (&input_ids.to_device(device)?, &token_type_ids.to_device(device)?);
        let attention_mask = attention_mask.to_device(device)?;
        let mask_bias = ((attention_mask.to_dtype(DType::F32)? - 1.0)? * (-(f32::MIN as f64)))?;
        Ok((self.embeddings.forward(input_ids, token_type_ids, mode)?, mask_bias))
    }

    /// [`Self::forward`] in inference over a batch whose sequences run with
    /// different LoRA adapters: `groups` are ascending, disjoint ranges of
    /// sequences covering the batch, each with the encoder that carries its
    /// adapters. Every one of those encoders must share this one's base
    /// weights (copies of one base with adapters added, as
    /// [`crate::lora::AdapterFolder::apply`] makes them): the base's
    /// embeddings and products run once for the whole batch, from `self`,
    /// and each group adds its own adapters' low-rank products.
    pub fn forward_grouped(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        attention_mask: &Tensor,
        groups: &[(Range<usize>, &BertEncoder)],
    ) -> Result<Tensor> {
        let batch = input_ids.dim(0)?;
        let covered = groups.iter().try_fold(0, |next, (rows, _)| (rows.start == next).then_some(rows.end));
        if covered != Some(batch) || groups.iter().any(|(_, e)| e.layers.len() != self.layers.len()) {
            candle_core::bail!("adapter groups must cover the batch's {batch} sequences in order, on the same base");
        }
        let (mut hidden, mask_bias) = self.embed(input_ids, token_type_ids, attention_mask, &mut Mode::Eval)?;
        let _scratch = ScratchScope::enter();
        for (i, layer) in self.layers.iter().enumerate() {
            let layers: Vec<(Range<usize>, &Layer)> = groups.iter().map(|(r, e)| (r.clone(), &e.layers[i])).collect();
            hidden = layer.forward_grouped(&hidden, &mask_bias, &layers)?;
        }
        Ok(hidden)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::lora::LoraTarget;

    fn config(activation: &str, dropout: f32) -> BertConfig {
        BertConfig::from_json(
            &serde_json::json!({
                "vocab_size": 10, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
                "intermediate_size": 64, "max_position_embeddings": 16, "type_vocab_size": 2,
                "layer_norm_eps": 1e-12, "hidden_act": activation, "hidden_dropout_prob": dropout,
                "attention_probs_dropout_prob": dropout
            })
            .to_string(),
        )
        .unwrap()
    }

    fn random(shape: &[usize], rng: &mut ChaCha8Rng, scale: f32) -> Tensor {
        let n = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| (rng.random::<f32>() - 0.5) * 2.0 * scale).collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    }

    /// A layer with random trainable parameters, and the parameters.
    fn layer(c: &BertConfig, seed: u64) -> (Layer, Vec<Var>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let mut tensors = HashMap::new();
        let mut vars = Vec::new();
        let mut add = |name: &str, shape: &[usize], scale: f32, offset: f32| {
            let var = Var::from_tensor(&(random(shape, &mut rng, scale) + offset as f64).unwrap()).unwrap();
            tensors.insert(name.to_string(), var.as_tensor().clone());
            vars.push(var);
        };
        for name in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
            add(&format!("{name}.weight"), &[h, h], 0.3, 0.0);
            add(&format!("{name}.bias"), &[h], 0.1, 0.0);
        }
        add("intermediate.dense.weight", &[i, h], 0.3, 0.0);
        add("intermediate.dense.bias", &[i], 0.1, 0.0);
        add("output.dense.weight", &[h, i], 0.3, 0.0);
        add("output.dense.bias", &[h], 0.1, 0.0);
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            add(&format!("{norm}.weight"), &[h], 0.2, 1.0);
            add(&format!("{norm}.bias"), &[h], 0.1, 0.0);
        }
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        (Layer::new(vb, c).unwrap(), vars)
    }

    fn mask_bias(lengths: &[usize], len: usize) -> Tensor {
        let data: Vec<f32> =
            lengths.iter().flat_map(|&n| (0..len).map(move |i| if i < n { 0.0 } else { f32::MIN })).collect();
        Tensor::from_vec(data, (lengths.len(), len), &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    fn max_abs(a: &Tensor) -> f32 {
        a.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    /// Runs `layer` fused and from candle's ops on one random input (eval
    /// mode: no dropout on either path) and checks the values and the
    /// gradients of the input and of `trained`; returns the fused output
    /// and its gradients.
    fn check_against_composed(
        layer: &Layer,
        trained: &[Var],
        what: &str,
    ) -> (Tensor, Var, candle_core::backprop::GradStore) {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x = Var::from_tensor(&random(&[3, 7, 32], &mut rng, 1.0)).unwrap();
        let probe = random(&[3, 7, 32], &mut rng, 1.0);
        let mask = mask_bias(&[7, 4, 1], 7);
        let fused = layer.forward(x.as_tensor(), &mask, &mut Mode::Eval).unwrap();
        let composed = layer.forward_composed(x.as_tensor(), &mask, &mut Mode::Eval).unwrap();
        assert!(max_diff(&fused, &composed) < 1e-4, "{what}: values differ by {}", max_diff(&fused, &composed));
        let g_fused = (&fused * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let g_composed = (&composed * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for (i, t) in std::iter::once(x.as_tensor()).chain(trained.iter().map(|p| p.as_tensor())).enumerate() {
            let (a, b) = (g_fused.get(t).expect("fused gradient"), g_composed.get(t).unwrap());
            let err = max_diff(a, b) / (1.0 + max_abs(b));
            assert!(err < 1e-4, "{what}: gradient {i} differs by {err}");
        }
        (fused, x, g_fused)
    }

    #[test]
    fn fused_layer_matches_composed_ops_in_values_and_gradients() {
        for activation in ["gelu", "gelu_new", "relu"] {
            let (layer, params) = layer(&config(activation, 0.1), 3);
            check_against_composed(&layer, &params, activation);
        }
    }

    /// Inside a scratch scope (as a trainer runs its steps) the forward and
    /// backward passes take pooled buffers holding old values: poisoned
    /// with NaN here, any value read before it is written would show. The
    /// values and gradients equal those from fresh buffers, bit for bit.
    #[test]
    fn fused_layer_overwrites_every_pooled_buffer_it_takes() {
        for products in [Products::Fp32, Products::Bf16] {
            let (mut layer, params) = layer(&config("gelu", 0.1), 3);
            layer.products = products;
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let x = Var::from_tensor(&random(&[3, 7, 32], &mut rng, 1.0)).unwrap();
            let probe = random(&[3, 7, 32], &mut rng, 1.0);
            let mask = mask_bias(&[7, 4, 1], 7);
            let run = || {
                let y = layer.forward(x.as_tensor(), &mask, &mut Mode::Eval).unwrap();
                let grads = (&y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
                let mut values = vec![y];
                values.extend(
                    std::iter::once(x.as_tensor())
                        .chain(params.iter().map(|p| p.as_tensor()))
                        .map(|t| grads.get(t).unwrap().clone()),
                );
                values
            };
            let fresh = run();
            let _scope = ScratchScope::enter();
            for _ in 0..40 {
                crate::scratch::give_back(vec![f32::NAN; 4096]);
            }
            for step in 0..2 {
                for (i, (a, b)) in run().iter().zip(&fresh).enumerate() {
                    assert_eq!(max_diff(a, b), 0.0, "{products:?}, step {step}: value {i} differs");
                }
            }
        }
    }

    /// Mixed precision changes the values and gradients by bf16 rounding
    /// only: close to fp32's, yet not equal (the bf16 products ran).
    #[test]
    fn bf16_products_stay_close_to_fp32_in_values_and_gradients() {
        let c = config("gelu", 0.0);
        let (mut layer, params) = layer(&c, 6);
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let x = Var::from_tensor(&random(&[2, 9, 32], &mut rng, 1.0)).unwrap();
        let probe = random(&[2, 9, 32], &mut rng, 1.0);
        let mask = mask_bias(&[9, 5], 9);
        let mut run = |products| {
            layer.products = products;
            let y = layer.forward(x.as_tensor(), &mask, &mut Mode::Eval).unwrap();
            let grads = (&y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let g: Vec<Tensor> = std::iter::once(x.as_tensor())
                .chain(params.iter().map(|p| p.as_tensor()))
                .map(|t| grads.get(t).unwrap().clone())
                .collect();
            (y, g)
        };
        let (y32, g32) = run(Products::Fp32);
        let (y16, g16) = run(Products::Bf16);
        let err = max_diff(&y16, &y32) / (1.0 + max_abs(&y32));
        assert!(err > 1e-6 && err < 3e-2, "values differ by {err}");
        for (i, (a, b)) in g16.iter().zip(&g32).enumerate() {
            let err = max_diff(a, b) / (1.0 + max_abs(b));
            assert!(err < 3e-2, "gradient {i} differs by {err}");
        }
        let weight_err = max_diff(&g16[1], &g32[1]);
        assert!(weight_err > 0.0, "the query weight's gradient took bf16 products");
    }

    #[test]
    fn fused_layer_without_gradients_reads_weights_in_place() {
        let c = config("gelu", 0.1);
        let (layer, _) = layer(&c, 4);
        let frozen = Layer::new(
            VarBuilder::from_tensors(
                WEIGHT_NAMES.iter().zip(layer.parameters()).map(|(n, t)| (n.to_string(), t.detach())).collect(),
                DType::F32,
                &Device::Cpu,
            ),
            &c,
        )
        .unwrap();
        // 10 rows; then 1,152, which inference's feed-forward block takes in
        // two chunks (512 and 640 rows), inside a scratch scope as the
        // encoder runs it.
        let _scratch = ScratchScope::enter();
        for (lengths, len) in [(vec![5, 3], 5), (vec![128, 100, 7, 128, 1, 64, 128, 128, 90], 128)] {
            let x = random(&[lengths.len(), len, 32], &mut ChaCha8Rng::seed_from_u64(1), 1.0);
            let mask = mask_bias(&lengths, len);
            let a = layer.forward(&x, &mask, &mut Mode::Eval).unwrap();
            let b = frozen.forward(&x, &mask, &mut Mode::Eval).unwrap();
            assert!(!b.track_op());
            // Equal up to rounding: inference's attention takes its own
            // kernel on AVX2 (`fused_layer::attention`).
            assert!(max_diff(&a, &b) <= 1e-5 * (1.0 + max_abs(&a)), "{} rows", x.dims()[0] * len);
            let again = frozen.forward(&x, &mask, &mut Mode::Eval).unwrap();
            assert_eq!(max_diff(&again, &b), 0.0, "reused buffers change nothing");
        }
    }

    /// A quantized folder's `kept_fp32` names its matrices by their Hugging
    /// Face names; those matrices run in fp32 in a layer packed to int8 (a
    /// layer whose six are all kept runs as in fp32, bit for bit).
    #[test]
    fn matrices_kept_in_fp32_stay_fp32() {
        let c = config("gelu", 0.0);
        let (layer, _) = layer(&c, 6);
        let tensors: HashMap<String, Tensor> = WEIGHT_NAMES
            .iter()
            .zip(layer.parameters())
            .map(|(n, t)| (format!("encoder.layer.0.{n}"), t.detach()))
            .collect();
        let frozen = |kept: &[&str]| {
            let mut c = c.clone();
            c.quantization = Some(crate::quant::QuantizationConfig {
                quant_method: "ferrotune".into(),
                precision: Precision::Int8,
                weights: Vec::new(),
                kept_fp32: kept.iter().map(|m| format!("bert.encoder.layer.0.{m}.weight")).collect(),
            });
            let vb = VarBuilder::from_tensors(tensors.clone(), DType::F32, &Device::Cpu);
            let mut layer = Layer::new(vb.pp("encoder").pp("layer").pp(0), &c).unwrap();
            layer.set_precision(Precision::Int8).unwrap();
            layer
        };
        let all = frozen(&MATRICES);
        assert!(all.packed.is_none());
        let some = frozen(&["attention.self.key", "output.dense"]);
        let precisions: Vec<Precision> = some.packed.as_ref().unwrap().iter().map(PackedLinear::precision).collect();
        use Precision::{Fp32, Int8};
        assert_eq!(precisions, [Int8, Fp32, Int8, Int8, Int8, Fp32]);
        let _scratch = ScratchScope::enter();
        let x = random(&[2, 6, 32], &mut ChaCha8Rng::seed_from_u64(2), 1.0);
        let mask = mask_bias(&[6, 4], 6);
        let want = frozen(&[]).forward(&x, &mask, &mut Mode::Eval).unwrap();
        let fp32 = layer.forward(&x, &mask, &mut Mode::Eval).unwrap();
        assert!(max_diff(&all.forward(&x, &mask, &mut Mode::Eval).unwrap(), &fp32) <= 1e-5 * (1.0 + max_abs(&fp32)));
        let mixed = some.forward(&x, &mask, &mut Mode::Eval).unwrap();
        assert!(max_diff(&mixed, &fp32) < 0.1 * (1.0 + max_abs(&fp32)));
        assert!(max_diff(&mixed, &want) > 0.0, "the kept matrices change the output");
    }

    /// A layer with frozen random base weights and trainable LoRA
    /// adapters (non-zero `B`, so that they change the output) on
    /// `targets`; returns the layer and the adapters' variables.
    fn adapted_layer(targets: &[LoraTarget], dropout: f32, seed: u64) -> (Layer, Layer, Vec<Var>) {
        adapted_layer_with(targets, 4, dropout, seed, seed + 1)
    }

    /// [`adapted_layer`] with adapters of rank `rank` drawn from
    /// `adapter_seed` on the base of `base_seed`.
    fn adapted_layer_with(
        targets: &[LoraTarget],
        rank: usize,
        dropout: f32,
        base_seed: u64,
        adapter_seed: u64,
    ) -> (Layer, Layer, Vec<Var>) {
        let mut c = config("gelu", 0.0);
        c.lora = Some(LoraSettings {
            rank,
            alpha: 8.0,
            dropout,
            targets: targets.to_vec(),
            rslora: false,
            init: Default::default(),
        });
        let (base, _) = layer(&c, base_seed);
        let mut tensors: HashMap<String, Tensor> =
            WEIGHT_NAMES.iter().zip(base.parameters()).map(|(n, t)| (n.to_string(), t.detach())).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(adapter_seed);
        let shape = base.shape;
        let mut vars = Vec::new();
        for &t in targets {
            let (out, inp) = crate::fused_layer::matrix_dims(&shape, t.slot());
            for (name, dims) in [("lora_A", [rank, inp]), ("lora_B", [out, rank])] {
                let var = Var::from_tensor(&random(&dims, &mut rng, 0.3)).unwrap();
                tensors.insert(format!("{}.{name}.weight", t.module_path()), var.as_tensor().clone());
                vars.push(var);
            }
        }
        let detached = tensors.iter().map(|(n, t)| (n.clone(), t.detach())).collect();
        let frozen = Layer::new(VarBuilder::from_tensors(detached, DType::F32, &Device::Cpu), &c).unwrap();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        (Layer::new(vb, &c).unwrap(), frozen, vars)
    }

    /// A batch mixing two adapters (of other ranks and targets) and the
    /// bare base gives each sequence what its own layer gives it alone,
    /// also where the feed-forward block runs in chunks that cut a group.
    #[test]
    fn grouped_adapters_give_each_sequence_its_own_layers_output() {
        let (_, a, _) = adapted_layer_with(&[LoraTarget::Query, LoraTarget::Value], 4, 0.0, 5, 100);
        let (_, bare, _) = adapted_layer_with(&[], 4, 0.0, 5, 0);
        let (_, b, _) = adapted_layer_with(&LoraTarget::ALL, 2, 0.0, 5, 200);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // 600 rows: more than one feed-forward chunk (FFN_ROWS).
        let (lengths, len) = ([100, 60, 90, 3, 100, 50], 100);
        let x = random(&[lengths.len(), len, 32], &mut rng, 1.0);
        let mask = mask_bias(&lengths, len);
        let groups: [(Range<usize>, &Layer); 3] = [(0..2, &a), (2..3, &bare), (3..6, &b)];
        let mixed = a.forward_grouped(&x, &mask, &groups).unwrap();
        for (rows, layer) in &groups {
            let (x, m) =
                (x.narrow(0, rows.start, rows.len()).unwrap(), mask.narrow(0, rows.start, rows.len()).unwrap());
            let alone = layer.forward(&x, &m, &mut Mode::Eval).unwrap();
            let diff = max_diff(&mixed.narrow(0, rows.start, rows.len()).unwrap(), &alone);
            assert!(diff < 1e-5, "{rows:?}: {diff}");
        }
        let changed = max_diff(
            &mixed.narrow(0, 0, 2).unwrap(),
            &bare.forward(&x.narrow(0, 0, 2).unwrap(), &mask.narrow(0, 0, 2).unwrap(), &mut Mode::Eval).unwrap(),
        );
        assert!(changed > 1e-3, "adapter a changed nothing: {changed}");
        // Groups out of order are refused.
        assert!(a.forward_grouped(&x, &mask, &[(3..6, &b), (0..3, &a)]).is_err());
    }

    /// With adapters training, the fused layer gives the composed ops'
    /// values and the gradients of the input and of every adapter matrix;
    /// the base weights get none.
    #[test]
    fn lora_adapters_match_composed_ops_in_values_and_gradients() {
        let all = LoraTarget::ALL;
        for targets in [&[LoraTarget::Query, LoraTarget::Value][..], &all[..], &[LoraTarget::Output][..]] {
            let (layer, frozen_layer, adapters) = adapted_layer(targets, 0.0, 21);
            let (fused, x, g_fused) = check_against_composed(&layer, &adapters, &format!("{targets:?}"));
            let mask = mask_bias(&[7, 4, 1], 7);
            assert!(layer.parameters().iter().all(|w| g_fused.get(w).is_none()), "the base is frozen");
            // Without gradients (inference, read in place) the same values.
            let frozen = frozen_layer.forward(&x.as_tensor().detach(), &mask, &mut Mode::Eval).unwrap();
            assert!(!frozen.track_op());
            assert!(max_diff(&frozen, &fused) < 1e-6);
        }
    }

    /// The adapters' dropout: the gradient along a random direction matches
    /// the finite difference of the loss (same seed, same masks).
    #[test]
    fn lora_dropout_gradient_matches_finite_difference() {
        let (layer, _, adapters) = adapted_layer(&[LoraTarget::Query, LoraTarget::Intermediate], 0.3, 8);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x = random(&[2, 6, 32], &mut rng, 1.0);
        let probe = random(&[2, 6, 32], &mut rng, 1.0);
        let mask = mask_bias(&[6, 4], 6);
        let a = &adapters[0];
        let direction = random(a.dims(), &mut rng, 1.0);
        let loss = |layer: &Layer| {
            let mut dropout_rng = ChaCha8Rng::seed_from_u64(11);
            let y = layer.forward(&x, &mask, &mut Mode::Train(&mut dropout_rng)).unwrap();
            (y * &probe).unwrap().sum_all().unwrap()
        };
        let grad = loss(&layer).backward().unwrap();
        let analytic: f32 =
            (grad.get(a.as_tensor()).unwrap() * &direction).unwrap().sum_all().unwrap().to_scalar().unwrap();
        let original = a.as_tensor().copy().unwrap();
        let eps = 1e-2;
        a.set(&(&original + (&direction * eps).unwrap()).unwrap()).unwrap();
        let plus = loss(&layer).to_scalar::<f32>().unwrap();
        a.set(&(&original - (&direction * eps).unwrap()).unwrap()).unwrap();
        let minus = loss(&layer).to_scalar::<f32>().unwrap();
        a.set(&original).unwrap();
        let numeric = (plus - minus) / (2.0 * eps as f32);
        assert!((analytic - numeric).abs() < 2e-2 * (1.0 + analytic.abs()), "analytic {analytic} vs numeric {numeric}");
        let eval = layer.forward(&x, &mask, &mut Mode::Eval).unwrap();
        let train = layer.forward(&x, &mask, &mut Mode::Train(&mut ChaCha8Rng::seed_from_u64(11))).unwrap();
        assert!(max_diff(&eval, &train) > 1e-4, "the adapters' dropout changed nothing");
    }

    const WEIGHT_NAMES: [&str; 16] = [
        "attention.self.query.weight",
        "attention.self.query.bias",
        "attention.self.key.weight",
        "attention.self.key.bias",
        "attention.self.value.weight",
        "attention.self.value.bias",
        "attention.output.dense.weight",
        "attention.output.dense.bias",
        "attention.output.LayerNorm.weight",
        "attention.output.LayerNorm.bias",
        "intermediate.dense.weight",
        "intermediate.dense.bias",
        "output.dense.weight",
        "output.dense.bias",
        "output.LayerNorm.weight",
        "output.LayerNorm.bias",
    ];

    /// With dropout, the gradient along a random direction matches the
    /// finite difference of the loss (the masks come from the same seed).
    #[test]
    fn fused_layer_dropout_gradient_matches_finite_difference() {
        let c = config("gelu", 0.3);
        let (layer, _) = layer(&c, 6);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let x = Var::from_tensor(&random(&[2, 6, 32], &mut rng, 1.0)).unwrap();
        let probe = random(&[2, 6, 32], &mut rng, 1.0);
        let direction = random(&[2, 6, 32], &mut rng, 1.0);
        let mask = mask_bias(&[6, 4], 6);
        let loss = |x: &Tensor| {
            let mut dropout_rng = ChaCha8Rng::seed_from_u64(11);
            let y = layer.forward(x, &mask, &mut Mode::Train(&mut dropout_rng)).unwrap();
            (y * &probe).unwrap().sum_all().unwrap()
        };
        let l = loss(x.as_tensor());
        let eval = layer.forward(x.as_tensor(), &mask, &mut Mode::Eval).unwrap();
        let train = layer.forward(x.as_tensor(), &mask, &mut Mode::Train(&mut ChaCha8Rng::seed_from_u64(11))).unwrap();
        assert!(max_diff(&eval, &train) > 1e-3, "dropout changed nothing");
        let grad = l.backward().unwrap();
        let analytic: f32 =
            (grad.get(x.as_tensor()).unwrap() * &direction).unwrap().sum_all().unwrap().to_scalar().unwrap();
        let eps = 1e-2;
        let plus = loss(&(x.as_tensor() + (&direction * eps).unwrap()).unwrap()).to_scalar::<f32>().unwrap();
        let minus = loss(&(x.as_tensor() - (&direction * eps).unwrap()).unwrap()).to_scalar::<f32>().unwrap();
        let numeric = (plus - minus) / (2.0 * eps as f32);
        assert!((analytic - numeric).abs() < 2e-2 * (1.0 + analytic.abs()), "analytic {analytic} vs numeric {numeric}");
    }
}
