//! Retrieval metrics with the definitions of sentence-transformers'
//! `InformationRetrievalEvaluator` at its default cutoffs: MRR@10,
//! NDCG@10 (binary relevance), MAP@100 (divided by min(100, relevant)),
//! Accuracy@k, Precision@k and Recall@k for k in 1, 3, 5, 10.
//!
//! Each query ranks the corpus by descending score, ties broken by the
//! ascending corpus id (string order), the evaluator's total order; a query
//! without relevant ids is left out, as the evaluator leaves it out.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde::ser::{Serialize, SerializeMap, Serializer};

/// The k of Accuracy@k, Precision@k and Recall@k.
pub const CUTOFFS: [usize; 4] = [1, 3, 5, 10];
/// The k of MRR@k.
pub const MRR_AT: usize = 10;
/// The k of NDCG@k.
pub const NDCG_AT: usize = 10;
/// The k of MAP@k.
pub const MAP_AT: usize = 100;
/// How many hits per query the metrics read.
pub const RANKED: usize = MAP_AT;

/// The retrieval metrics over a set of queries (fractions in 0..1).
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalReport {
    /// Queries scored (those with at least one relevant id).
    pub queries: usize,
    /// Corpus entries searched.
    pub corpus: usize,
    /// Share of queries with a relevant entry in the top k, one per [`CUTOFFS`].
    pub accuracy: [f64; 4],
    /// Mean over queries of relevant hits in the top k / k, one per [`CUTOFFS`].
    pub precision: [f64; 4],
    /// Mean over queries of relevant hits in the top k / relevant ids, one per [`CUTOFFS`].
    pub recall: [f64; 4],
    /// Mean reciprocal rank of the first relevant hit in the top [`MRR_AT`] (0 when none).
    pub mrr: f64,
    /// Mean normalised discounted cumulative gain at [`NDCG_AT`].
    pub ndcg: f64,
    /// Mean average precision at [`MAP_AT`].
    pub map: f64,
}

/// Orders corpus entries as the evaluator ranks them: descending score,
/// then ascending id.
fn rank_order(scores: &[f32], ids: &[String], a: usize, b: usize) -> Ordering {
    scores[b].total_cmp(&scores[a]).then_with(|| ids[a].cmp(&ids[b]))
}

/// The indices of the `k` best corpus entries for one query's `scores`
/// (one per entry of `ids`), best first, ties by ascending id.
pub fn top_k(scores: &[f32], ids: &[String], k: usize) -> Vec<usize> {
    assert_eq!(scores.len(), ids.len(), "one score per corpus entry");
    let mut order: Vec<usize> = (0..scores.len()).collect();
    let k = k.min(order.len());
    if k == 0 {
        return Vec::new();
    }
    if k < order.len() {
        order.select_nth_unstable_by(k - 1, |&a, &b| rank_order(scores, ids, a, b));
        order.truncate(k);
    }
    order.sort_unstable_by(|&a, &b| rank_order(scores, ids, a, b));
    order
}

/// Discounted cumulative gain of binary relevances over the first `k`.
fn dcg(relevant: impl Iterator<Item = bool>, k: usize) -> f64 {
    relevant.take(k).enumerate().filter(|(_, r)| *r).map(|(i, _)| 1.0 / ((i + 2) as f64).log2()).sum()
}

/// Sums of the per-query metrics, averaged at the end.
#[derive(Default)]
struct Totals {
    queries: usize,
    accuracy: [f64; 4],
    precision: [f64; 4],
    recall: [f64; 4],
    mrr: f64,
    ndcg: f64,
    map: f64,
}

impl Totals {
    /// Adds one query: `hits` says, best hit first, whether each is relevant.
    fn add(&mut self, hits: &[bool], relevant: usize) {
        self.queries += 1;
        for (i, &k) in CUTOFFS.iter().enumerate() {
            let found = hits.iter().take(k).filter(|&&h| h).count();
            self.accuracy[i] += f64::from(u8::from(found > 0));
            self.precision[i] += found as f64 / k as f64;
            self.recall[i] += found as f64 / relevant as f64;
        }
        if let Some(rank) = hits.iter().take(MRR_AT).position(|&h| h) {
            self.mrr += 1.0 / (rank + 1) as f64;
        }
        self.ndcg += dcg(hits.iter().copied(), NDCG_AT) / dcg(std::iter::repeat_n(true, relevant), NDCG_AT);
        let (mut found, mut precisions) = (0usize, 0.0);
        for (rank, _) in hits.iter().take(MAP_AT).enumerate().filter(|(_, h)| **h) {
            found += 1;
            precisions += found as f64 / (rank + 1) as f64;
        }
        self.map += precisions / MAP_AT.min(relevant) as f64;
    }
}

