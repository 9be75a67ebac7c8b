//! Batched sequence classification: texts or text pairs encoded with the
//! model's special tokens and segment ids, run in batches of similar length,
//! and scored per label.

use ferrotune_data::SequenceKind;
use ferrotune_model::{Batch, Mode, SequenceClassifier};
use ferrotune_text::EncodedText;

use crate::batches::group_by_model;
use crate::{BatchLimits, InferError};

/// Per-label scores of every encoded input (softmax or sigmoid
/// probabilities, or the regression value), in input order.
pub fn score_encoded(
    model: &SequenceClassifier,
    inputs: &[EncodedText],
    pad_id: u32,
    limits: BatchLimits,
) -> Result<Vec<Vec<f32>>, InferError> {
    score_encoded_grouped(&[model], &vec![0; inputs.len()], inputs, pad_id, limits)
}

/// [`score_encoded`] with each input scored by its own model,
/// `models[model_of[input]]`: models that share one base and differ in
/// their LoRA adapters and heads (see `SequenceClassifier::forward_grouped`),
/// mixed in one forward pass.
pub fn score_encoded_grouped(
    models: &[&SequenceClassifier],
    model_of: &[usize],
    inputs: &[EncodedText],
    pad_id: u32,
    limits: BatchLimits,
) -> Result<Vec<Vec<f32>>, InferError> {
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(inputs[i].input_ids.len()));
    let mut out = vec![Vec::new(); inputs.len()];
    let lengths: Vec<usize> = order.iter().map(|&i| inputs[i].input_ids.len()).collect();
    for range in limits.split(&lengths) {
        let (chunk, groups) = group_by_model(&order[range], |&i| model_of[i]);
        let ids: Vec<&[u32]> = chunk.iter().map(|&i| inputs[i].input_ids.as_slice()).collect();
        let types: Vec<&[u32]> = chunk.iter().map(|&i| inputs[i].type_ids.as_slice()).collect();
        let batch = Batch::pad_segments(&ids, Some(&types), pad_id)?;
        let logits = match groups.as_slice() {
            [(_, model)] => vec![models[*model].forward(&batch, &mut Mode::Eval)?],
            _ => {
                let groups: Vec<_> = groups.iter().map(|(rows, m)| (rows.clone(), models[*m])).collect();
                groups[0].1.forward_grouped(&batch, &groups)?
            }
        };
        for ((rows, model), logits) in groups.iter().zip(logits) {
            for (&i, row) in chunk[rows.clone()].iter().zip(models[*model].scores(&logits)?) {
                out[i] = row;
            }
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
