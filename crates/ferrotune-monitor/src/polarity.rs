//! Which of a sentiment model's labels count as negative.

use std::collections::BTreeMap;

use crate::MonitorError;

/// The negative labels of a model (e.g. `negative`, `bearish`).
#[derive(Debug, Clone, PartialEq)]
pub struct Polarity {
    negative: Vec<String>,
}

impl Polarity {
    /// Checks that every `negative` and `positive` label is one of the
    /// model's `labels`, and that no label is in both lists.
    pub fn new(negative: &[String], positive: &[String], labels: &[String]) -> Result<Self, MonitorError> {
        for (polarity, names) in [("negative", negative), ("positive", positive)] {
            if let Some(label) = names.iter().find(|n| !labels.contains(n)) {
                return Err(MonitorError::UnknownLabel { label: label.clone(), polarity, labels: labels.to_vec() });
            }
        }
        if let Some(label) = negative.iter().find(|n| positive.contains(n)) {
            return Err(MonitorError::BothPolarities { label: label.clone() });
        }
        if negative.is_empty() {
            return Err(MonitorError::NoNegativeLabel);
        }
        Ok(Self { negative: negative.to_vec() })
    }

    /// Whether `label` is negative.
    pub fn is_negative(&self, label: &str) -> bool {
        self.negative.iter().any(|n| n == label)
    }

    /// The probability of the negative labels, from every label's.
    pub fn negative_score(&self, scores: &BTreeMap<String, f32>) -> f32 {
        self.negative.iter().filter_map(|n| scores.get(n)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked_against_the_model() {
        let labels: Vec<String> = ["negative", "neutral", "positive"].map(String::from).to_vec();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let p = Polarity::new(&s(&["negative"]), &s(&["positive"]), &labels).unwrap();
        assert!(p.is_negative("negative") && !p.is_negative("neutral"));
        let scores = BTreeMap::from([("negative".to_string(), 0.7), ("positive".to_string(), 0.1)]);
        assert!((p.negative_score(&scores) - 0.7).abs() < 1e-6);
        let e = Polarity::new(&s(&["bearish"]), &[], &labels).unwrap_err().to_string();
        assert_eq!(e, "the negative label 'bearish' is not one of the model's labels: negative, neutral, positive");
        let e = Polarity::new(&s(&["negative"]), &s(&["negative"]), &labels).unwrap_err().to_string();
        assert!(e.contains("'negative' is both"), "{e}");
        assert!(Polarity::new(&[], &[], &labels).is_err());
    }
}
