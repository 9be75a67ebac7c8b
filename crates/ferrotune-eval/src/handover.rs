//! Knowing when to hand over: how well an assistant's answer score tells
//! answers it gets right from the rest (AUROC, as scikit-learn's
//! `roc_auc_score`, ties counted half), the coverage-against-precision curve
//! over score thresholds, the threshold calibrated on a dev set, and the
//! report of a labelled question set.

use serde::{Deserialize, Serialize};

/// The area under the ROC curve of `scores` for telling `positive` items
/// from the others: the chance that a random positive scores above a random
/// negative, ties counted half. `None` when either class is empty.
pub fn auroc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), positive.len(), "one label per score");
    let positives = positive.iter().filter(|p| **p).count();
    let negatives = positive.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Mann-Whitney U: the rank sum of the positives, tied scores sharing the mean of their ranks.
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let end = start + order[start..].iter().take_while(|&&i| scores[i] == scores[order[start]]).count();
        let mean_rank = (start + 1 + end) as f64 / 2.0;
        positive_rank_sum += mean_rank * order[start..end].iter().filter(|&&i| positive[i]).count() as f64;
        start = end;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((positive_rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// The answers an assistant gives above one score threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CoveragePoint {
    /// Questions scoring at least this are answered, the others handed over.
    pub threshold: f32,
    /// How many are answered.
    pub answered: usize,
    /// How many of those are answered correctly.
    pub correct: usize,
    /// The share of all questions answered.
    pub coverage: f64,
    /// The share of answered questions answered correctly (1 when none is).
    pub precision: f64,
}

/// Coverage and precision at every distinct score taken as the threshold,
/// highest first (so coverage grows along the curve). `correct[i]` says
/// whether question `i`'s answer is right (always false when the question
/// is out of scope).
pub fn coverage_curve(scores: &[f32], correct: &[bool]) -> Vec<CoveragePoint> {
    assert_eq!(scores.len(), correct.len(), "one label per score");
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut curve = Vec::new();
    let (mut answered, mut right) = (0, 0);
    for (k, &i) in order.iter().enumerate() {
        answered += 1;
        right += usize::from(correct[i]);
        if order.get(k + 1).is_some_and(|&next| scores[next] == scores[i]) {
            continue;
        }
        curve.push(CoveragePoint {
            threshold: scores[i],
            answered,
            correct: right,
            coverage: answered as f64 / scores.len() as f64,
            precision: right as f64 / answered as f64,
        });
    }
    curve
}

/// The hand-over threshold calibrated on a dev set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The lowest threshold at which the dev answers are at least the target
    /// precision correct; when no threshold reaches it, just above the
    /// highest dev score (everything is handed over).
    pub threshold: f32,
    /// The precision asked for.
    pub target_precision: f64,
    /// The dev precision at the threshold (1 when nothing is answered).
    pub precision: f64,
    /// The dev coverage at the threshold.
    pub coverage: f64,
    /// Whether a threshold reached the target.
    pub reached: bool,
}

/// The lowest score threshold whose answers on the dev set (`scores`,
/// `correct` as in [`coverage_curve`]) are at least `target_precision`
/// correct.
pub fn calibrate(scores: &[f32], correct: &[bool], target_precision: f64) -> Calibration {
    let curve = coverage_curve(scores, correct);
    match curve.iter().rev().find(|p| p.precision >= target_precision) {
        Some(point) => Calibration {
            threshold: point.threshold,
            target_precision,
            precision: point.precision,
            coverage: point.coverage,
            reached: true,
        },
        None => Calibration {
            threshold: curve.first().map_or(0.0, |p| p.threshold.next_up()),
            target_precision,
            precision: 1.0,
            coverage: 0.0,
            reached: false,
        },
    }
}

/// How an assistant did on one labelled question.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JudgedAnswer {
    /// The score of its top answer.
    pub score: f32,
    /// Whether the question is one the FAQ answers.
    pub in_scope: bool,
    /// Whether the top answer is right (never for an out-of-scope question).
    pub correct: bool,
    /// Whether the assistant handed it over instead of answering.
    pub handoff: bool,
}

