//! Answers: the best FAQ entry for a question, the next best ones, and
//! whether to hand the question over to a person.

use serde::Serialize;

use crate::vectors::exact_top_k;
use crate::FaqIndex;

/// Another FAQ entry close to the question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alternative {
    /// Its id.
    pub faq_id: String,
    /// Its question.
    pub question: String,
    /// Its cosine similarity to the question (the best of its keys).
    pub score: f32,
}

/// What the intent model says of a question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentGuess {
    /// The most likely intent.
    pub label: String,
    /// Its probability.
    pub score: f32,
}

/// The answer to one question, as `faq ask` writes it and the server returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// The question asked.
    pub query: String,
    /// The answer of the best entry.
    pub answer: String,
    /// The best entry's id.
    pub faq_id: String,
    /// The best entry's question.
    pub question: String,
    /// Its cosine similarity to the question (the best of its keys).
    pub score: f32,
    /// The next best entries, best first.
    pub alternatives: Vec<Alternative>,
    /// Whether to hand the question to a person instead: the score is
    /// below the index's threshold, or the intent model gives an intent the
    /// FAQ does not cover.
    pub handoff: bool,
    /// The intent model's guess, when the index has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<IntentGuess>,
}

impl FaqIndex {
    /// The entries nearest to `vector` (a normalised question embedding),
    /// at most `n`, best first: each entry's score is the best of its keys.
    pub fn nearest(&self, vector: &[f32], n: usize) -> Vec<(usize, f32)> {
        let keys = self.keys.per_entry();
        // An entry among the n best has its best key among the n * keys best rows.
        let mut best: Vec<(usize, f32)> = Vec::with_capacity(n);
        for (row, score) in exact_top_k(&self.vectors, self.dim, vector, n * keys) {
            let entry = row / keys;
            if best.len() < n && !best.iter().any(|b| b.0 == entry) {
                best.push((entry, score));
            }
        }
        best
    }

    /// The answer to `query` whose embedding is `vector`, with up to
    /// `alternatives` other entries; handed over below the threshold.
    pub fn answer(&self, query: String, vector: &[f32], alternatives: usize) -> Answer {
        let nearest = self.nearest(vector, alternatives + 1);
        let (top, score) = nearest[0];
        let entry = &self.entries[top];
        Answer {
            query,
            answer: entry.answer.clone(),
            faq_id: entry.id.clone(),
            question: entry.question.clone(),
            score,
            alternatives: nearest[1..]
                .iter()
                .map(|&(i, score)| Alternative {
                    faq_id: self.entries[i].id.clone(),
                    question: self.entries[i].question.clone(),
                    score,
                })
                .collect(),
            handoff: self.threshold.is_some_and(|t| score < t),
            intent: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::index::tests::sample;

    #[test]
    fn an_entry_scores_the_best_of_its_keys() {
        // Rows: f1 -> e0, e1; f2 -> e2, e3; f3 -> e0, e1 (unit vectors e_i).
        let index = sample();
        let nearest = index.nearest(&[0.0, 0.6, 0.0, 0.8], 3);
        assert_eq!(nearest, [(1, 0.8), (0, 0.6), (2, 0.6)]);
        let answer = index.answer("q".into(), &[0.0, 0.0, 0.0, 1.0], 1);
        assert_eq!((answer.faq_id.as_str(), answer.score, answer.handoff), ("f2", 1.0, false));
        assert_eq!(answer.alternatives.len(), 1);
        let answer = index.answer("q".into(), &[0.4, 0.0, 0.0, 0.0], 5);
        assert_eq!((answer.faq_id.as_str(), answer.handoff, answer.alternatives.len()), ("f1", true, 2));
        let json = serde_json::to_string(&answer).unwrap();
        assert!(json.starts_with("{\"query\":\"q\",\"answer\":\"answer f1\",\"faq_id\":\"f1\""), "{json}");
        assert!(!json.contains("intent"));
    }
}
