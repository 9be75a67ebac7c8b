//! Token classification (NER) as a training task: sentences become windows,
//! the first sub-token of each word carries its tag, the dev set is scored
//! by entity F1 (seqeval).

use std::path::Path;

use candle_core::{Device, Tensor};
use ferrotune_data::{read_tagged, LabelSet, Task};
use ferrotune_eval::TaskReport;
use ferrotune_infer::{EvalSet, TaskModel};
use ferrotune_model::{Batch, Mode, ParamStore, TokenClassifier, TokenHead};
use ferrotune_text::{Window, WordTokenizer};
use rand_chacha::ChaCha8Rng;

use crate::task::TrainTask;
use crate::{TrainError, TrainOptions, TrainRequest};

/// A training window and the tag of each word it owns.
struct Example {
    input_ids: Vec<u32>,
    /// `(position, tag id)` of the first sub-token of each owned word.
    targets: Vec<(usize, u32)>,
}

/// A token classifier with its encoded data.
pub struct NerTask {
    model: TokenClassifier,
    examples: Vec<Example>,
    dev: Option<EvalSet>,
    sentences: usize,
    split: usize,
    pad_id: u32,
}

impl NerTask {
    /// Reads and encodes the data and loads the model with a head for the
    /// tags of the training file.
    pub fn load(request: &TrainRequest, options: &TrainOptions) -> Result<Self, TrainError> {
        let model_dir = request.model_dir;
        let sentences = read_tagged(request.train)?;
        let labels = LabelSet::from_sentences(&sentences)?;
        let tag_ids = labels.encode(&sentences)?;
        let tokenizer = WordTokenizer::load(model_dir)?;
        let mut examples = Vec::new();
        let mut split = 0;
        for (sentence, ids) in sentences.iter().zip(&tag_ids) {
            let windows = tokenizer.windows(&sentence.tokens, options.max_len)?;
            split += usize::from(windows.len() > 1);
            // A window that owns no word (possible between long overlapping
            // windows) has nothing to learn from: leave it out.
            for Window { input_ids, word_positions } in windows.into_iter().filter(|w| !w.word_positions.is_empty()) {
                let targets = word_positions.iter().map(|&(pos, word)| (pos, ids[word] as u32)).collect();
                examples.push(Example { input_ids, targets });
            }
        }
        let label_names = labels.labels().to_vec();
        let dev = match request.dev {
            Some(path) => Some(EvalSet::read(path, Task::Ner, &label_names, &tokenizer, options.max_len)?),
            None => None,
        };
        let head = TokenHead::For { labels: &label_names, seed: options.seed };
        let mut model = TokenClassifier::load(model_dir, head, &request.device)?;
        if let Some(lora) = options.lora_settings() {
            model = model.with_new_lora(&lora, options.seed)?;
        }
        let model = model.with_training_precision(options.precision)?;
        Ok(Self { model, examples, dev, sentences: sentences.len(), split, pad_id: tokenizer.pad_id })
    }
}

impl TrainTask for NerTask {
    fn task(&self) -> Task {
        Task::Ner
    }

    fn lengths(&self) -> Vec<usize> {
        self.examples.iter().map(|e| e.input_ids.len()).collect()
    }

    fn examples(&self) -> usize {
        self.sentences
    }

    fn long_inputs(&self) -> usize {
        self.split
    }

    fn params(&self) -> &ParamStore {
        self.model.params()
    }

    fn labels(&self) -> &[String] {
        &self.model.labels
    }

    /// Cross-entropy over the first sub-token of each owned word only:
    /// padding, special tokens and continuation sub-tokens are not among the
    /// flat positions (`row * len + column`) scored.
    fn batch_loss(&self, ids: &[usize], rng: &mut ChaCha8Rng) -> Result<Tensor, TrainError> {
        let examples: Vec<&Example> = ids.iter().map(|&k| &self.examples[k]).collect();
        let sequences: Vec<&[u32]> = examples.iter().map(|e| e.input_ids.as_slice()).collect();
        let batch = Batch::pad(&sequences, self.pad_id)?;
        let (mut positions, mut targets) = (Vec::new(), Vec::new());
        for (row, e) in examples.iter().enumerate() {
            for &(pos, tag) in &e.targets {
                positions.push((row * batch.len + pos) as u32);
                targets.push(tag);
            }
        }
        let n = positions.len();
        let positions = Tensor::from_vec(positions, n, &Device::Cpu)?;
        let targets = Tensor::from_vec(targets, n, &Device::Cpu)?;
        let logits = self.model.forward(&batch, &mut Mode::Train(rng))?;
        Ok(self.model.loss(&logits, &positions, &targets)?)
    }

    fn evaluate(&self, batch_size: usize) -> Result<Option<TaskReport>, TrainError> {
        let Some(dev) = &self.dev else { return Ok(None) };
        let model = TaskModel::Token(self.model.frozen()?);
        Ok(Some(crate::task::dev_report(dev, &model, self.pad_id, batch_size)?))
    }

    fn save(&self, dir: &Path) -> Result<(), TrainError> {
        Ok(self.model.save_pretrained(dir)?)
    }
}
