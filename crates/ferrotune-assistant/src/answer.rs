//! Answers: the best FAQ entry for a question, the next best ones, and
//! whether to hand the question over to a person.

use serde::Serialize;

use ferrotune_search::Search;

use crate::index::entry_of;
use crate::{AssistantError, FaqIndex};

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
    /// The entries nearest to each query embedding (`queries`: rows of
    /// `dim`), at most `n` each, best first: an entry scores the cosine
    /// similarity of its best key.
    pub fn nearest(&self, queries: &[f32], n: usize) -> Result<Vec<Vec<(usize, f32)>>, AssistantError> {
        let keys = self.keys.per_entry();
        // An entry among the n best has its best key among the n * keys best vectors.
        let hits = self.vectors.search_many(queries, n * keys)?;
        Ok(hits
            .into_iter()
            .map(|hits| {
                let mut best: Vec<(usize, f32)> = Vec::with_capacity(n);
                for hit in hits {
                    match entry_of(&hit.id) {
                        Some(entry) if best.len() < n && !best.iter().any(|b| b.0 == entry) => {
                            best.push((entry, hit.score))
                        }
                        _ => {}
                    }
                }
                best
            })
            .collect())
    }

    /// The answer to each of `queries` whose embeddings are `embeddings`
    /// (rows of `dim`), with up to `alternatives` other entries each; handed
    /// over below the threshold.
    pub fn answers(
        &self,
        queries: &[String],
        embeddings: &[f32],
        alternatives: usize,
    ) -> Result<Vec<Answer>, AssistantError> {
        let entry = |i: usize| &self.entries[i];
        let mut answers = Vec::with_capacity(queries.len());
        for (query, nearest) in queries.iter().zip(self.nearest(embeddings, alternatives + 1)?) {
            let Some(&(top, score)) = nearest.first() else {
                return Err(AssistantError::InvalidOption { field: "index", expected: "at least one entry" });
            };
            answers.push(Answer {
                query: query.clone(),
                answer: entry(top).answer.clone(),
                faq_id: entry(top).id.clone(),
                question: entry(top).question.clone(),
                score,
                alternatives: nearest[1..]
                    .iter()
                    .map(|&(i, score)| Alternative {
                        faq_id: entry(i).id.clone(),
                        question: entry(i).question.clone(),
                        score,
                    })
                    .collect(),
                handoff: self.threshold.is_some_and(|t| score < t),
                intent: None,
            });
        }
        Ok(answers)
    }
}

#[cfg(test)]
mod tests {
    use crate::index::tests::sample;

    #[test]
    fn an_entry_scores_the_best_of_its_keys() {
        // Keys: f1 -> e0, e1; f2 -> e2, e3; f3 -> e0, e1 (unit vectors e_i).
        let index = sample();
        let nearest = index.nearest(&[0.0, 0.6, 0.0, 0.8], 3).unwrap();
        assert_eq!(nearest, [vec![(1, 0.8), (0, 0.6), (2, 0.6)]]);
        let queries = ["q".to_string(), "r".to_string()];
        let answers = index.answers(&queries, &[0.0, 0.0, 0.0, 1.0, 0.4, 0.0, 0.3, 0.0], 1).unwrap();
        assert_eq!((answers[0].faq_id.as_str(), answers[0].score, answers[0].handoff), ("f2", 1.0, false));
        assert_eq!(answers[0].alternatives.len(), 1);
        // r = (0.8, 0, 0.6, 0) after normalisation: f1 and f3 score 0.8, f2 0.6.
        assert_eq!((answers[1].faq_id.as_str(), answers[1].handoff), ("f1", false));
        let answers = index.answers(&queries[..1], &[0.6, 0.0, 0.8, 0.0], 5).unwrap();
        assert_eq!(answers[0].alternatives.len(), 2);
        let json = serde_json::to_string(&answers[0]).unwrap();
        assert!(json.starts_with("{\"query\":\"q\",\"answer\":\"answer f2\",\"faq_id\":\"f2\""), "{json}");
        assert!(!json.contains("intent"));
        let mut strict = sample();
        strict.threshold = Some(0.9);
        assert!(strict.answers(&queries[..1], &[0.6, 0.0, 0.8, 0.0], 0).unwrap()[0].handoff);
    }
}
