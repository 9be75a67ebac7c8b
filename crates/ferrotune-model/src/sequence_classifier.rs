//! BERT with a sequence-level head, in the layout of Hugging Face
//! `BertForSequenceClassification`: one class (softmax), several classes
//! (sigmoid) or one number per text or text pair.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::{DType, Device, Module, Result as CandleResult, Tensor, D};
use ferrotune_data::{SequenceKind, Target, Task};

use crate::bert::{BertEncoder, Linear};
use crate::dropout::{Dropout, Mode};
use crate::head::{normal_init, save_model};
use crate::lora::{AdapterFolder, BaseWeights, LoraSettings, PeftTaskType};
use crate::{Batch, BertConfig, ModelError, ParamStore, Pooling};

/// A BERT encoder, a pooling of its token states and a linear head.
pub struct SequenceClassifier {
    /// The encoder configuration, as read from `config.json`.
    pub config: BertConfig,
    /// Classify, multilabel or regression.
    pub kind: SequenceKind,
    /// Class names in id order (regression: one name).
    pub labels: Vec<String>,
    /// How token states become one vector.
    pub pooling: Pooling,
    /// The folder the model was loaded from.
    pub source_dir: PathBuf,
    encoder: BertEncoder,
    pooler: Option<Linear>,
    dropout: Dropout,
    classifier: Linear,
    params: ParamStore,
}

/// What to do about the head when loading.
pub enum SequenceHead<'a> {
    /// Use the head saved in the checkpoint, with its task and labels.
    Saved,
    /// A head for this task, these labels and this pooling: the saved one if
    /// all three match, otherwise a new one initialised from `seed`.
    For {
        /// What the head predicts.
        kind: SequenceKind,
        /// Class names (regression: one).
        labels: &'a [String],
        /// The pooling.
        pooling: Pooling,
        /// Seed of a new head.
        seed: u64,
    },
}

impl SequenceClassifier {
    /// Loads `config.json` and `model.safetensors` from a model folder onto
    /// `device` (the CPU, or a GPU with the `cuda` feature).
    pub fn load(dir: &Path, head: SequenceHead, device: &Device) -> Result<Self, ModelError> {
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
        let head_config = BertConfig::load(&adapter.dir.join("config.json"))?;
        config.task = head_config.task;
        config.pooling = head_config.pooling;
        Self::with_head(config, params, SequenceHead::Saved, base)
    }

    fn with_head(
        config: BertConfig,
        mut params: ParamStore,
        head: SequenceHead,
        dir: &Path,
    ) -> Result<Self, ModelError> {
        let weights = dir.join("model.safetensors");
        let has = |params: &ParamStore, name: &str| {
            params.get(&format!("{name}.weight")).is_some() && params.get(&format!("{name}.bias")).is_some()
        };
        let saved_kind = match config.task {
            Some(Task::Sequence(kind)) if has(&params, "classifier") => Some(kind),
            _ => None,
        };
        let (kind, labels, pooling) = match head {
            SequenceHead::Saved => match (saved_kind, &config.labels) {
                (Some(kind), Some(labels)) => (kind, labels.clone(), config.pooling),
                _ => {
                    return Err(ModelError::Weights {
                        path: weights,
                        message: "no sequence-classification head (BertForSequenceClassification, classifier.*, id2label) in this model; fine-tune it first with `ferrotune train --task classify|multilabel|regression`".into(),
                    })
                }
            },
            SequenceHead::For { kind, labels, pooling, seed } => {
                let same = saved_kind == Some(kind) && config.labels.as_deref() == Some(labels) && config.pooling == pooling;
                let hidden = config.hidden_size;
                if !same {
                    params.insert("classifier.weight", &normal_init((labels.len(), hidden), seed, 1)?)?;
                    params.insert("classifier.bias", &Tensor::zeros(labels.len(), DType::F32, &Device::Cpu)?)?;
                }
                if pooling == Pooling::Cls && !has(&params, "pooler.dense") {
                    params.insert("pooler.dense.weight", &normal_init((hidden, hidden), seed, 2)?)?;
                    params.insert("pooler.dense.bias", &Tensor::zeros(hidden, DType::F32, &Device::Cpu)?)?;
                }
                (kind, labels.to_vec(), pooling)
            }
        };
        Self::build(config, kind, labels, pooling, params, dir.to_path_buf(), false)
    }

