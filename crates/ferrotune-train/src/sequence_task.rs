//! Sequence classification and regression as a training task: each text or
//! pair is one example, scored on the dev set by macro F1 (classify), micro
//! F1 (multilabel) or negative MSE (regression).

use std::path::Path;

use candle_core::Tensor;
use ferrotune_data::{encode_target, read_texts, text_labels, SequenceKind, Target, Task};
use ferrotune_eval::TaskReport;
use ferrotune_infer::{EvalSet, TaskModel};
use ferrotune_model::{Batch, Mode, ParamStore, SequenceClassifier, SequenceHead};
use ferrotune_text::{EncodedText, WordTokenizer};
use rand_chacha::ChaCha8Rng;

use crate::task::TrainTask;
use crate::{TrainError, TrainOptions, TrainRequest};

/// A sequence classifier with its encoded data.
pub struct SequenceTask {
    model: SequenceClassifier,
    inputs: Vec<EncodedText>,
    targets: Vec<Target>,
    pairs: bool,
    dev: Option<EvalSet>,
    truncated: usize,
    pad_id: u32,
}

impl SequenceTask {
    /// Reads and encodes the data and loads the model with a head for the
    /// labels of the training file.
    pub fn load(request: &TrainRequest, options: &TrainOptions, kind: SequenceKind) -> Result<Self, TrainError> {
        let model_dir = request.model_dir;
        let examples = read_texts(request.train, true)?;
        let labels = text_labels(kind, &examples)?;
        let tokenizer = WordTokenizer::load(model_dir)?;
        let targets = examples.iter().map(|e| encode_target(kind, &labels, e)).collect::<Result<_, _>>()?;
        let inputs: Vec<EncodedText> = examples
            .iter()
            .map(|e| tokenizer.encode_text(&e.text_a, e.text_b.as_deref(), options.max_len))
            .collect::<Result<_, _>>()?;
        let truncated = inputs.iter().filter(|e| e.input_ids.len() >= options.max_len).count();
        let dev = match request.dev {
            Some(path) => Some(EvalSet::read(path, Task::Sequence(kind), &labels, &tokenizer, options.max_len)?),
            None => None,
        };
        let head = SequenceHead::For { kind, labels: &labels, pooling: options.pooling, seed: options.seed };
        let mut model = SequenceClassifier::load(model_dir, head, &request.device)?;
        if let Some(lora) = options.lora_settings() {
            model = model.with_new_lora(&lora, options.seed)?;
        }
        let model = model.with_training_precision(options.precision)?;
        Ok(Self {
            model,
            inputs,
            targets,
            pairs: examples.iter().any(|e| e.text_b.is_some()),
            dev,
            truncated,
            pad_id: tokenizer.pad_id,
        })
    }
}

impl TrainTask for SequenceTask {
    fn task(&self) -> Task {
        Task::Sequence(self.model.kind)
    }

    fn lengths(&self) -> Vec<usize> {
        self.inputs.iter().map(|e| e.input_ids.len()).collect()
    }

    fn examples(&self) -> usize {
        self.inputs.len()
    }

    fn long_inputs(&self) -> usize {
        self.truncated
    }

    fn pairs(&self) -> bool {
        self.pairs
    }

    fn params(&self) -> &ParamStore {
        self.model.params()
    }

    fn labels(&self) -> &[String] {
        &self.model.labels
    }

    fn batch_loss(&self, ids: &[usize], rng: &mut ChaCha8Rng) -> Result<Tensor, TrainError> {
        let sequences: Vec<&[u32]> = ids.iter().map(|&i| self.inputs[i].input_ids.as_slice()).collect();
        let types: Vec<&[u32]> = ids.iter().map(|&i| self.inputs[i].type_ids.as_slice()).collect();
        let batch = Batch::pad_segments(&sequences, Some(&types), self.pad_id)?;
        let targets: Vec<Target> = ids.iter().map(|&i| self.targets[i].clone()).collect();
        let logits = self.model.forward(&batch, &mut Mode::Train(rng))?;
        Ok(self.model.loss(&logits, &self.model.target_tensor(&targets)?)?)
    }

    fn evaluate(&self, batch_size: usize) -> Result<Option<TaskReport>, TrainError> {
        let Some(dev) = &self.dev else { return Ok(None) };
        let model = TaskModel::Sequence(self.model.frozen()?);
        Ok(Some(crate::task::dev_report(dev, &model, self.pad_id, batch_size)?))
    }

    fn save(&self, dir: &Path) -> Result<(), TrainError> {
        Ok(self.model.save_pretrained(dir)?)
    }
}
