//! Retrieval as a training task: a bi-encoder (a sentence-transformers
//! model) trained on query/positive(/hard negative) pairs with in-batch
//! negatives (the Multiple Negatives Ranking loss), in batches where no text
//! occurs twice, scored on the dev queries by MRR@10, saved as a
//! sentence-transformers folder.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use ferrotune_data::{read_pairs, Task};
use ferrotune_eval::TaskReport;
use ferrotune_infer::{BatchLimits, RetrievalSet};
use ferrotune_model::sentence::SentenceEncoder;
use ferrotune_model::{Batch, Mode, ParamStore};
use ferrotune_text::WordTokenizer;
use rand_chacha::ChaCha8Rng;

use crate::task::TrainTask;
use crate::{distinct_batches, ranking_loss, Batching, TrainError, TrainOptions, TrainRequest};

/// A training example: its texts, as indices into the encoded texts.
struct Example {
    query: usize,
    positive: usize,
    negative: Option<usize>,
}

impl Example {
    fn texts(&self) -> Vec<usize> {
        [Some(self.query), Some(self.positive), self.negative].into_iter().flatten().collect()
    }
}

/// A sentence encoder with its encoded pairs and dev set.
pub struct RetrievalTask {
    model: SentenceEncoder,
    tokenizer: WordTokenizer,
    /// Token ids of every distinct text of the training file.
    texts: Vec<Vec<u32>>,
    examples: Vec<Example>,
    dev: Option<RetrievalSet>,
    max_len: usize,
    scale: f64,
    cut: usize,
}

impl RetrievalTask {
    /// Reads the pairs (and the dev corpus and queries), encodes every
    /// distinct text once and loads the sentence encoder.
    pub fn load(request: &TrainRequest, options: &TrainOptions) -> Result<Self, TrainError> {
        let pairs = read_pairs(request.train, None)?;
        let tokenizer = WordTokenizer::load(request.model_dir)?;
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut texts: Vec<Vec<u32>> = Vec::new();
        let mut intern = |text: &str| -> Result<usize, TrainError> {
            if let Some(&i) = index.get(text) {
                return Ok(i);
            }
            texts.push(tokenizer.encode_text(text, None, options.max_len)?.input_ids);
            index.insert(text.to_string(), texts.len() - 1);
            Ok(texts.len() - 1)
        };
        let mut examples = Vec::with_capacity(pairs.len());
        for pair in &pairs {
            let negative = pair.negative.as_deref().map(&mut intern).transpose()?;
            examples.push(Example { query: intern(&pair.query)?, positive: intern(&pair.positive)?, negative });
        }
        let cut = texts.iter().filter(|t| t.len() >= options.max_len).count();
        let dev = match (request.dev, request.dev_corpus) {
            (Some(queries), Some(corpus)) => Some(RetrievalSet::read(corpus, queries)?),
            (None, None) => None,
            _ => return Err(TrainError::RetrievalDev),
        };
        let mut model = SentenceEncoder::load(request.model_dir, None, &request.device)?;
        if let Some(lora) = options.lora_settings() {
            model = model.with_new_lora(&lora, options.seed)?;
        }
        let model = model.with_training_precision(options.precision)?;
        Ok(Self { model, tokenizer, texts, examples, dev, max_len: options.max_len, scale: options.scale, cut })
    }

    /// Embeddings `[n, dim]` of the texts `ids` (one forward pass).
    fn embed(&self, ids: impl Iterator<Item = usize>, rng: &mut ChaCha8Rng) -> Result<Tensor, TrainError> {
        let rows: Vec<&[u32]> = ids.map(|i| self.texts[i].as_slice()).collect();
        let batch = Batch::pad(&rows, self.tokenizer.pad_id)?;
        Ok(self.model.forward(&batch, &mut Mode::Train(rng))?)
    }
}

impl TrainTask for RetrievalTask {
    fn task(&self) -> Task {
        Task::Retrieval
    }

    fn lengths(&self) -> Vec<usize> {
        self.examples.iter().map(|e| e.texts().iter().map(|&t| self.texts[t].len()).sum()).collect()
    }

    fn examples(&self) -> usize {
        self.examples.len()
    }

    fn long_inputs(&self) -> usize {
        self.cut
    }

    fn pairs(&self) -> bool {
        true
    }

    fn params(&self) -> &ParamStore {
        self.model.params()
    }

    fn labels(&self) -> &[String] {
        &[]
    }

    /// Batches in which no text occurs twice (a repeated positive would be
    /// its own in-batch negative); `batching` does not apply.
    fn batches(&self, _batching: Batching, batch_size: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
        let texts: Vec<Vec<usize>> = self.examples.iter().map(Example::texts).collect();
        distinct_batches(&texts, batch_size, rng)
    }

    /// Queries, positives and hard negatives each in a forward pass (as
    /// sentence-transformers embeds each column), then the ranking loss of
    /// the queries against all positives and negatives of the batch.
    fn batch_loss(&self, ids: &[usize], rng: &mut ChaCha8Rng) -> Result<Tensor, TrainError> {
        let examples: Vec<&Example> = ids.iter().map(|&i| &self.examples[i]).collect();
        let queries = self.embed(examples.iter().map(|e| e.query), rng)?;
        let mut documents = vec![self.embed(examples.iter().map(|e| e.positive), rng)?];
        if examples.iter().all(|e| e.negative.is_some()) {
            documents.push(self.embed(examples.iter().filter_map(|e| e.negative), rng)?);
        }
        Ok(ranking_loss(&queries, &Tensor::cat(&documents, 0)?, self.scale)?)
    }

    fn evaluate(&self, batch_size: usize) -> Result<Option<TaskReport>, TrainError> {
        let Some(dev) = &self.dev else { return Ok(None) };
        let model = self.model.frozen()?;
        let limits = BatchLimits::inputs(batch_size);
        let evaluation =
            dev.evaluate(|texts| ferrotune_infer::embed_texts(&model, &self.tokenizer, texts, self.max_len, limits))?;
        Ok(Some(TaskReport::Retrieval(evaluation.report)))
    }

    fn save(&self, dir: &Path) -> Result<(), TrainError> {
        Ok(self.model.save_pretrained(dir)?)
    }
}
