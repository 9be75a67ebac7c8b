//! Sequence classification and regression as a training task: each text or
//! pair is one example, scored on the dev set by macro F1 (classify), micro
//! F1 (multilabel) or negative MSE (regression).

use std::path::Path;

use candle_core::Tensor;
use ferrotune_data::{encode_target, read_texts, text_labels, Target, Task, TextExample};
use ferrotune_eval::{ClassReport, MultilabelReport, RegressionReport, TextReport};
use ferrotune_infer::{decide, score_encoded, Decision, EncodedText};
use ferrotune_model::{Batch, Mode, ParamStore, SequenceClassifier, SequenceHead};
use ferrotune_text::WordTokenizer;
use rand_chacha::ChaCha8Rng;

use crate::task::{DevResult, TrainTask};
use crate::{TrainError, TrainOptions, TrainRequest};

/// Encoded inputs and targets of a labelled text file.
struct Encoded {
    inputs: Vec<EncodedText>,
    targets: Vec<Target>,
}

fn encode(
    examples: &[TextExample],
    task: Task,
    labels: &[String],
    tokenizer: &WordTokenizer,
    max_len: usize,
) -> Result<Encoded, TrainError> {
    let targets = examples.iter().map(|e| encode_target(task, labels, e)).collect::<Result<_, _>>()?;
    let inputs = examples
        .iter()
        .map(|e| tokenizer.encode_text(&e.text_a, e.text_b.as_deref(), max_len))
        .collect::<Result<_, _>>()?;
    Ok(Encoded { inputs, targets })
}

/// A sequence classifier with its encoded data.
pub struct SequenceTask {
    model: SequenceClassifier,
    train: Encoded,
    dev: Option<Encoded>,
    truncated: usize,
    pad_id: u32,
}

impl SequenceTask {
    /// Reads and encodes the data and loads the model with a head for the
    /// labels of the training file.
    pub fn load(request: &TrainRequest, options: &TrainOptions) -> Result<Self, TrainError> {
        let (model_dir, dev) = (request.model_dir, request.dev);
        let task = options.task;
        let examples = read_texts(request.train, true)?;
        let labels = text_labels(task, &examples)?;
        let tokenizer = WordTokenizer::from_dir(model_dir)?;
        let train = encode(&examples, task, &labels, &tokenizer, options.max_len)?;
        let truncated = train.inputs.iter().filter(|(ids, _)| ids.len() >= options.max_len).count();
        eprintln!(
            "train: {} texts{}, {} labels; {truncated} reach max-len {} (longer ones are cut)",
            examples.len(),
            if examples.iter().any(|e| e.text_b.is_some()) { " (pairs)" } else { "" },
            labels.len(),
            options.max_len
        );
        let dev = match dev {
            Some(path) => Some(encode(&read_texts(path, true)?, task, &labels, &tokenizer, options.max_len)?),
            None => None,
        };
        let head = SequenceHead::For { task, labels: &labels, pooling: options.pooling, seed: options.seed };
        let model = SequenceClassifier::from_pretrained_on(model_dir, head, &request.device)?;
        Ok(Self { model, train, dev, truncated, pad_id: tokenizer.pad_id })
    }
}

impl TrainTask for SequenceTask {
    fn lengths(&self) -> Vec<usize> {
        self.train.inputs.iter().map(|(ids, _)| ids.len()).collect()
    }

    fn sentences(&self) -> usize {
        self.train.inputs.len()
    }

    fn split_sentences(&self) -> usize {
        self.truncated
    }

    fn params(&self) -> &ParamStore {
        self.model.params()
    }

    fn labels(&self) -> &[String] {
        &self.model.labels
    }

    fn batch_loss(&self, ids: &[usize], rng: &mut ChaCha8Rng) -> Result<Tensor, TrainError> {
        let sequences: Vec<&[u32]> = ids.iter().map(|&i| self.train.inputs[i].0.as_slice()).collect();
        let types: Vec<&[u32]> = ids.iter().map(|&i| self.train.inputs[i].1.as_slice()).collect();
        let batch = Batch::pad_segments(&sequences, Some(&types), self.pad_id)?;
        let targets: Vec<Target> = ids.iter().map(|&i| self.train.targets[i].clone()).collect();
        let logits = self.model.forward(&batch, &mut Mode::Train(rng))?;
        Ok(self.model.loss(&logits, &self.model.target_tensor(&targets)?)?)
    }

    fn evaluate(&self, batch_size: usize) -> Result<Option<DevResult>, TrainError> {
        let Some(dev) = &self.dev else { return Ok(None) };
        let scores = score_encoded(&self.model.frozen()?, &dev.inputs, self.pad_id, batch_size)?;
        let report = sequence_report(&self.model.labels, self.model.task, &dev.targets, &scores, 0.5);
        Ok(Some(DevResult {
            score: report.score(),
            summary: format!("dev {}", report.summary()),
            report: serde_json::to_value(&report).expect("report serialises"),
        }))
    }

    fn save(&self, dir: &Path) -> Result<(), TrainError> {
        Ok(self.model.save_pretrained(dir)?)
    }
}

/// The report of a sequence model's scores against the gold targets
/// (multilabel decisions at `threshold`).
pub fn sequence_report(labels: &[String], task: Task, gold: &[Target], scores: &[Vec<f32>], threshold: f32) -> TextReport {
    let decisions: Vec<Decision> = scores.iter().map(|s| decide(task, s, threshold)).collect();
    match task {
        Task::Multilabel => {
            let truth = gold.iter().map(|t| match t {
                Target::Classes(c) => c.clone(),
                _ => Vec::new(),
            });
            let predicted = decisions.iter().map(|d| match d {
                Decision::Classes(c) => c.clone(),
                _ => Vec::new(),
            });
            TextReport::Multilabel(MultilabelReport::compute(labels, &truth.collect::<Vec<_>>(), &predicted.collect::<Vec<_>>()))
        }
        Task::Regression => {
            let truth = gold.iter().map(|t| match t {
                Target::Value(v) => *v as f64,
                _ => f64::NAN,
            });
            let predicted: Vec<f64> = scores.iter().map(|s| s[0] as f64).collect();
            TextReport::Regression(RegressionReport::compute(&truth.collect::<Vec<_>>(), &predicted))
        }
        Task::Classify | Task::Ner => {
            let truth = gold.iter().map(|t| match t {
                Target::Class(c) => *c,
                _ => 0,
            });
            let predicted = decisions.iter().map(|d| match d {
                Decision::Class(c) => *c,
                _ => 0,
            });
            TextReport::Classes(ClassReport::compute(labels, &truth.collect::<Vec<_>>(), &predicted.collect::<Vec<_>>()))
        }
    }
}
