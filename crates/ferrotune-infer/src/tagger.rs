//! Batched tagging: windows sorted by length, padded per batch, the first
//! sub-token of each owned word read back.

use std::path::Path;

use candle_core::{Device, Tensor, D};
use ferrotune_model::{Batch, Head, Mode, TokenClassifier};
use ferrotune_text::{Window, WordTokenizer};

use crate::InferError;

/// The predicted tag of a word and its probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WordPrediction {
    /// Tag id.
    pub label: usize,
    /// Softmax probability of that tag.
    pub score: f32,
}

/// Predicts every word of every sentence, each given as its windows (see
/// `ferrotune_text::windows_for_sentence`), `words[i]` being the word count
/// of sentence `i`. Windows are run in batches of similar length.
pub fn predict_windows(
    model: &TokenClassifier,
    sentences: &[Vec<Window>],
    words: &[usize],
    pad_id: u32,
    batch_size: usize,
) -> Result<Vec<Vec<WordPrediction>>, InferError> {
    let mut out: Vec<Vec<WordPrediction>> =
        words.iter().map(|&n| vec![WordPrediction { label: 0, score: 0.0 }; n]).collect();
    let mut order: Vec<(usize, &Window)> =
        sentences.iter().enumerate().flat_map(|(s, ws)| ws.iter().map(move |w| (s, w))).collect();
    order.sort_by_key(|(_, w)| std::cmp::Reverse(w.input_ids.len()));
    for chunk in order.chunks(batch_size.max(1)) {
        let ids: Vec<&[u32]> = chunk.iter().map(|(_, w)| w.input_ids.as_slice()).collect();
        let batch = Batch::pad(&ids, pad_id)?;
        let logits = model.forward(&batch, &mut Mode::Eval)?;
        let probs: Tensor = candle_nn::ops::softmax_last_dim(&logits)?;
        let labels: Vec<Vec<u32>> = probs.argmax(D::Minus1)?.to_vec2()?;
        let probs: Vec<Vec<Vec<f32>>> = probs.to_vec3()?;
        for (row, (sentence, window)) in chunk.iter().enumerate() {
            for &(pos, word) in &window.word_positions {
                let label = labels[row][pos] as usize;
                out[*sentence][word] = WordPrediction { label, score: probs[row][pos][label] };
            }
        }
    }
    Ok(out)
}

/// A fine-tuned model with its tokenizer, ready to tag text.
pub struct Tagger {
    /// The model.
    pub model: TokenClassifier,
    /// Its tokenizer.
    pub tokenizer: WordTokenizer,
    /// Maximum tokens per window.
    pub max_len: usize,
    /// Windows per forward pass.
    pub batch_size: usize,
}

impl Tagger {
    /// Loads a fine-tuned model folder (`config.json` with `id2label`,
    /// `model.safetensors` with `classifier.*`, tokenizer files).
    /// The model runs on `device`.
    pub fn load(dir: &Path, max_len: usize, batch_size: usize, device: &Device) -> Result<Self, InferError> {
        Ok(Self {
            model: TokenClassifier::from_pretrained_on(dir, Head::Saved, device)?.frozen()?,
            tokenizer: WordTokenizer::from_dir(dir)?,
            max_len,
            batch_size,
        })
    }

    /// Tags pre-split sentences; returns, per sentence, how many were split
    /// into several windows and one prediction per word.
    pub fn tag(&self, sentences: &[Vec<String>]) -> Result<(usize, Vec<Vec<WordPrediction>>), InferError> {
        let windows = sentences
            .iter()
            .map(|words| self.tokenizer.windows(words, self.max_len))
            .collect::<Result<Vec<_>, _>>()?;
        let split = windows.iter().filter(|w| w.len() > 1).count();
        let words: Vec<usize> = sentences.iter().map(|s| s.len()).collect();
        let predictions = predict_windows(&self.model, &windows, &words, self.tokenizer.pad_id, self.batch_size)?;
        Ok((split, predictions))
    }

    /// The tag names of predictions.
    pub fn tag_names(&self, predictions: &[WordPrediction]) -> Vec<String> {
        predictions.iter().map(|p| self.model.labels[p.label].clone()).collect()
    }
}
