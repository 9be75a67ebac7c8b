//! Queries against a corpus, scored as sentence-transformers'
//! `InformationRetrievalEvaluator` scores them: every text embedded, cosine
//! similarity of each query with every corpus entry, the metrics of
//! [`RetrievalReport`]. Used by `eval --task retrieval` and by the trainer's
//! dev pass, with whatever embeds the texts.

use std::collections::BTreeSet;
use std::path::Path;

use ferrotune_data::{read_corpus, read_queries};
use ferrotune_eval::RetrievalReport;

use crate::{Embeddings, InferError};

/// A corpus and queries with their relevant corpus ids.
#[derive(Debug, Clone)]
pub struct RetrievalSet {
    corpus_ids: Vec<String>,
    corpus_texts: Vec<String>,
    queries: Vec<String>,
    relevant: Vec<BTreeSet<String>>,
}

/// A retrieval set scored by a model.
#[derive(Debug, Clone)]
pub struct RetrievalEvaluation {
    /// The metrics.
    pub report: RetrievalReport,
    /// Texts embedded (corpus entries and queries).
    pub texts: usize,
    /// Of those, how many were longer than `max_len` tokens (cut).
    pub long_inputs: usize,
}

impl RetrievalSet {
    /// Reads a corpus and queries against it (formats from the extensions;
    /// see `ferrotune_data::read_corpus` and `read_queries`).
    pub fn read(corpus: &Path, queries: &Path) -> Result<Self, InferError> {
        let entries = read_corpus(corpus, None)?;
        let read = read_queries(queries, None, &entries)?;
        let (corpus_ids, corpus_texts) = entries.into_iter().map(|e| (e.id, e.text)).unzip();
        let (queries, relevant) = read.into_iter().map(|q| (q.text, q.relevant)).unzip();
        Ok(Self { corpus_ids, corpus_texts, queries, relevant })
    }

    /// Number of queries.
    pub fn queries(&self) -> usize {
        self.queries.len()
    }

    /// Number of corpus entries.
    pub fn corpus(&self) -> usize {
        self.corpus_ids.len()
    }

    /// Embeds the corpus and the queries with `embed` and scores the
    /// rankings by cosine similarity.
    pub fn evaluate(
        &self,
        mut embed: impl FnMut(&[String]) -> Result<Embeddings, InferError>,
    ) -> Result<RetrievalEvaluation, InferError> {
        let corpus = unit_rows(embed(&self.corpus_texts)?);
        let queries = unit_rows(embed(&self.queries)?);
        let rows = queries.rows().map(|q| corpus.rows().map(|c| dot(q, c)).collect::<Vec<f32>>());
        Ok(RetrievalEvaluation {
            report: RetrievalReport::compute(rows, &self.corpus_ids, &self.relevant),
            texts: corpus.len() + queries.len(),
            long_inputs: corpus.long_inputs + queries.long_inputs,
        })
    }
}

/// The dot product of two rows (eight partial sums, so that it vectorises).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for k in 0..8 {
            sums[k] += x[k] * y[k];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// Every row scaled to unit length (a zero row stays zero), as the cosine
/// similarity of `sentence_transformers.util.cos_sim` normalises.
fn unit_rows(mut embeddings: Embeddings) -> Embeddings {
    let dim = embeddings.dim.max(1);
    for row in embeddings.data.chunks_exact_mut(dim) {
        let norm = dot(row, row).sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= norm);
    }
    embeddings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_by_cosine_whatever_the_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let (corpus, queries) = (dir.path().join("c.tsv"), dir.path().join("q.tsv"));
        std::fs::write(&corpus, "id\ttext\na\tnorth\nb\teast\nc\tnorth-east\n").unwrap();
        std::fs::write(&queries, "query\trelevant\nup\ta\nright\tb|c\n").unwrap();
        let set = RetrievalSet::read(&corpus, &queries).unwrap();
        assert_eq!((set.queries(), set.corpus()), (2, 3));
        let vector = |text: &str| match text {
            "north" | "up" => [0.0, 5.0],
            "east" => [3.0, 0.0],
            "right" => [1.0, 0.1],
            _ => [2.0, 2.0],
        };
        let embed = |texts: &[String]| {
            let data = texts.iter().flat_map(|t| vector(t)).collect();
            Ok(Embeddings { data, dim: 2, long_inputs: 0 })
        };
        let evaluation = set.evaluate(embed).unwrap();
        // "up": north first (MRR 1); "right": east, then north-east: both relevant.
        assert_eq!(evaluation.report.mrr, 1.0);
        assert_eq!(evaluation.report.recall[1], 1.0);
        assert_eq!(evaluation.report.precision[0], 1.0);
        assert_eq!(evaluation.texts, 5);
    }

    #[test]
    fn dot_products_of_any_length() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        assert_eq!(dot(&a, &a), (0..19).map(|i| (i * i) as f32).sum::<f32>());
    }
}
