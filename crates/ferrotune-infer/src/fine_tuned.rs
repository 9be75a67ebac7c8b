//! A fine-tuned model folder of any task, loaded once and run on batches
//! of typed inputs or evaluated on a labelled file. Every task's branch is
//! here; the CLI and the server only name the model.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use candle_core::Device;
use ferrotune_data::{Task, TextInput};
use ferrotune_eval::TaskReport;
use ferrotune_model::lora::{AdapterFolder, BaseWeights};
use ferrotune_model::quant::Precision;
use ferrotune_model::{BertConfig, PackedWeights, SequenceClassifier, SequenceHead, TokenClassifier, TokenHead};
use ferrotune_text::WordTokenizer;
use serde::Serialize;

use crate::{
    score_encoded_grouped, tag_windows_grouped, BatchLimits, ClassifyRecord, EvalSet, InferError, NerRecord,
    PredictionInput, WindowedSentences,
};

/// How a fine-tuned model is run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSettings {
    /// Maximum tokens per model input: longer NER texts are split into
    /// overlapping windows, longer sequence inputs are cut longest-first.
    pub max_len: usize,
    /// Model inputs per forward pass.
    pub batch_size: usize,
    /// Padded tokens per forward pass (inputs × the longest of them): bounds
    /// the activations' memory whatever the input lengths.
    pub max_batch_tokens: usize,
    /// Multilabel models: the probability from which a class applies.
    pub threshold: f32,
    /// Precision of the encoder's linear layers; `None`: the folder's own
    /// (fp32, or what `ferrotune quantize` wrote).
    pub precision: Option<Precision>,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self { max_len: 128, batch_size: 64, max_batch_tokens: 2048, threshold: 0.5, precision: None }
    }
}

impl RunSettings {
    /// The limits of one forward pass.
    pub fn batch_limits(&self) -> BatchLimits {
        BatchLimits { inputs: self.batch_size, tokens: self.max_batch_tokens }
    }

    /// The precision to run the folder of `config_path` in: the one asked
    /// for, else the one it was quantized to, else fp32; asking for another
    /// than a quantized folder's is an error.
    pub fn precision_for(&self, config_path: &Path) -> Result<Precision, InferError> {
        let saved = BertConfig::load(config_path)?.quantization.map(|q| q.precision);
        match (saved, self.precision) {
            (Some(saved), Some(asked)) if saved != asked => {
                Err(InferError::PrecisionMismatch { path: config_path.to_path_buf(), saved, asked })
            }
            (saved, asked) => Ok(asked.or(saved).unwrap_or_default()),
        }
    }

    /// Checks that every setting is in range.
    pub fn validate(&self) -> Result<(), InferError> {
        let invalid = |field, expected| Err(InferError::InvalidSetting { field, expected });
        if !(3..=4096).contains(&self.max_len) {
            return invalid("max_len", "between 3 and 4096");
        }
        if self.batch_size == 0 {
            return invalid("batch_size", "at least 1");
        }
        if self.max_batch_tokens < self.max_len {
            return invalid("max_batch_tokens", "at least max_len");
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return invalid("threshold", "between 0 and 1");
        }
        Ok(())
    }
}

/// The model of a fine-tuned folder: a token head or a sequence head.
pub enum TaskModel {
    /// Tags per word.
    Token(TokenClassifier),
    /// A class, classes or a number per text.
    Sequence(SequenceClassifier),
}

impl TaskModel {
    /// The task the model was trained for.
    pub fn task(&self) -> Task {
        match self {
            TaskModel::Token(_) => Task::Ner,
            TaskModel::Sequence(m) => Task::Sequence(m.kind),
        }
    }

    /// Label names in id order.
    pub fn labels(&self) -> &[String] {
        match self {
            TaskModel::Token(m) => &m.labels,
            TaskModel::Sequence(m) => &m.labels,
        }
    }
}

/// One answer: what `predict` writes as a JSON line and the server returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Record {
    /// Entities, words and tags of a text.
    Ner(NerRecord),
    /// Label and scores of a text or pair.
    Classify(ClassifyRecord),
}

/// The answers to a batch of inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    /// One record per input, in order.
    pub records: Vec<Record>,
    /// Inputs longer than `max_len` tokens (split into windows or cut).
    pub long_inputs: usize,
}

/// A labelled file scored by a model.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The report.
    pub report: TaskReport,
    /// Sentences (NER) or texts scored.
    pub examples: usize,
    /// Of those, how many were longer than `max_len` tokens.
    pub long_inputs: usize,
    /// Seconds spent running the model.
    pub seconds: f64,
}

