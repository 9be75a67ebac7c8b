//! Text-level metrics with the numbers scikit-learn gives:
//! `classification_report` and `confusion_matrix` for one class per text,
//! micro/macro F1 and subset accuracy for multilabel, MSE, Pearson and
//! Spearman for regression.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::{divide, scores};
use crate::Scores;

/// The report of a single-label classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    /// Fraction of texts whose class is right.
    pub accuracy: f64,
    /// Unweighted mean over classes (precision, recall and F1 each averaged).
    #[serde(rename = "macro")]
    pub macro_avg: Scores,
    /// Mean over classes weighted by support.
    pub weighted: Scores,
    /// One row per class present in the truth or the predictions.
    pub per_class: BTreeMap<String, Scores>,
    /// The classes of the matrix, in label-id order.
    pub classes: Vec<String>,
    /// `confusion[t][p]`: texts of true class `classes[t]` predicted as `classes[p]`.
    pub confusion: Vec<Vec<usize>>,
    /// Number of texts.
    pub texts: usize,
}

/// Averages `rows` (unweighted and by support) as scikit-learn does.
fn averages(rows: &[Scores]) -> (Scores, Scores) {
    let n = rows.len() as f64;
    let support: usize = rows.iter().map(|r| r.support).sum();
    let mean = |f: fn(&Scores) -> f64| divide(rows.iter().map(f).sum::<f64>(), n);
    let weighted =
        |f: fn(&Scores) -> f64| divide(rows.iter().map(|r| f(r) * r.support as f64).sum::<f64>(), support as f64);
    (
        Scores { precision: mean(|s| s.precision), recall: mean(|s| s.recall), f1: mean(|s| s.f1), support },
        Scores {
            precision: weighted(|s| s.precision),
            recall: weighted(|s| s.recall),
            f1: weighted(|s| s.f1),
            support,
        },
    )
}

impl ClassReport {
    /// Compares predicted class ids with true ones; `labels` names the ids.
    pub fn compute(labels: &[String], truth: &[usize], predicted: &[usize]) -> Self {
        assert_eq!(truth.len(), predicted.len(), "one prediction per text");
        let mut present = vec![false; labels.len()];
        for &c in truth.iter().chain(predicted) {
            present[c] = true;
        }
        let ids: Vec<usize> = (0..labels.len()).filter(|&c| present[c]).collect();
        let index: BTreeMap<usize, usize> = ids.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        let mut confusion = vec![vec![0usize; ids.len()]; ids.len()];
        for (&t, &p) in truth.iter().zip(predicted) {
            confusion[index[&t]][index[&p]] += 1;
        }
        let rows: Vec<Scores> = (0..ids.len())
            .map(|i| {
                let predicted_i = confusion.iter().map(|row| row[i]).sum();
                scores(confusion[i][i], predicted_i, confusion[i].iter().sum())
            })
            .collect();
        let (macro_avg, weighted) = averages(&rows);
        let correct = truth.iter().zip(predicted).filter(|(t, p)| t == p).count();
        Self {
            accuracy: divide(correct as f64, truth.len() as f64),
            macro_avg,
            weighted,
            per_class: ids.iter().zip(&rows).map(|(&c, r)| (labels[c].clone(), *r)).collect(),
            classes: ids.iter().map(|&c| labels[c].clone()).collect(),
            confusion,
            texts: truth.len(),
        }
    }

    /// The report as text: per-class rows, accuracy, averages, then the
    /// confusion matrix (rows true, columns predicted).
    pub fn to_table(&self) -> String {
        let width = self.classes.iter().map(String::len).max().unwrap_or(0).max(12);
        let mut out = format!("{:>width$}  precision    recall  f1-score   support\n\n", "");
        for (name, s) in &self.per_class {
            out += &format!("{name:>width$}  {:>9.4} {:>9.4} {:>9.4} {:>9}\n", s.precision, s.recall, s.f1, s.support);
        }
        out += &format!("\n{:>width$}  {:>9} {:>9} {:>9.4} {:>9}\n", "accuracy", "", "", self.accuracy, self.texts);
        for (name, s) in [("macro avg", &self.macro_avg), ("weighted avg", &self.weighted)] {
            out += &format!("{name:>width$}  {:>9.4} {:>9.4} {:>9.4} {:>9}\n", s.precision, s.recall, s.f1, s.support);
        }
        if self.classes.len() <= 20 {
            out += "\nconfusion matrix (rows: true, columns: predicted)\n";
            let cell = self.confusion.iter().flatten().max().map_or(1, |m| m.to_string().len()).max(3);
            out += &format!("{:>width$}", "");
            for i in 0..self.classes.len() {
                out += &format!(" {:>cell$}", i);
            }
            out += "\n";
            for (i, row) in self.confusion.iter().enumerate() {
                out += &format!("{:<width$}", format!("{i} {}", self.classes[i]));
                for n in row {
                    out += &format!(" {n:>cell$}");
                }
                out += "\n";
            }
        }
        out
    }
}

/// The report of a multilabel classifier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MultilabelReport {
    /// Fraction of texts whose whole label set is exactly right.
    pub subset_accuracy: f64,
    /// Over all (text, label) decisions at once.
    pub micro: Scores,
    /// Unweighted mean over labels.
    #[serde(rename = "macro")]
    pub macro_avg: Scores,
    /// Mean over labels weighted by support.
    pub weighted: Scores,
    /// One row per label.
    pub per_class: BTreeMap<String, Scores>,
    /// Number of texts.
    pub texts: usize,
}

