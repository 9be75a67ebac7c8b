//! Labelled data encoded for a model and scored with the metrics of the
//! Python tools: used by `FineTuned::evaluate` and by the trainer's dev pass,
//! so each task's evaluation is written once.

use std::path::Path;

use ferrotune_data::{encode_target, read_tagged, read_texts, LabelSet, SequenceKind, Target, Task};
use ferrotune_eval::{ClassReport, MultilabelReport, RegressionReport, Report, TaskReport, TextReport};
use ferrotune_text::{EncodedText, WordTokenizer};

use crate::{decide, score_encoded, tag_windows, BatchLimits, Decision, InferError, TaskModel, WindowedSentences};

/// A labelled file, encoded once for a model's tokenizer and labels.
pub enum EvalSet {
    /// Tagged sentences (NER).
    Entities {
        /// The sentences' model windows.
        sentences: WindowedSentences,
        /// The gold tags.
        gold: Vec<Vec<String>>,
    },
    /// Labelled texts or pairs (sequence tasks).
    Texts {
        /// What the head predicts.
        kind: SequenceKind,
        /// The encoded inputs.
        inputs: Vec<EncodedText>,
        /// The gold answers.
        gold: Vec<Target>,
        /// Inputs cut to `max_len`.
        cut: usize,
    },
}

impl EvalSet {
    /// Reads a labelled file for a `task` model with `labels`; a label the
    /// model does not know is an error naming the file and line.
    pub fn read(
        path: &Path,
        task: Task,
        labels: &[String],
        tokenizer: &WordTokenizer,
        max_len: usize,
    ) -> Result<Self, InferError> {
        match task {
            Task::Ner => {
                let tagged = read_tagged(path)?;
                LabelSet::from_labels(labels.to_vec())?.encode(&tagged)?;
                let words: Vec<Vec<String>> = tagged.iter().map(|s| s.tokens.clone()).collect();
                let sentences = WindowedSentences::new(tokenizer, &words, max_len)?;
                Ok(EvalSet::Entities { sentences, gold: tagged.into_iter().map(|s| s.tags).collect() })
            }
            Task::Sequence(kind) => {
                let examples = read_texts(path, true)?;
                let gold = examples.iter().map(|e| encode_target(kind, labels, e)).collect::<Result<_, _>>()?;
                let inputs: Vec<EncodedText> = examples
                    .iter()
                    .map(|e| tokenizer.encode_text(&e.text_a, e.text_b.as_deref(), max_len))
                    .collect::<Result<_, _>>()?;
                let cut = inputs.iter().filter(|e| e.input_ids.len() >= max_len).count();
                Ok(EvalSet::Texts { kind, inputs, gold, cut })
            }
            Task::Retrieval => Err(InferError::RetrievalModel),
        }
    }

    /// Sentences or texts in the set.
    pub fn len(&self) -> usize {
        match self {
            EvalSet::Entities { gold, .. } => gold.len(),
            EvalSet::Texts { gold, .. } => gold.len(),
        }
    }

    /// Whether the set is empty (readers refuse empty files).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sentences split into windows, or texts cut, for being longer than
    /// `max_len` tokens.
    pub fn long_inputs(&self) -> usize {
        match self {
            EvalSet::Entities { sentences, .. } => sentences.split,
            EvalSet::Texts { cut, .. } => *cut,
        }
    }

    /// Scores `model` on the set (multilabel decisions at `threshold`),
    /// in forward passes within `limits`.
    pub fn evaluate(
        &self,
        model: &TaskModel,
        pad_id: u32,
        limits: BatchLimits,
        threshold: f32,
    ) -> Result<TaskReport, InferError> {
        match (self, model) {
            (EvalSet::Entities { sentences, gold }, TaskModel::Token(model)) => {
                let predictions = tag_windows(model, sentences, pad_id, limits)?;
                let predicted: Vec<Vec<String>> =
                    predictions.iter().map(|s| s.iter().map(|p| model.labels[p.label].clone()).collect()).collect();
                Ok(TaskReport::Entities(Report::compute(gold, &predicted)))
            }
            (EvalSet::Texts { kind, inputs, gold, .. }, TaskModel::Sequence(model)) => {
                let scores = score_encoded(model, inputs, pad_id, limits)?;
                Ok(TaskReport::Text(text_report(*kind, &model.labels, gold, &scores, threshold)))
            }
            (_, model) => Err(InferError::TaskMismatch { model: model.task() }),
        }
    }
}

/// The report of a sequence model's scores against the gold targets.
fn text_report(
    kind: SequenceKind,
    labels: &[String],
    gold: &[Target],
    scores: &[Vec<f32>],
    threshold: f32,
) -> TextReport {
    let decisions: Vec<Decision> = scores.iter().map(|s| decide(kind, s, threshold)).collect();
    // `encode_target` and `decide` give the variants of `kind`; the others
    // cannot occur.
    match kind {
        SequenceKind::Multilabel => {
            let classes = |t: &Target| match t {
                Target::Classes(c) => c.clone(),
                _ => unreachable!("multilabel targets are class lists"),
            };
            let predicted = decisions.iter().map(|d| match d {
                Decision::Classes(c) => c.clone(),
                _ => unreachable!("multilabel decisions are class lists"),
            });
            let truth: Vec<Vec<usize>> = gold.iter().map(classes).collect();
            TextReport::Multilabel(MultilabelReport::compute(labels, &truth, &predicted.collect::<Vec<_>>()))
        }
        SequenceKind::Regression => {
            let truth = gold.iter().map(|t| match t {
                Target::Value(v) => *v as f64,
                _ => unreachable!("regression targets are values"),
            });
            let predicted: Vec<f64> = scores.iter().map(|s| s[0] as f64).collect();
            TextReport::Regression(RegressionReport::compute(&truth.collect::<Vec<_>>(), &predicted))
        }
        SequenceKind::Classify => {
            let truth = gold.iter().map(|t| match t {
                Target::Class(c) => *c,
                _ => unreachable!("classify targets are classes"),
            });
            let predicted = decisions.iter().map(|d| match d {
                Decision::Class(c) => *c,
                _ => unreachable!("classify decisions are classes"),
            });
            TextReport::Classes(ClassReport::compute(
                labels,
                &truth.collect::<Vec<_>>(),
                &predicted.collect::<Vec<_>>(),
            ))
        }
    }
}