/// A fine-tuned model with its tokenizer, ready to run or be evaluated.
pub struct FineTuned {
    model: TaskModel,
    /// Shared by the models of one [`AdapterHost`].
    tokenizer: Arc<WordTokenizer>,
    settings: RunSettings,
}

impl FineTuned {
    /// Loads a fine-tuned folder (`config.json` with the head's task and
    /// `id2label`, `model.safetensors`, tokenizer files) onto `device`; a
    /// training run's output folder names its `model/` subfolder.
    pub fn load(dir: &Path, settings: RunSettings, device: &Device) -> Result<Self, InferError> {
        settings.validate()?;
        let dir = &ferrotune_model::model_folder(dir);
        let config_path = dir.join("config.json");
        let precision = settings.precision_for(&config_path)?;
        let model = match BertConfig::fine_tuned_task(dir)? {
            Task::Ner => TaskModel::Token(
                TokenClassifier::load(dir, TokenHead::Saved, device)?.frozen()?.with_precision(precision)?,
            ),
            Task::Sequence(_) => TaskModel::Sequence(
                SequenceClassifier::load(dir, SequenceHead::Saved, device)?.frozen()?.with_precision(precision)?,
            ),
            Task::Retrieval => return Err(InferError::RetrievalModel),
        };
        Self::with_tokenizer(model, dir, settings)
    }

    /// Loads the base folder `base` with the LoRA adapter folder `adapter`
    /// on it (PEFT's layout; its `config.json` names the task and labels),
    /// onto `device`; the tokenizer is the base's.
    pub fn load_with_adapter(
        base: &Path,
        adapter: &Path,
        settings: RunSettings,
        device: &Device,
    ) -> Result<Self, InferError> {
        AdapterHost::load(base, settings, device)?.adapter(adapter)
    }

    /// The model with the tokenizer of folder `dir`, checked against it.
    fn with_tokenizer(model: TaskModel, dir: &Path, settings: RunSettings) -> Result<Self, InferError> {
        let tokenizer = Arc::new(WordTokenizer::load(dir)?);
        Self::checked(model, tokenizer, dir, settings)
    }

    /// The model with `tokenizer` (read from folder `dir`), checked against it.
    fn checked(
        model: TaskModel,
        tokenizer: Arc<WordTokenizer>,
        dir: &Path,
        settings: RunSettings,
    ) -> Result<Self, InferError> {
        let config = match &model {
            TaskModel::Token(m) => &m.config,
            TaskModel::Sequence(m) => &m.config,
        };
        let positions = config.max_position_embeddings;
        config.check_tokenizer_vocab(&dir.join("config.json"), tokenizer.vocab_size())?;
        if settings.max_len > positions {
            return Err(InferError::MaxLenOverPositions { max_len: settings.max_len, positions });
        }
        Ok(Self { model, tokenizer, settings })
    }

    /// The tokens each input costs a model call, special tokens included:
    /// for NER every window of the text, for sequence models the encoded
    /// (cut) text or pair.
    pub fn token_counts(&self, inputs: &[TextInput]) -> Result<Vec<usize>, InferError> {
        let max_len = self.settings.max_len;
        inputs
            .iter()
            .map(|input| match (&self.model, input) {
                (TaskModel::Token(_), TextInput::Text(text)) => {
                    let words = PredictionInput::from_text(text).word_texts();
                    Ok(self.tokenizer.windows(&words, max_len)?.iter().map(|w| w.input_ids.len()).sum())
                }
                (TaskModel::Token(_), TextInput::Words(words)) => {
                    Ok(self.tokenizer.windows(words, max_len)?.iter().map(|w| w.input_ids.len()).sum())
                }
                (TaskModel::Token(_), TextInput::Pair(a, b)) => Ok(a.len() + b.len()),
                (TaskModel::Sequence(_), TextInput::Text(text)) => {
                    Ok(self.tokenizer.encode_text(text, None, max_len)?.input_ids.len())
                }
                (TaskModel::Sequence(_), TextInput::Words(words)) => {
                    Ok(self.tokenizer.encode_text(&words.join(" "), None, max_len)?.input_ids.len())
                }
                (TaskModel::Sequence(_), TextInput::Pair(a, b)) => {
                    Ok(self.tokenizer.encode_text(a, Some(b), max_len)?.input_ids.len())
                }
            })
            .collect()
    }

    /// The task the model was trained for.
    pub fn task(&self) -> Task {
        self.model.task()
    }

    /// Label names in id order.
    pub fn labels(&self) -> &[String] {
        self.model.labels()
    }

    /// How the model runs.
    pub fn settings(&self) -> RunSettings {
        self.settings
    }

