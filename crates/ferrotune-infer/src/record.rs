//! The records `predict` writes and the server answers: entities with
//! character offsets (NER), labels with scores (sequence tasks).

use ferrotune_text::{split_words, Word};
use serde::Serialize;

use std::collections::BTreeMap;

use ferrotune_data::SequenceKind;

use crate::{decide, Decision, WordPrediction};

/// One text to tag, with its words and their character offsets.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionInput {
    /// The text (for `{"tokens": [...]}` input, the tokens joined by spaces).
    pub text: String,
    /// Its words.
    pub words: Vec<Word>,
}

impl PredictionInput {
    /// Raw text, split into words as BERT's basic tokenizer does.
    pub fn from_text(text: &str) -> Self {
        Self { text: text.to_string(), words: split_words(text) }
    }

    /// Pre-split tokens; offsets refer to the tokens joined by single spaces.
    pub fn from_tokens(tokens: &[String]) -> Self {
        let mut words = Vec::with_capacity(tokens.len());
        let mut offset = 0;
        for t in tokens {
            let len = t.chars().count();
            words.push(Word { text: t.clone(), start: offset, end: offset + len });
            offset += len + 1;
        }
        Self { text: tokens.join(" "), words }
    }

    /// The words' texts.
    pub fn word_texts(&self) -> Vec<String> {
        self.words.iter().map(|w| w.text.clone()).collect()
    }
}

/// An entity found in a text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityOut {
    /// The entity's text, as it appears in the input.
    pub text: String,
    /// Entity type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Character offset of its start.
    pub start: usize,
    /// Character offset one past its end.
    pub end: usize,
    /// Mean probability of its words' tags.
    pub score: f32,
}

/// One output line of `predict` for an NER model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NerRecord {
    /// The input text.
    pub text: String,
    /// Entities, in text order.
    pub entities: Vec<EntityOut>,
    /// The words.
    pub tokens: Vec<String>,
    /// One tag per word.
    pub tags: Vec<String>,
}

impl NerRecord {
    /// Builds the record from an input and its word predictions.
    pub fn new(input: &PredictionInput, predictions: &[WordPrediction], labels: &[String]) -> Self {
        let tags: Vec<String> = predictions.iter().map(|p| labels[p.label].clone()).collect();
        let chars: Vec<char> = input.text.chars().collect();
        let entities = ferrotune_eval::get_entities(&tags)
            .into_iter()
            .map(|e| {
                let (start, end) = (input.words[e.start].start, input.words[e.end].end);
                let scores = &predictions[e.start..=e.end];
                EntityOut {
                    text: chars[start..end].iter().collect(),
                    kind: e.kind,
                    start,
                    end,
                    score: scores.iter().map(|p| p.score).sum::<f32>() / scores.len() as f32,
                }
            })
            .collect();
        Self { text: input.text.clone(), entities, tokens: input.word_texts(), tags }
    }
}

/// One output line of `predict` for a sequence model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassifyRecord {
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

impl ClassifyRecord {
    /// The record of one text (or pair, when `text_b` is given) and its
    /// scores under `labels`; multilabel decisions at `threshold`.
    pub fn new(
        text_a: &str,
        text_b: Option<&str>,
        kind: SequenceKind,
        labels: &[String],
        scores: &[f32],
        threshold: f32,
    ) -> Self {
        let (label, score) = match decide(kind, scores, threshold) {
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
        Self {
            text,
            text_a: pair.as_ref().map(|p| p.0.clone()),
            text_b: pair.map(|p| p.1),
            label,
            score,
            scores: labels.iter().cloned().zip(scores.iter().copied()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_carry_character_offsets() {
        let input = PredictionInput::from_text("Café au lait spots in neurofibromatosis type 1.");
        let labels: Vec<String> = ["O", "B-Disease", "I-Disease"].map(String::from).to_vec();
        let mut preds = vec![WordPrediction { label: 0, score: 0.9 }; input.words.len()];
        preds[5] = WordPrediction { label: 1, score: 0.8 };
        preds[6] = WordPrediction { label: 2, score: 0.6 };
        preds[7] = WordPrediction { label: 2, score: 0.7 };
        let p = NerRecord::new(&input, &preds, &labels);
        assert_eq!(p.entities.len(), 1);
        let e = &p.entities[0];
        assert_eq!((e.text.as_str(), e.start, e.end), ("neurofibromatosis type 1", 22, 46));
        assert!((e.score - 0.7).abs() < 1e-6);
        assert_eq!(p.tags.len(), p.tokens.len());
    }

    #[test]
    fn words_carry_offsets() {
        let a = PredictionInput::from_tokens(&["BRCA1".to_string(), "cancer".to_string()]);
        assert_eq!(a.text, "BRCA1 cancer");
        assert_eq!((a.words[1].start, a.words[1].end), (6, 12));
        assert_eq!(PredictionInput::from_text("a, b").word_texts(), ["a", ",", "b"]);
    }
}
