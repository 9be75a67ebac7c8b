//! BERT with a token-classification head, in the layout of Hugging Face
//! `BertForTokenClassification`: load from and save to a model folder.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::{DType, Device, Module, Result as CandleResult, Tensor, D};
use ferrotune_data::Task;

use crate::bert::{BertEncoder, Linear};
use crate::dropout::{Dropout, Mode};
use crate::head::{normal_init, save_model};
use crate::lora::{AdapterFolder, BaseWeights, LoraSettings, PeftTaskType};
use crate::{Batch, BertConfig, ModelError, ParamStore, Pooling};

/// A BERT encoder with a linear tag classifier over its last hidden state.
pub struct TokenClassifier {
    /// The encoder configuration, as read from `config.json`.
    pub config: BertConfig,
    /// Tag names in id order.
    pub labels: Vec<String>,
    /// The folder the model was loaded from.
    pub source_dir: PathBuf,
    encoder: BertEncoder,
    dropout: Dropout,
    classifier: Linear,
    params: ParamStore,
}

/// What to do about the classification head when loading.
pub enum TokenHead<'a> {
    /// Use the head saved in the checkpoint, with its labels (`id2label`).
    Saved,
    /// A head for these labels: the saved one if its labels are the same,
    /// otherwise a new one initialised from `seed` (normal, std 0.02).
    For {
        /// Tag names in id order.
        labels: &'a [String],
        /// Seed of a new head.
        seed: u64,
    },
}

impl TokenClassifier {
    /// Loads `config.json` and `model.safetensors` from a model folder onto
    /// `device` (the CPU, or a GPU with the `cuda` feature).
    pub fn load(dir: &Path, head: TokenHead, device: &Device) -> Result<Self, ModelError> {
        let BaseWeights { dir, config, params } = BaseWeights::load(dir, device)?;
        Self::with_head(config, params, head, &dir)
    }

    /// The base `base` with `adapter` on it: the adapter's matrices and its
    /// saved head (see [`AdapterFolder::apply`]; the task and labels come
    /// from the adapter's `config.json`). The model shares the base's
    /// tensors with every other model built on a clone of it.
    pub fn on_base(base: BaseWeights, adapter: &AdapterFolder) -> Result<Self, ModelError> {
        let BaseWeights { dir, mut config, mut params } = base;
        let base = &dir;
        adapter.apply(base, &mut config, &mut params)?;
        if !adapter.has_tensor("classifier.weight") || adapter.labels.is_none() {
            return Err(ModelError::Weights {
                path: adapter.dir.join(crate::lora::ADAPTER_WEIGHTS),
                message: "no token-classification head (base_model.model.classifier.* and a config.json with id2label) in this adapter".into(),
            });
        }
        Self::with_head(config, params, TokenHead::Saved, base)
    }

    fn with_head(config: BertConfig, mut params: ParamStore, head: TokenHead, dir: &Path) -> Result<Self, ModelError> {
        let weights = dir.join("model.safetensors");
        let saved_head = params.get("classifier.weight").is_some() && params.get("classifier.bias").is_some();
        let labels = match head {
            TokenHead::Saved => match (&config.labels, saved_head) {
                (Some(labels), true) => labels.clone(),
                _ => {
                    return Err(ModelError::Weights {
                        path: weights,
                        message: "no token-classification head (classifier.* and id2label) in this model; fine-tune it first with `ferrotune train`".into(),
                    })
                }
            },
            TokenHead::For { labels, seed } => {
                if !(saved_head && config.labels.as_deref() == Some(labels)) {
                    let weight = normal_init((labels.len(), config.hidden_size), seed, 0)?;
                    params.insert("classifier.weight", &weight)?;
                    params.insert("classifier.bias", &Tensor::zeros(labels.len(), DType::F32, &Device::Cpu)?)?;
                }
                labels.to_vec()
            }
        };
        Self::build(config, labels, params, dir.to_path_buf(), weights, false)
    }

    /// A view of the model for inference: it shares the weights (and sees
    /// later training updates) but its layers record no autograd graph, so
    /// a forward pass frees each activation as soon as the next layer has
    /// used it (peak memory of one layer, not of all of them).
    pub fn frozen(&self) -> Result<Self, ModelError> {
        let weights = self.source_dir.join("model.safetensors");
        Self::build(
            self.config.clone(),
            self.labels.clone(),
            self.params.clone(),
            self.source_dir.clone(),
            weights,
            true,
        )
    }

    /// Trains new LoRA adapters from now on (see
    /// [`crate::lora::add_new_adapters`]): the base frozen, the head trained.
    pub fn with_new_lora(self, settings: &LoraSettings, seed: u64) -> Result<Self, ModelError> {
        let Self { mut config, labels, source_dir, mut params, .. } = self;
        crate::lora::add_new_adapters(&mut config, &mut params, settings, seed, &["classifier"])?;
        let weights = source_dir.join("model.safetensors");
        Self::build(config, labels, params, source_dir, weights, false)
    }

    /// The model with its adapters folded into the base weights (see
    /// [`crate::lora::merge_into`]): a plain model with the same outputs.
    pub fn merged(self) -> Result<Self, ModelError> {
        let Self { mut config, labels, source_dir, mut params, .. } = self;
        crate::lora::merge_into(&mut config, &mut params)?;
        let weights = source_dir.join("model.safetensors");
        Self::build(config, labels, params, source_dir, weights, true)
    }

