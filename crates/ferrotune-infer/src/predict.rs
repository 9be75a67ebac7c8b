//! The `predict` record: input lines (plain text or JSONL) and output lines.

use ferrotune_text::{split_words, Word};
use serde::Serialize;

use crate::{InferError, WordPrediction};

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

    /// One input line: a JSON object with `text` or `tokens` when it starts
    /// with `{`, plain text otherwise. `source` and `line` name it in errors.
    pub fn parse_line(line: &str, source: &str, number: usize) -> Result<Self, InferError> {
        let error = |message: String| InferError::Input { source_name: source.to_string(), line: number, message };
        if !line.trim_start().starts_with('{') {
            return Ok(Self::from_text(line));
        }
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| error(format!("invalid JSON: {e}")))?;
        if let Some(text) = value.get("text") {
            let text = text.as_str().ok_or_else(|| error("\"text\" must be a string".into()))?;
            return Ok(Self::from_text(text));
        }
        if let Some(tokens) = value.get("tokens") {
            let tokens: Vec<String> = serde_json::from_value(tokens.clone())
                .map_err(|_| error("\"tokens\" must be an array of strings".into()))?;
            if let Some(t) = tokens.iter().find(|t| t.trim().is_empty() || t.chars().any(char::is_whitespace)) {
                return Err(error(format!("token {t:?} is empty or contains whitespace")));
            }
            return Ok(Self::from_tokens(&tokens));
        }
        Err(error("expected an object with \"text\" or \"tokens\"".into()))
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

/// One output line of `predict`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The input text.
    pub text: String,
    /// Entities, in text order.
    pub entities: Vec<EntityOut>,
    /// The words.
    pub tokens: Vec<String>,
    /// One tag per word.
    pub tags: Vec<String>,
}

impl Prediction {
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
        let p = Prediction::new(&input, &preds, &labels);
        assert_eq!(p.entities.len(), 1);
        let e = &p.entities[0];
        assert_eq!((e.text.as_str(), e.start, e.end), ("neurofibromatosis type 1", 22, 46));
        assert!((e.score - 0.7).abs() < 1e-6);
        assert_eq!(p.tags.len(), p.tokens.len());
    }

    #[test]
    fn parses_text_tokens_and_rejects_bad_lines() {
        let a = PredictionInput::parse_line(r#"{"tokens": ["BRCA1", "cancer"]}"#, "in", 1).unwrap();
        assert_eq!(a.text, "BRCA1 cancer");
        assert_eq!((a.words[1].start, a.words[1].end), (6, 12));
        let b = PredictionInput::parse_line(r#"{"text": "a, b"}"#, "in", 1).unwrap();
        assert_eq!(b.word_texts(), ["a", ",", "b"]);
        let c = PredictionInput::parse_line("plain text", "in", 1).unwrap();
        assert_eq!(c.words.len(), 2);
        for bad in [r#"{"text": 3}"#, r#"{"tokens": "x"}"#, r#"{"other": 1}"#, "{broken", r#"{"tokens": ["a b"]}"#] {
            let err = PredictionInput::parse_line(bad, "in.jsonl", 7).unwrap_err().to_string();
            assert!(err.starts_with("in.jsonl:7: "), "{err}");
        }
    }
}