impl MultilabelReport {
    /// Compares predicted label sets with true ones (ids into `labels`).
    pub fn compute(labels: &[String], truth: &[Vec<usize>], predicted: &[Vec<usize>]) -> Self {
        assert_eq!(truth.len(), predicted.len(), "one prediction per text");
        let (mut tp, mut pred, mut support) = (vec![0; labels.len()], vec![0; labels.len()], vec![0; labels.len()]);
        let mut exact = 0;
        for (t, p) in truth.iter().zip(predicted) {
            let mut ts = t.clone();
            let mut ps = p.clone();
            ts.sort_unstable();
            ts.dedup();
            ps.sort_unstable();
            ps.dedup();
            exact += usize::from(ts == ps);
            for &c in &ts {
                support[c] += 1;
                tp[c] += usize::from(ps.binary_search(&c).is_ok());
            }
            for &c in &ps {
                pred[c] += 1;
            }
        }
        let rows: Vec<Scores> = (0..labels.len()).map(|c| scores(tp[c], pred[c], support[c])).collect();
        let (macro_avg, weighted) = averages(&rows);
        Self {
            subset_accuracy: divide(exact as f64, truth.len() as f64),
            micro: scores(tp.iter().sum(), pred.iter().sum(), support.iter().sum()),
            macro_avg,
            weighted,
            per_class: labels.iter().cloned().zip(rows).collect(),
            texts: truth.len(),
        }
    }

    /// The report as text.
    pub fn to_table(&self) -> String {
        let width = self.per_class.keys().map(String::len).max().unwrap_or(0).max(15);
        let mut out = format!("{:>width$}  precision    recall  f1-score   support\n\n", "");
        let rows = self.per_class.iter().map(|(n, s)| (n.as_str(), s));
        let averages = [("micro avg", &self.micro), ("macro avg", &self.macro_avg), ("weighted avg", &self.weighted)];
        for (i, (name, s)) in rows.chain(averages).enumerate() {
            if i == self.per_class.len() {
                out += "\n";
            }
            out += &format!("{name:>width$}  {:>9.4} {:>9.4} {:>9.4} {:>9}\n", s.precision, s.recall, s.f1, s.support);
        }
        out += &format!("{:>width$}  {:>29.4} {:>9}\n", "subset accuracy", self.subset_accuracy, self.texts);
        out
    }
}

/// The report of a regression model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegressionReport {
    /// Mean squared error.
    pub mse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Pearson correlation (0 when either side is constant).
    pub pearson: f64,
    /// Spearman rank correlation, ties given their mean rank.
    pub spearman: f64,
    /// Number of texts.
    pub texts: usize,
}

impl RegressionReport {
    /// Compares predicted values with true ones.
    pub fn compute(truth: &[f64], predicted: &[f64]) -> Self {
        assert_eq!(truth.len(), predicted.len(), "one prediction per text");
        let n = truth.len() as f64;
        let mse = divide(truth.iter().zip(predicted).map(|(t, p)| (t - p).powi(2)).sum(), n);
        let mae = divide(truth.iter().zip(predicted).map(|(t, p)| (t - p).abs()).sum(), n);
        Self {
            mse,
            mae,
            pearson: pearson(truth, predicted),
            spearman: pearson(&ranks(truth), &ranks(predicted)),
            texts: truth.len(),
        }
    }

    /// The report as text.
    pub fn to_table(&self) -> String {
        format!(
            "     mse  {:.6}\n     mae  {:.6}\n pearson  {:.6}\nspearman  {:.6}\n   texts  {}\n",
            self.mse, self.mae, self.pearson, self.spearman, self.texts
        )
    }
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (divide(x.iter().sum(), n), divide(y.iter().sum(), n));
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    divide(cov, (vx * vy).sqrt())
}

/// 1-based ranks, ties sharing their mean rank.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
            end += 1;
        }
        let mean = (start + end) as f64 / 2.0 + 1.0;
        for &i in &order[start..=end] {
            ranks[i] = mean;
        }
        start = end + 1;
    }
    ranks
}

/// The report of any sequence-level task.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TextReport {
    /// One class per text.
    Classes(ClassReport),
    /// Any number of classes per text.
    Multilabel(MultilabelReport),
    /// One number per text.
    Regression(RegressionReport),
}

impl TextReport {
    /// The number that picks the best epoch (higher is better): macro F1,
    /// micro F1, or negative MSE.
    pub fn score(&self) -> f64 {
        match self {
            TextReport::Classes(r) => r.macro_avg.f1,
            TextReport::Multilabel(r) => r.micro.f1,
            TextReport::Regression(r) => -r.mse,
        }
    }

    /// One line for logs.
    pub fn summary(&self) -> String {
        match self {
            TextReport::Classes(r) => format!("accuracy {:.4} macro F1 {:.4}", r.accuracy, r.macro_avg.f1),
            TextReport::Multilabel(r) => {
                format!(
                    "micro F1 {:.4} macro F1 {:.4} subset accuracy {:.4}",
                    r.micro.f1, r.macro_avg.f1, r.subset_accuracy
                )
            }
            TextReport::Regression(r) => {
                format!("MSE {:.4} Pearson {:.4} Spearman {:.4}", r.mse, r.pearson, r.spearman)
            }
        }
    }

    /// The full report as text.
    pub fn to_table(&self) -> String {
        match self {
            TextReport::Classes(r) => r.to_table(),
            TextReport::Multilabel(r) => r.to_table(),
            TextReport::Regression(r) => r.to_table(),
        }
    }
}