    /// A view of the model for inference that shares its weights but
    /// records no autograd graph (see `TokenClassifier::frozen`).
    pub fn frozen(&self) -> Result<Self, ModelError> {
        let (config, labels, params, dir) =
            (self.config.clone(), self.labels.clone(), self.params.clone(), self.source_dir.clone());
        Self::build(config, self.kind, labels, self.pooling, params, dir, true)
    }

    /// The modules trained beside LoRA adapters and saved with them (as
    /// PEFT's `modules_to_save`): the classifier, and the pooler when the
    /// head uses it.
    fn saved_modules(&self) -> &'static [&'static str] {
        match self.pooling {
            Pooling::Cls => &["classifier", "pooler"],
            Pooling::Mean => &["classifier"],
        }
    }

    /// Trains new LoRA adapters from now on (see
    /// [`crate::lora::add_new_adapters`]): the base frozen, the head (and
    /// pooler) trained.
    pub fn with_new_lora(self, settings: &LoraSettings, seed: u64) -> Result<Self, ModelError> {
        let trained = self.saved_modules();
        let Self { mut config, kind, labels, pooling, source_dir, mut params, .. } = self;
        crate::lora::add_new_adapters(&mut config, &mut params, settings, seed, trained)?;
        Self::build(config, kind, labels, pooling, params, source_dir, false)
    }

    /// The model with its adapters folded into the base weights (see
    /// [`crate::lora::merge_into`]).
    pub fn merged(self) -> Result<Self, ModelError> {
        let Self { mut config, kind, labels, pooling, source_dir, mut params, .. } = self;
        crate::lora::merge_into(&mut config, &mut params)?;
        Self::build(config, kind, labels, pooling, params, source_dir, true)
    }

    fn build(
        config: BertConfig,
        kind: SequenceKind,
        labels: Vec<String>,
        pooling: Pooling,
        mut params: ParamStore,
        source_dir: PathBuf,
        frozen: bool,
    ) -> Result<Self, ModelError> {
        let used = Mutex::new(BTreeSet::new());
        let built = {
            let vb = if frozen { params.frozen_var_builder(&used) } else { params.var_builder(&used) };
            let h = config.hidden_size;
            BertEncoder::new(vb.clone(), &config).and_then(|encoder| {
                let pooler = match pooling {
                    Pooling::Cls => Some(Linear::new(vb.pp("pooler").pp("dense"), h, h)?),
                    Pooling::Mean => None,
                };
                Ok((encoder, pooler, Linear::new(vb.pp("classifier"), h, labels.len())?))
            })
        };
        let weights = source_dir.join("model.safetensors");
        let (encoder, pooler, classifier) =
            built.map_err(|e| ModelError::Weights { path: weights, message: e.to_string() })?;
        params.retain(&used.into_inner().expect("lock"));
        Ok(Self {
            dropout: Dropout::new(config.classifier_dropout),
            config,
            kind,
            labels,
            pooling,
            source_dir,
            encoder,
            pooler,
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

    /// Head outputs `[batch, labels]` (regression: `[batch, 1]`).
    pub fn forward(&self, batch: &Batch, mode: &mut Mode) -> CandleResult<Tensor> {
        let hidden = self.encoder.forward(&batch.input_ids, &batch.token_type_ids, &batch.attention_mask, mode)?;
        self.head(&hidden, &batch.attention_mask, mode)
    }

    /// Logits of a batch whose sequences run with different LoRA adapters
    /// (see [`crate::BertEncoder::forward_grouped`]): each range of
    /// sequences with the model (this one's base, its own adapters and
    /// head) it runs with; one `[sequences, labels]` tensor per group.
    pub fn forward_grouped(&self, batch: &Batch, groups: &[(Range<usize>, &Self)]) -> CandleResult<Vec<Tensor>> {
        let encoders: Vec<_> = groups.iter().map(|(rows, m)| (rows.clone(), &m.encoder)).collect();
        let hidden =
            self.encoder.forward_grouped(&batch.input_ids, &batch.token_type_ids, &batch.attention_mask, &encoders)?;
        groups
            .iter()
            .map(|(rows, m)| {
                let mask = batch.attention_mask.narrow(0, rows.start, rows.len())?;
                m.head(&hidden.narrow(0, rows.start, rows.len())?, &mask, &mut Mode::Eval)
            })
            .collect()
    }

    /// The head over the encoder's last hidden state: pooled (the pooler on
    /// `[CLS]`, or the mean), dropout, classifier.
    fn head(&self, hidden: &Tensor, attention_mask: &Tensor, mode: &mut Mode) -> CandleResult<Tensor> {
        let pooled = match &self.pooler {
            Some(pooler) => pooler.forward(&hidden.narrow(1, 0, 1)?.squeeze(1)?)?.tanh()?,
            None => crate::sentence::PoolingMode::Mean.pool(hidden, attention_mask)?,
        };
        self.classifier.forward(&self.dropout.forward(&pooled, mode)?)
    }

    /// The targets of a batch as the loss wants them: class ids (u32
    /// `[batch]`), multi-hot rows (f32 `[batch, labels]`) or values (f32
    /// `[batch]`).
    pub fn target_tensor(&self, targets: &[Target]) -> CandleResult<Tensor> {
        let n = targets.len();
        let dev = &Device::Cpu;
        let mismatch = || candle_core::Error::Msg(format!("targets do not fit a {} model", self.kind.name()));
        match self.kind {
            SequenceKind::Classify => {
                let ids = targets.iter().map(|t| match t {
                    Target::Class(c) => Ok(*c as u32),
                    _ => Err(mismatch()),
                });
                Tensor::from_vec(ids.collect::<CandleResult<Vec<_>>>()?, n, dev)
            }
            SequenceKind::Multilabel => {
                let k = self.labels.len();
                let mut hot = vec![0f32; n * k];
                for (row, t) in targets.iter().enumerate() {
                    let Target::Classes(classes) = t else { return Err(mismatch()) };
                    for &c in classes {
                        hot[row * k + c] = 1.0;
                    }
                }
                Tensor::from_vec(hot, (n, k), dev)
            }
            SequenceKind::Regression => {
                let values = targets.iter().map(|t| match t {
                    Target::Value(v) => Ok(*v),
                    _ => Err(mismatch()),
                });
                Tensor::from_vec(values.collect::<CandleResult<Vec<_>>>()?, n, dev)
            }
        }
    }

    /// The task's loss, as `BertForSequenceClassification` computes it:
    /// cross-entropy, binary cross-entropy with logits, or mean squared error.
    pub fn loss(&self, logits: &Tensor, targets: &Tensor) -> CandleResult<Tensor> {
        let targets = &targets.to_device(logits.device())?;
        match self.kind {
            SequenceKind::Classify => candle_nn::loss::cross_entropy(logits, targets),
            SequenceKind::Multilabel => {
                // max(x, 0) - x y + log(1 + exp(-|x|)), stable for any x.
                let stable = (logits.relu()? - logits.mul(targets)?)?;
                let soft = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
                (stable + soft)?.mean_all()
            }
            SequenceKind::Regression => (logits.squeeze(D::Minus1)? - targets)?.sqr()?.mean_all(),
        }
    }

    /// Per-label scores of each row: softmax probabilities (classify),
    /// sigmoid probabilities (multilabel) or the predicted value (regression).
    pub fn scores(&self, logits: &Tensor) -> CandleResult<Vec<Vec<f32>>> {
        let scores = match self.kind {
            SequenceKind::Classify => candle_nn::ops::softmax_last_dim(logits)?,
            SequenceKind::Multilabel => candle_nn::ops::sigmoid(logits)?,
            SequenceKind::Regression => logits.clone(),
        };
        scores.to_vec2()
    }

    /// Writes a Hugging Face `BertForSequenceClassification` folder
    /// (`config.json` with `problem_type` and `id2label`, `model.safetensors`),
    /// each file atomically. Tokenizer files are the caller's.
    ///
    /// With LoRA adapters it writes the adapter folder instead, in PEFT's
    /// layout (see [`AdapterFolder::write`]), the head saved with it.
    pub fn save_pretrained(&self, dir: &Path) -> Result<(), ModelError> {
        let head = self.config.to_head_json(Task::Sequence(self.kind), &self.labels, self.pooling);
        match &self.config.lora {
            Some(lora) => {
                let saved = self.saved_modules();
                AdapterFolder::write(dir, lora, PeftTaskType::SeqCls, saved, &self.params, &head, &self.source_dir)
            }
            None => save_model(dir, &head, &self.params),
        }
    }
}
