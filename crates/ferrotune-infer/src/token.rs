//! Batched tagging: windows sorted by length, padded per batch, the first
//! sub-token of each owned word read back.

use candle_core::{Tensor, D};
use ferrotune_model::{Batch, Mode, TokenClassifier};
use ferrotune_text::{Window, WordTokenizer};

use crate::batches::group_by_model;
use crate::{BatchLimits, InferError};

/// The predicted tag of a word and its probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WordPrediction {
    /// Tag id.
    pub label: usize,
    /// Softmax probability of that tag.
    pub score: f32,
}

/// Sentences (lists of words) made into model windows.
pub struct WindowedSentences {
    /// The windows of each sentence (see `ferrotune_text::windows_for_sentence`).
    pub windows: Vec<Vec<Window>>,
    /// The word count of each sentence.
    pub words: Vec<usize>,
    /// How many sentences were longer than `max_len` and split.
    pub split: usize,
}

impl WindowedSentences {
    /// Tokenizes every sentence into windows of at most `max_len` tokens.
    pub fn new(tokenizer: &WordTokenizer, sentences: &[Vec<String>], max_len: usize) -> Result<Self, InferError> {
        let windows = sentences.iter().map(|words| tokenizer.windows(words, max_len)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            split: windows.iter().filter(|w| w.len() > 1).count(),
            words: sentences.iter().map(Vec::len).collect(),
            windows,
        })
    }
}

/// Predicts every word of every sentence; windows are run in batches of
/// similar length within `limits`.
pub fn tag_windows(
    model: &TokenClassifier,
    sentences: &WindowedSentences,
    pad_id: u32,
    limits: BatchLimits,
) -> Result<Vec<Vec<WordPrediction>>, InferError> {
    tag_windows_grouped(&[model], &vec![0; sentences.words.len()], sentences, pad_id, limits)
}

/// [`tag_windows`] with each sentence tagged by its own model,
/// `models[model_of[sentence]]`: models that share one base and differ in
/// their LoRA adapters and heads (see `TokenClassifier::forward_grouped`),
/// mixed in one forward pass.
pub fn tag_windows_grouped(
    models: &[&TokenClassifier],
    model_of: &[usize],
    sentences: &WindowedSentences,
    pad_id: u32,
    limits: BatchLimits,
) -> Result<Vec<Vec<WordPrediction>>, InferError> {
    let mut out: Vec<Vec<WordPrediction>> =
        sentences.words.iter().map(|&n| vec![WordPrediction { label: 0, score: 0.0 }; n]).collect();
    let mut order: Vec<(usize, &Window)> =
        sentences.windows.iter().enumerate().flat_map(|(s, ws)| ws.iter().map(move |w| (s, w))).collect();
    order.sort_by_key(|(_, w)| std::cmp::Reverse(w.input_ids.len()));
    let lengths: Vec<usize> = order.iter().map(|(_, w)| w.input_ids.len()).collect();
    for range in limits.split(&lengths) {
        let (chunk, groups) = group_by_model(&order[range], |(sentence, _)| model_of[*sentence]);
        let ids: Vec<&[u32]> = chunk.iter().map(|(_, w)| w.input_ids.as_slice()).collect();
        let batch = Batch::pad(&ids, pad_id)?;
        let logits = match groups.as_slice() {
            [(_, model)] => vec![models[*model].forward(&batch, &mut Mode::Eval)?],
            _ => {
                let groups: Vec<_> = groups.iter().map(|(rows, m)| (rows.clone(), models[*m])).collect();
                groups[0].1.forward_grouped(&batch, &groups)?
            }
        };
        for ((rows, _), logits) in groups.iter().zip(logits) {
            let probs: Tensor = candle_nn::ops::softmax_last_dim(&logits)?;
            let labels: Vec<Vec<u32>> = probs.argmax(D::Minus1)?.to_vec2()?;
            let probs: Vec<Vec<Vec<f32>>> = probs.to_vec3()?;
            for (row, (sentence, window)) in chunk[rows.clone()].iter().enumerate() {
                for &(pos, word) in &window.word_positions {
                    let label = labels[row][pos] as usize;
                    out[*sentence][word] = WordPrediction { label, score: probs[row][pos][label] };
                }
            }
        }
    }
    Ok(out)
}
