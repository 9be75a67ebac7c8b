//! Batched sequence classification: texts or text pairs encoded with the
//! model's special tokens and segment ids, run in batches of similar length,
//! scored per label, and turned into `predict` records.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Device;
use ferrotune_data::Task;
use ferrotune_model::{Batch, Mode, SequenceClassifier, SequenceHead};
use ferrotune_text::WordTokenizer;
use serde::Serialize;

use crate::InferError;

/// Token ids and segment ids of one text or pair.
pub type EncodedText = (Vec<u32>, Vec<u32>);

/// Per-label scores of every encoded input (softmax or sigmoid
/// probabilities, or the regression value), in input order.
pub fn score_encoded(
    model: &SequenceClassifier,
    inputs: &[EncodedText],
    pad_id: u32,
    batch_size: usize,
) -> Result<Vec<Vec<f32>>, InferError> {
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(inputs[i].0.len()));
    let mut out = vec![Vec::new(); inputs.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let ids: Vec<&[u32]> = chunk.iter().map(|&i| inputs[i].0.as_slice()).collect();
        let types: Vec<&[u32]> = chunk.iter().map(|&i| inputs[i].1.as_slice()).collect();
        let batch = Batch::pad_segments(&ids, Some(&types), pad_id)?;
        let scores = model.scores(&model.forward(&batch, &mut Mode::Eval)?)?;
        for (&i, row) in chunk.iter().zip(scores) {
            out[i] = row;
        }
    }
    Ok(out)
}

/// The decision a model's scores make for one input.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The most probable class.
    Class(usize),
    /// Every class at or above the threshold.
    Classes(Vec<usize>),
    /// The predicted number.
    Value(f32),
}

/// Turns scores into a decision: argmax (classify), `>= threshold`
/// (multilabel), the value (regression).
pub fn decide(task: Task, scores: &[f32], threshold: f32) -> Decision {
    match task {
        Task::Multilabel => Decision::Classes((0..scores.len()).filter(|&c| scores[c] >= threshold).collect()),
        Task::Regression => Decision::Value(scores.first().copied().unwrap_or(f32::NAN)),
        Task::Classify | Task::Ner => {
            let best = (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap_or(0);
            Decision::Class(best)
        }
    }
}

/// A fine-tuned sequence model with its tokenizer, ready to score texts.
pub struct TextClassifier {
    /// The model.
    pub model: SequenceClassifier,
    /// Its tokenizer.
    pub tokenizer: WordTokenizer,
    /// Maximum tokens per input; longer ones are cut longest-first.
    pub max_len: usize,
    /// Inputs per forward pass.
    pub batch_size: usize,
    /// Multilabel decision threshold on sigmoid probabilities.
    pub threshold: f32,
}

impl TextClassifier {
    /// Loads a fine-tuned `BertForSequenceClassification` folder; the model
    /// runs on `device`.
    pub fn load(dir: &Path, max_len: usize, batch_size: usize, device: &Device) -> Result<Self, InferError> {
        Ok(Self {
            model: SequenceClassifier::from_pretrained_on(dir, SequenceHead::Saved, device)?.frozen()?,
            tokenizer: WordTokenizer::from_dir(dir)?,
            max_len,
            batch_size,
            threshold: 0.5,
        })
    }

    /// Encodes texts (or pairs) with the model's tokenizer.
    pub fn encode(&self, texts: &[(&str, Option<&str>)]) -> Result<Vec<EncodedText>, InferError> {
        Ok(texts.iter().map(|(a, b)| self.tokenizer.encode_text(a, *b, self.max_len)).collect::<Result<_, _>>()?)
    }

    /// Scores texts (or pairs); see [`score_encoded`].
    pub fn score(&self, texts: &[(&str, Option<&str>)]) -> Result<Vec<Vec<f32>>, InferError> {
        score_encoded(&self.model, &self.encode(texts)?, self.tokenizer.pad_id, self.batch_size)
    }

    /// The `predict` record of one input and its scores.
    pub fn record(&self, text_a: &str, text_b: Option<&str>, scores: &[f32]) -> TextPrediction {
        let labels = &self.model.labels;
        let (label, score) = match decide(self.model.task, scores, self.threshold) {
            Decision::Class(c) => (serde_json::json!(labels[c]), scores[c]),
            Decision::Classes(cs) => {
                let names: Vec<&str> = cs.iter().map(|&c| labels[c].as_str()).collect();
                let weakest = cs.iter().map(|&c| scores[c]).fold(f32::INFINITY, f32::min);
                (serde_json::json!(names), if cs.is_empty() { 0.0 } else { weakest })
            }
            Decision::Value(v) => (serde_json::json!(v), v),
        };
        let (text, pair) = match text_b {
            Some(b) => (None, Some((text_a.to_string(), b.to_string()))),
            None => (Some(text_a.to_string()), None),
        };
        TextPrediction {
            text,
            text_a: pair.as_ref().map(|p| p.0.clone()),
            text_b: pair.map(|p| p.1),
            label,
            score,
            scores: labels.iter().cloned().zip(scores.iter().copied()).collect(),
        }
    }
}

/// One line of `ferrotune predict` output for a sequence model.
#[derive(Debug, Clone, Serialize)]
pub struct TextPrediction {
    /// The input text (single texts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The first text (pairs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_a: Option<String>,
    /// The second text (pairs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_b: Option<String>,
    /// The class (classify), the list of classes (multilabel) or the value
    /// (regression).
    pub label: serde_json::Value,
    /// The probability of the class; for multilabel the lowest probability
    /// among the chosen classes (0 if none); for regression the value.
    pub score: f32,
    /// Every label's probability (regression: its value).
    pub scores: BTreeMap<String, f32>,
}