impl RetrievalReport {
    /// Scores one row of `scores` per query (one score per entry of
    /// `corpus_ids`, higher is closer) against that query's relevant ids.
    /// Rows can be produced lazily (a chunk of queries at a time). Panics if
    /// the rows and `relevant` differ in number (a caller bug).
    pub fn compute<R: AsRef<[f32]>>(
        rows: impl IntoIterator<Item = R>,
        corpus_ids: &[String],
        relevant: &[BTreeSet<String>],
    ) -> Self {
        let mut totals = Totals::default();
        let mut seen = 0;
        for (row, relevant) in rows.into_iter().zip(relevant) {
            seen += 1;
            if relevant.is_empty() {
                continue;
            }
            let hits: Vec<bool> = top_k(row.as_ref(), corpus_ids, RANKED)
                .into_iter()
                .map(|c| relevant.contains(&corpus_ids[c]))
                .collect();
            totals.add(&hits, relevant.len());
        }
        assert_eq!(seen, relevant.len(), "one score row per query");
        let n = totals.queries.max(1) as f64;
        let mean = |v: [f64; 4]| v.map(|x| x / n);
        RetrievalReport {
            queries: totals.queries,
            corpus: corpus_ids.len(),
            accuracy: mean(totals.accuracy),
            precision: mean(totals.precision),
            recall: mean(totals.recall),
            mrr: totals.mrr / n,
            ndcg: totals.ndcg / n,
            map: totals.map / n,
        }
    }

    /// The number that picks the best epoch: MRR@10.
    pub fn score(&self) -> f64 {
        self.mrr
    }

    /// One line for logs.
    pub fn summary(&self) -> String {
        format!("MRR@{MRR_AT} {:.4} NDCG@{NDCG_AT} {:.4} Acc@1 {:.4}", self.mrr, self.ndcg, self.accuracy[0])
    }

    /// Every metric with its name (`accuracy@1`, ..., `mrr@10`, `ndcg@10`, `map@100`).
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for (name, values) in [("accuracy", self.accuracy), ("precision", self.precision), ("recall", self.recall)] {
            out.extend(CUTOFFS.iter().zip(values).map(|(k, v)| (format!("{name}@{k}"), v)));
        }
        out.push((format!("mrr@{MRR_AT}"), self.mrr));
        out.push((format!("ndcg@{NDCG_AT}"), self.ndcg));
        out.push((format!("map@{MAP_AT}"), self.map));
        out
    }

    /// The report as text, one metric a line.
    pub fn to_table(&self) -> String {
        let mut out = format!("queries {}  corpus {}\n\n", self.queries, self.corpus);
        for (name, value) in self.metrics() {
            out += &format!("{name:>12}  {value:>8.4}\n");
        }
        out
    }
}

impl Serialize for RetrievalReport {
    /// A flat object: `queries`, `corpus` and every metric by its name.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let metrics = self.metrics();
        let mut map = serializer.serialize_map(Some(metrics.len() + 2))?;
        map.serialize_entry("queries", &self.queries)?;
        map.serialize_entry("corpus", &self.corpus)?;
        for (name, value) in &metrics {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| i.to_string()).collect()
    }

    #[test]
    fn ties_go_to_the_smaller_id_as_a_string() {
        let ids = ids(12);
        let scores = [0.5f32; 12];
        // "0" < "1" < "10" < "11" < "2" ...
        assert_eq!(top_k(&scores, &ids, 4), vec![0, 1, 10, 11]);
    }

    #[test]
    fn one_relevant_entry_at_rank_two() {
        let ids = ids(3);
        let relevant = [BTreeSet::from(["2".to_string()])];
        let r = RetrievalReport::compute([[0.9f32, 0.1, 0.5]], &ids, &relevant);
        assert_eq!(r.accuracy, [0.0, 1.0, 1.0, 1.0]);
        assert_eq!(r.mrr, 0.5);
        assert!((r.ndcg - 1.0 / 3f64.log2()).abs() < 1e-12);
        assert_eq!(r.map, 0.5);
        assert_eq!(r.precision[1], 1.0 / 3.0);
    }

    #[test]
    fn queries_without_relevant_ids_are_left_out() {
        let ids = ids(2);
        let relevant = [BTreeSet::from(["0".to_string()]), BTreeSet::new()];
        let r = RetrievalReport::compute([[1.0f32, 0.0], [0.0, 1.0]], &ids, &relevant);
        assert_eq!((r.queries, r.mrr), (1, 1.0));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["mrr@10"], 1.0);
        assert_eq!(json["corpus"], 2);
    }
}