    /// Runs the model on a batch of inputs. NER models take texts (split
    /// into words as BERT's basic tokenizer does) and pre-split words;
    /// sequence models take texts, pairs and words (joined by spaces).
    pub fn run(&self, inputs: &[TextInput]) -> Result<Outputs, InferError> {
        let mut outputs = Self::run_grouped(&[(self, inputs)])?;
        Ok(outputs.remove(0))
    }

    /// Runs several models on their own inputs in shared forward passes:
    /// models loaded by one [`AdapterHost`] (one base, each its own LoRA
    /// adapter and head) share the base's products, every row adding its
    /// own adapter's; NER and sequence models run in separate passes. One
    /// `Outputs` per part, in order. Models of different hosts (or loaded
    /// alone) cannot be mixed.
    pub fn run_grouped(parts: &[(&FineTuned, &[TextInput])]) -> Result<Vec<Outputs>, InferError> {
        let Some(&(first, _)) = parts.first() else { return Ok(Vec::new()) };
        if parts.iter().any(|(m, _)| !Arc::ptr_eq(&m.tokenizer, &first.tokenizer) || m.settings != first.settings) {
            return Err(InferError::NotOneBase);
        }
        let mut outputs: Vec<Outputs> = parts.iter().map(|_| Outputs { records: Vec::new(), long_inputs: 0 }).collect();
        let (mut token, mut sequence) = (Vec::new(), Vec::new());
        for (i, (model, inputs)) in parts.iter().enumerate() {
            match &model.model {
                TaskModel::Token(m) => token.push((i, m, *inputs)),
                TaskModel::Sequence(m) => sequence.push((i, m, *inputs)),
            }
        }
        if !token.is_empty() {
            let parts: Vec<_> = token.iter().map(|&(_, m, inputs)| (m, inputs)).collect();
            for (&(i, ..), out) in token.iter().zip(first.run_token(&parts)?) {
                outputs[i] = out;
            }
        }
        if !sequence.is_empty() {
            let parts: Vec<_> = sequence.iter().map(|&(_, m, inputs)| (m, inputs)).collect();
            for (&(i, ..), out) in sequence.iter().zip(first.run_sequence(&parts)?) {
                outputs[i] = out;
            }
        }
        Ok(outputs)
    }

    /// Tags the texts of every part with its model, in shared passes.
    fn run_token(&self, parts: &[(&TokenClassifier, &[TextInput])]) -> Result<Vec<Outputs>, InferError> {
        let mut texts = Vec::new();
        let mut owner = Vec::new();
        for (part, (_, inputs)) in parts.iter().enumerate() {
            for (index, input) in inputs.iter().enumerate() {
                texts.push(match input {
                    TextInput::Text(text) => PredictionInput::from_text(text),
                    TextInput::Words(words) => PredictionInput::from_tokens(words),
                    TextInput::Pair(..) => {
                        let expected = "single texts or words";
                        return Err(InferError::UnsupportedInput { index, task: Task::Ner, expected });
                    }
                });
                owner.push(part);
            }
        }
        let words: Vec<Vec<String>> = texts.iter().map(PredictionInput::word_texts).collect();
        let windows = WindowedSentences::new(&self.tokenizer, &words, self.settings.max_len)?;
        let models: Vec<&TokenClassifier> = parts.iter().map(|(m, _)| *m).collect();
        let limits = self.settings.batch_limits();
        let predictions = tag_windows_grouped(&models, &owner, &windows, self.tokenizer.pad_id, limits)?;
        let mut outputs: Vec<Outputs> = parts.iter().map(|_| Outputs { records: Vec::new(), long_inputs: 0 }).collect();
        for (((text, &part), prediction), text_windows) in
            texts.iter().zip(&owner).zip(&predictions).zip(&windows.windows)
        {
            let out = &mut outputs[part];
            out.records.push(Record::Ner(NerRecord::new(text, prediction, &models[part].labels)));
            out.long_inputs += usize::from(text_windows.len() > 1);
        }
        Ok(outputs)
    }