/// The hand-over report of a labelled question set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandoverReport {
    /// Questions in all.
    pub questions: usize,
    /// Questions the FAQ answers.
    pub in_scope: usize,
    /// Questions it does not.
    pub out_of_scope: usize,
    /// The share of in-scope questions whose top answer is right, handed over or not.
    pub accuracy: f64,
    /// AUROC of the score for right top answers against the rest.
    pub auroc_correct: Option<f64>,
    /// AUROC of the score for in-scope questions against out-of-scope ones.
    pub auroc_in_scope: Option<f64>,
    /// The share of all questions answered (not handed over).
    pub coverage: f64,
    /// The share of answered questions answered correctly (1 when none is).
    pub precision: f64,
    /// The share of in-scope questions answered, and answered correctly.
    pub in_scope_answered_correctly: f64,
    /// The share of out-of-scope questions handed over (`None` without any).
    pub out_of_scope_handed_over: Option<f64>,
    /// Coverage and precision at every score threshold (not in the JSON report).
    #[serde(skip)]
    pub curve: Vec<CoveragePoint>,
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl HandoverReport {
    /// The report of `answers`.
    pub fn compute(answers: &[JudgedAnswer]) -> Self {
        let count = |f: &dyn Fn(&JudgedAnswer) -> bool| answers.iter().filter(|a| f(a)).count();
        let scores: Vec<f32> = answers.iter().map(|a| a.score).collect();
        let correct: Vec<bool> = answers.iter().map(|a| a.correct).collect();
        let in_scope_flags: Vec<bool> = answers.iter().map(|a| a.in_scope).collect();
        let in_scope = count(&|a| a.in_scope);
        let out_of_scope = answers.len() - in_scope;
        let answered = count(&|a| !a.handoff);
        let answered_correctly = count(&|a| !a.handoff && a.correct);
        HandoverReport {
            questions: answers.len(),
            in_scope,
            out_of_scope,
            accuracy: share(count(&|a| a.correct), in_scope),
            auroc_correct: auroc(&scores, &correct),
            auroc_in_scope: auroc(&scores, &in_scope_flags),
            coverage: share(answered, answers.len()),
            precision: if answered == 0 { 1.0 } else { share(answered_correctly, answered) },
            in_scope_answered_correctly: share(answered_correctly, in_scope),
            out_of_scope_handed_over: (out_of_scope > 0)
                .then(|| share(count(&|a| !a.in_scope && a.handoff), out_of_scope)),
            curve: coverage_curve(&scores, &correct),
        }
    }

    /// The report as text.
    pub fn to_table(&self) -> String {
        let optional = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
        let rows = [
            ("questions", self.questions.to_string()),
            ("in scope", self.in_scope.to_string()),
            ("out of scope", self.out_of_scope.to_string()),
            ("accuracy@1 (in scope)", format!("{:.4}", self.accuracy)),
            ("AUROC right vs rest", optional(self.auroc_correct)),
            ("AUROC in vs out of scope", optional(self.auroc_in_scope)),
            ("coverage", format!("{:.4}", self.coverage)),
            ("precision", format!("{:.4}", self.precision)),
            ("in scope answered right", format!("{:.4}", self.in_scope_answered_correctly)),
            ("out of scope handed over", optional(self.out_of_scope_handed_over)),
        ];
        rows.iter().map(|(name, value)| format!("{name:>26}  {value}\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_counts_ties_half() {
        assert_eq!(auroc(&[0.9, 0.1], &[true, false]), Some(1.0));
        assert_eq!(auroc(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(auroc(&[0.1, 0.5, 0.5, 0.9], &[false, true, false, true]), Some(0.875));
        assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn calibration_takes_the_lowest_threshold_that_reaches_the_target() {
        // Scores high to low: right, right, wrong, right, wrong.
        let scores = [0.9, 0.8, 0.7, 0.6, 0.5];
        let correct = [true, true, false, true, false];
        let curve = coverage_curve(&scores, &correct);
        assert_eq!(curve.iter().map(|p| p.correct).collect::<Vec<_>>(), [1, 2, 2, 3, 3]);
        let c = calibrate(&scores, &correct, 0.75);
        assert_eq!((c.threshold, c.precision, c.coverage, c.reached), (0.6, 0.75, 0.8, true));
        let c = calibrate(&scores, &[false; 5], 0.9);
        assert!(!c.reached && c.threshold > 0.9 && c.coverage == 0.0);
    }

    #[test]
    fn report_counts_hand_overs() {
        let a = |score, in_scope, correct, handoff| JudgedAnswer { score, in_scope, correct, handoff };
        let report = HandoverReport::compute(&[
            a(0.9, true, true, false),
            a(0.8, true, false, false),
            a(0.3, true, true, true),
            a(0.4, false, false, true),
        ]);
        assert_eq!((report.in_scope, report.out_of_scope), (3, 1));
        assert!((report.accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((report.coverage, report.precision), (0.5, 0.5));
        assert!((report.in_scope_answered_correctly - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(report.out_of_scope_handed_over, Some(1.0));
        assert_eq!(report.auroc_in_scope, Some(2.0 / 3.0));
        assert!(report.to_table().contains("AUROC in vs out of scope  0.6667"));
    }
}
