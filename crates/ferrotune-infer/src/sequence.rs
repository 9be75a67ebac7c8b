//! Batched sequence classification: texts or text pairs encoded with the
//! model's special tokens and segment ids, run in batches of similar length,
//! and scored per label.

use ferrotune_data::SequenceKind;
use ferrotune_model::{Batch, Mode, SequenceClassifier};
use ferrotune_text::EncodedText;

use crate::{BatchLimits, InferError};

/// Per-label scores of every encoded input (softmax or sigmoid
/// probabilities, or the regression value), in input order.
pub fn score_encoded(
    model: &SequenceClassifier,
    inputs: &[EncodedText],
    pad_id: u32,
    limits: BatchLimits,
) -> Result<Vec<Vec<f32>>, InferError> {
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(inputs[i].input_ids.len()));
    let mut out = vec![Vec::new(); inputs.len()];
    let lengths: Vec<usize> = order.iter().map(|&i| inputs[i].input_ids.len()).collect();
    for range in limits.split(&lengths) {
        let chunk = &order[range];
        let ids: Vec<&[u32]> = chunk.iter().map(|&i| inputs[i].input_ids.as_slice()).collect();
        let types: Vec<&[u32]> = chunk.iter().map(|&i| inputs[i].type_ids.as_slice()).collect();
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
pub fn decide(kind: SequenceKind, scores: &[f32], threshold: f32) -> Decision {
    match kind {
        SequenceKind::Multilabel => Decision::Classes((0..scores.len()).filter(|&c| scores[c] >= threshold).collect()),
        SequenceKind::Regression => Decision::Value(scores[0]),
        SequenceKind::Classify => {
            let best = (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).expect("at least one class");
            Decision::Class(best)
        }
    }
}
