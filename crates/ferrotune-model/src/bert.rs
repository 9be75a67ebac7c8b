//! A BERT encoder built from differentiable ops, in the layout of Hugging
//! Face `BertModel` (the names below are its tensor names).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::{Activation, BertConfig};
use crate::dropout::{Dropout, Mode};
use crate::ops;

/// A dense layer `x W^T + b` over the last dimension.
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// Loads `weight` `[out, in]` and `bias` `[out]`.
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        Ok(Self { weight: vb.get((out_dim, in_dim), "weight")?, bias: vb.get(out_dim, "bias")? })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim;
        let y = x.reshape((rows, in_dim))?.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?;
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("rank >= 1") = self.weight.dim(0)?;
        y.reshape(out_dims)
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

/// Word, position and token-type embeddings, summed and normalised.
struct Embeddings {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    norm: LayerNorm,
    dropout: Dropout,
}

impl Embeddings {
    fn new(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        Ok(Self {
            word: vb.get((c.vocab_size, c.hidden_size), "word_embeddings.weight")?,
            position: vb.get((c.max_position_embeddings, c.hidden_size), "position_embeddings.weight")?,
            token_type: vb.get((c.type_vocab_size, c.hidden_size), "token_type_embeddings.weight")?,
            norm: LayerNorm::new(vb.pp("LayerNorm"), c.hidden_size, c.layer_norm_eps)?,
            dropout: Dropout::new(c.hidden_dropout_prob),
        })
    }

    fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, mode: &mut Mode) -> Result<Tensor> {
        let (batch, len) = input_ids.dims2()?;
        let hidden = self.word.dim(1)?;
        if len > self.position.dim(0)? {
            candle_core::bail!("input of {len} tokens exceeds max_position_embeddings {}", self.position.dim(0)?);
        }
        let words = self.word.index_select(&input_ids.flatten_all()?, 0)?.reshape((batch, len, hidden))?;
        let types = self.token_type.index_select(&token_type_ids.flatten_all()?, 0)?.reshape((batch, len, hidden))?;
        let positions = self.position.narrow(0, 0, len)?;
        let sum = words.add(&types)?.broadcast_add(&positions)?;
        self.dropout.forward(&self.norm.forward(&sum)?, mode)
    }
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
            query: Linear::new(sa.pp("query"), h, h)?,
            key: Linear::new(sa.pp("key"), h, h)?,
            value: Linear::new(sa.pp("value"), h, h)?,
            output: Linear::new(vb.pp("output").pp("dense"), h, h)?,
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
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scores = ops::batched_matmul(&q, &k.t()?)?;
        let probs = ops::masked_softmax(&scores, mask_bias, 1.0 / (head_dim as f64).sqrt())?;
        let probs = self.probs_dropout.forward(&probs, mode)?;
        let context = ops::batched_matmul(&probs, &v)?.transpose(1, 2)?.reshape((batch, len, hidden))?;
        let out = self.hidden_dropout.forward(&self.output.forward(&context)?, mode)?;
        self.norm.forward(&out.add(x)?)
    }
}

/// One transformer layer: attention, then the feed-forward block.
struct Layer {
    attention: Attention,
    intermediate: Linear,
    output: Linear,
    norm: LayerNorm,
    activation: Activation,
    dropout: Dropout,
}

impl Layer {
    fn new(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        Ok(Self {
            attention: Attention::new(vb.pp("attention"), c)?,
            intermediate: Linear::new(vb.pp("intermediate").pp("dense"), c.hidden_size, c.intermediate_size)?,
            output: Linear::new(vb.pp("output").pp("dense"), c.intermediate_size, c.hidden_size)?,
            norm: LayerNorm::new(vb.pp("output").pp("LayerNorm"), c.hidden_size, c.layer_norm_eps)?,
            activation: c.hidden_act,
            dropout: Dropout::new(c.hidden_dropout_prob),
        })
    }

    fn forward(&self, x: &Tensor, mask_bias: &Tensor, mode: &mut Mode) -> Result<Tensor> {
        let attended = self.attention.forward(x, mask_bias, mode)?;
        let inner = self.intermediate.forward(&attended)?;
        let inner = match self.activation {
            Activation::GeluErf => ops::gelu_erf(&inner)?,
            Activation::GeluTanh => inner.gelu()?,
            Activation::Relu => inner.relu()?,
        };
        let out = self.dropout.forward(&self.output.forward(&inner)?, mode)?;
        self.norm.forward(&out.add(&attended)?)
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

    /// Last hidden state `[batch, len, hidden]` of `input_ids` `[batch, len]`
    /// (u32), with `attention_mask` `[batch, len]` (f32, 1 for real tokens).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        attention_mask: &Tensor,
        mode: &mut Mode,
    ) -> Result<Tensor> {
        // Inputs are built on the CPU; the model may live elsewhere.
        let device = self.embeddings.word.device();
        let (input_ids, token_type_ids) = (&input_ids.to_device(device)?, &token_type_ids.to_device(device)?);
        let attention_mask = attention_mask.to_device(device)?;
        // 0 where attended, the most negative f32 where padded (as transformers does).
        let mask_bias = ((attention_mask.to_dtype(DType::F32)? - 1.0)? * (-(f32::MIN as f64)))?;
        let mut hidden = self.embeddings.forward(input_ids, token_type_ids, mode)?;
        for layer in &self.layers {
            hidden = layer.forward(&hidden, &mask_bias, mode)?;
        }
        Ok(hidden)
    }
}