    /// Scores the inputs of every part with its model, in shared passes.
    fn run_sequence(&self, parts: &[(&SequenceClassifier, &[TextInput])]) -> Result<Vec<Outputs>, InferError> {
        let RunSettings { max_len, threshold, .. } = self.settings;
        let mut texts: Vec<(String, Option<&str>)> = Vec::new();
        let mut owner = Vec::new();
        for (part, (_, inputs)) in parts.iter().enumerate() {
            for input in inputs.iter() {
                texts.push(match input {
                    TextInput::Text(text) => (text.clone(), None),
                    TextInput::Words(words) => (words.join(" "), None),
                    TextInput::Pair(a, b) => (a.clone(), Some(b.as_str())),
                });
                owner.push(part);
            }
        }
        let encoded =
            texts.iter().map(|(a, b)| self.tokenizer.encode_text(a, *b, max_len)).collect::<Result<Vec<_>, _>>()?;
        let models: Vec<&SequenceClassifier> = parts.iter().map(|(m, _)| *m).collect();
        let limits = self.settings.batch_limits();
        let scores = score_encoded_grouped(&models, &owner, &encoded, self.tokenizer.pad_id, limits)?;
        let mut outputs: Vec<Outputs> = parts.iter().map(|_| Outputs { records: Vec::new(), long_inputs: 0 }).collect();
        for ((((a, b), &part), s), e) in texts.iter().zip(&owner).zip(&scores).zip(&encoded) {
            let model = models[part];
            let out = &mut outputs[part];
            out.records.push(Record::Classify(ClassifyRecord::new(a, *b, model.kind, &model.labels, s, threshold)));
            out.long_inputs += usize::from(e.input_ids.len() >= max_len);
        }
        Ok(outputs)
    }

    /// Scores the model on a labelled file of its task (NER: CoNLL or
    /// JSONL; sequence tasks: TSV, CSV or JSONL with labels).
    pub fn evaluate(&self, path: &Path) -> Result<Evaluation, InferError> {
        let set = EvalSet::read(path, self.task(), self.labels(), &self.tokenizer, self.settings.max_len)?;
        let started = Instant::now();
        let report =
            set.evaluate(&self.model, self.tokenizer.pad_id, self.settings.batch_limits(), self.settings.threshold)?;
        Ok(Evaluation {
            report,
            examples: set.len(),
            long_inputs: set.long_inputs(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// A base model folder read once, and LoRA adapters loaded onto it: every
/// adapter's model shares the base's weights and tokenizer, holding only
/// its adapter matrices and head, and [`FineTuned::run_grouped`] runs a
/// batch mixing them with the base's products computed once.
pub struct AdapterHost {
    base: BaseWeights,
    tokenizer: Arc<WordTokenizer>,
    settings: RunSettings,
    precision: Precision,
    /// The base's matrices as the first adapter's model packed them (int8,
    /// bf16), shared by the later ones.
    packed: Mutex<Option<PackedWeights>>,
}

impl AdapterHost {
    /// Reads the base folder `base` (weights, configuration, tokenizer)
    /// onto `device`.
    pub fn load(base: &Path, settings: RunSettings, device: &Device) -> Result<Self, InferError> {
        settings.validate()?;
        let dir = ferrotune_model::model_folder(base);
        let precision = settings.precision_for(&dir.join("config.json"))?;
        let tokenizer = Arc::new(WordTokenizer::load(&dir)?);
        Ok(Self { base: BaseWeights::load(&dir, device)?, tokenizer, settings, precision, packed: Mutex::default() })
    }

    /// Loads the adapter folder `dir` (PEFT's layout, with the head's
    /// `config.json`) onto the base: checked against it (shapes, the base's
    /// hash where recorded), sharing its weights.
    pub fn adapter(&self, dir: &Path) -> Result<FineTuned, InferError> {
        let adapter_dir: PathBuf = ferrotune_model::model_folder(dir);
        let adapter = AdapterFolder::read(&adapter_dir)?;
        let base = self.base.clone();
        // The base's matrices are packed once, by the first adapter's model.
        let mut packed = self.packed.lock().unwrap_or_else(PoisonError::into_inner);
        let model = match BertConfig::fine_tuned_task(&adapter_dir)? {
            Task::Ner => {
                let model = TokenClassifier::on_base(base, &adapter)?.frozen()?;
                let model = match packed.as_ref() {
                    Some(shared) => model.with_packed_weights(shared)?,
                    None => model.with_precision(self.precision)?,
                };
                packed.get_or_insert_with(|| model.packed_weights());
                TaskModel::Token(model)
            }
            Task::Sequence(_) => {
                let model = SequenceClassifier::on_base(base, &adapter)?.frozen()?;
                let model = match packed.as_ref() {
                    Some(shared) => model.with_packed_weights(shared)?,
                    None => model.with_precision(self.precision)?,
                };
                packed.get_or_insert_with(|| model.packed_weights());
                TaskModel::Sequence(model)
            }
            Task::Retrieval => return Err(InferError::RetrievalModel),
        };
        FineTuned::checked(model, Arc::clone(&self.tokenizer), &self.base.dir, self.settings)
    }
}