    fn build(
        config: BertConfig,
        labels: Vec<String>,
        mut params: ParamStore,
        source_dir: PathBuf,
        weights: PathBuf,
        frozen: bool,
    ) -> Result<Self, ModelError> {
        let used = Mutex::new(BTreeSet::new());
        let built = {
            let vb = if frozen { params.frozen_var_builder(&used) } else { params.var_builder(&used) };
            BertEncoder::new(vb.clone(), &config).and_then(|encoder| {
                let classifier = Linear::new(vb.pp("classifier"), config.hidden_size, labels.len())?;
                Ok((encoder, classifier))
            })
        };
        let (encoder, classifier) = built.map_err(|e| ModelError::Weights { path: weights, message: e.to_string() })?;
        params.retain(&used.into_inner().expect("lock"));
        Ok(Self {
            dropout: Dropout::new(config.classifier_dropout),
            config,
            labels,
            source_dir,
            encoder,
            classifier,
            params,
        })
    }

    /// Runs the encoder's weight matrices in `precision` (for inference on
    /// the CPU; see [`BertEncoder::set_precision`]).
    pub fn with_precision(mut self, precision: crate::quant::Precision) -> Result<Self, ModelError> {
        crate::quant::set_precision(&mut self.encoder, &mut self.params, precision)?;
        Ok(self)
    }

    /// The encoder's packed weight matrices (see
    /// [`BertEncoder::packed_weights`]).
    pub fn packed_weights(&self) -> crate::bert::PackedWeights {
        self.encoder.packed_weights()
    }

    /// Runs on matrices another model on the same base packed (see
    /// [`BertEncoder::share_packed`]) instead of [`Self::with_precision`].
    pub fn with_packed_weights(mut self, packed: &crate::bert::PackedWeights) -> Result<Self, ModelError> {
        crate::quant::share_packed(&mut self.encoder, &mut self.params, packed)?;
        Ok(self)
    }

    /// Trains with `precision`'s products from now on (fp32 master weights;
    /// see [`BertEncoder::set_training_precision`]).
    pub fn with_training_precision(mut self, precision: crate::quant::Precision) -> Result<Self, ModelError> {
        self.encoder.set_training_precision(precision)?;
        Ok(self)
    }

    /// The trainable parameters.
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// Last hidden state of the encoder, `[batch, len, hidden]`.
    pub fn hidden_states(&self, batch: &Batch, mode: &mut Mode) -> CandleResult<Tensor> {
        self.encoder.forward(&batch.input_ids, &batch.token_type_ids, &batch.attention_mask, mode)
    }

    /// Tag logits `[batch, len, labels]`.
    pub fn forward(&self, batch: &Batch, mode: &mut Mode) -> CandleResult<Tensor> {
        let hidden = self.hidden_states(batch, mode)?;
        self.classifier.forward(&self.dropout.forward(&hidden, mode)?)
    }

    /// Tag logits of a batch whose sequences run with different LoRA
    /// adapters (see [`BertEncoder::forward_grouped`]): each range of
    /// sequences with the model (this one's base, its own adapters and
    /// head) it runs with; one `[sequences, len, labels]` tensor per group.
    pub fn forward_grouped(&self, batch: &Batch, groups: &[(Range<usize>, &Self)]) -> CandleResult<Vec<Tensor>> {
        let encoders: Vec<_> = groups.iter().map(|(rows, m)| (rows.clone(), &m.encoder)).collect();
        let hidden =
            self.encoder.forward_grouped(&batch.input_ids, &batch.token_type_ids, &batch.attention_mask, &encoders)?;
        groups.iter().map(|(rows, m)| m.classifier.forward(&hidden.narrow(0, rows.start, rows.len())?)).collect()
    }

    /// Mean cross-entropy over the labelled positions only: `positions` are
    /// flat indices `row * len + column` (u32) and `targets` their tag ids
    /// (u32). Padding, special tokens and continuation sub-tokens are simply
    /// not among the positions.
    pub fn loss(&self, logits: &Tensor, positions: &Tensor, targets: &Tensor) -> CandleResult<Tensor> {
        let labels = logits.dim(D::Minus1)?;
        let flat = logits.reshape(((), labels))?;
        let picked = flat.index_select(&positions.to_device(logits.device())?, 0)?;
        candle_nn::loss::cross_entropy(&picked, &targets.to_device(logits.device())?)
    }

    /// Writes a Hugging Face `BertForTokenClassification` folder: `config.json`
    /// (with `id2label`/`label2id`) and `model.safetensors` (`bert.*`,
    /// `classifier.*`), each file atomically. Tokenizer files are the
    /// caller's (see `ferrotune_text::copy_tokenizer_files`).
    ///
    /// With LoRA adapters it writes the adapter folder instead, in PEFT's
    /// layout (see [`AdapterFolder::write`]), the head saved with it.
    pub fn save_pretrained(&self, dir: &Path) -> Result<(), ModelError> {
        let head = self.config.to_head_json(Task::Ner, &self.labels, Pooling::Cls);
        match &self.config.lora {
            Some(lora) => AdapterFolder::write(
                dir,
                lora,
                PeftTaskType::TokenCls,
                &["classifier"],
                &self.params,
                &head,
                &self.source_dir,
            ),
            None => save_model(dir, &head, &self.params),
        }
    }
}
