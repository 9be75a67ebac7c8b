//! Exact search: every entry's score is computed (one matrix product of the
//! queries with the contiguous matrix of unit vectors, on the thread pool),
//! then the best `k` are selected.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::top_k::top_k;
use crate::{check_vector, unit, Hit, Search, SearchError};

/// Scores per block of queries: bounds the score matrix's memory
/// (queries × entries) whatever the number of queries.
const BLOCK_SCORES: usize = 1 << 24;

/// Ids and their vectors, normalised to unit length, as one row-major
/// matrix; scores are cosine similarities. Rows are removed by moving the
/// last row into the gap; each row keeps its insertion number, which breaks
/// ties between equal scores.
#[derive(Debug, Clone, Default)]
pub struct VectorIndex {
    dim: usize,
    data: Vec<f32>,
    ids: Vec<String>,
    order: Vec<u64>,
    rows: HashMap<String, usize>,
    next: u64,
}

impl VectorIndex {
    /// An empty index of `dim`-coordinate vectors.
    pub fn new(dim: usize) -> Result<Self, SearchError> {
        if dim == 0 {
            return Err(SearchError::InvalidSetting { field: "dim", expected: "at least 1" });
        }
        Ok(Self { dim, ..Self::default() })
    }

    /// Adds every id with its row of `vectors` (`ids.len()` rows of `dim`),
    /// checking them all before adding any.
    pub fn add_many(&mut self, ids: &[String], vectors: &[f32]) -> Result<(), SearchError> {
        self.add_rows(ids, vectors, true)
    }

    /// [`Self::add_many`]; `normalize` false stores the vectors as they are
    /// (vectors read back from a saved index are unit already).
    pub(crate) fn add_rows(&mut self, ids: &[String], vectors: &[f32], normalize: bool) -> Result<(), SearchError> {
        if vectors.len() != ids.len() * self.dim {
            return Err(SearchError::Dimension {
                what: format!("a block of {} vectors", ids.len()),
                expected: self.dim,
                found: vectors.len().checked_div(ids.len()).unwrap_or(vectors.len()),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for (id, vector) in ids.iter().zip(vectors.chunks_exact(self.dim)) {
            if self.rows.contains_key(id) || !seen.insert(id) {
                return Err(SearchError::DuplicateId(id.clone()));
            }
            check_vector(&format!("vector '{id}'"), vector, self.dim)?;
        }
        for (id, vector) in ids.iter().zip(vectors.chunks_exact(self.dim)) {
            self.push(id, vector, normalize);
        }
        Ok(())
    }

    fn push(&mut self, id: &str, vector: &[f32], normalize: bool) {
        self.rows.insert(id.to_string(), self.ids.len());
        self.ids.push(id.to_string());
        self.order.push(self.next);
        self.next += 1;
        if normalize {
            self.data.extend(unit(vector));
        } else {
            self.data.extend_from_slice(vector);
        }
    }

    /// The unit vector of `id`.
    pub fn get(&self, id: &str) -> Option<&[f32]> {
        self.rows.get(id).map(|&row| self.row(row))
    }

    /// Whether `id` is in the index.
    pub fn contains(&self, id: &str) -> bool {
        self.rows.contains_key(id)
    }

    /// The ids, in insertion order.
    pub fn ids(&self) -> Vec<&str> {
        let mut rows: Vec<usize> = (0..self.ids.len()).collect();
        rows.sort_by_key(|&r| self.order[r]);
        rows.into_iter().map(|r| self.ids[r].as_str()).collect()
    }

    /// The ids and the matrix of unit vectors, rows in insertion order.
    pub fn to_matrix(&self) -> (Vec<String>, Vec<f32>) {
        let ids: Vec<String> = self.ids().into_iter().map(String::from).collect();
        let data = ids.iter().flat_map(|id| self.get(id).expect("listed").iter().copied()).collect();
        (ids, data)
    }

    fn row(&self, row: usize) -> &[f32] {
        &self.data[row * self.dim..(row + 1) * self.dim]
    }

    /// Scores of a block of unit queries against every row, then the best
    /// `k` of each.
    fn search_block(&self, queries: &[f32], k: usize) -> Vec<Vec<Hit>> {
        let n = self.ids.len();
        let mut scores = vec![0f32; queries.len() / self.dim * n];
        ferrotune_model::matmul_abt(queries, &self.data, self.dim, &mut scores, rayon::current_num_threads());
        let best = |row: &[f32]| {
            let hits = top_k(row, &self.order, k).into_iter();
            hits.map(|r| Hit { id: self.ids[r].clone(), score: row[r] }).collect()
        };
        if queries.len() == self.dim {
            vec![best(&scores)]
        } else {
            scores.par_chunks(n.max(1)).map(best).collect()
        }
    }
}

impl Search for VectorIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn add(&mut self, id: &str, vector: &[f32]) -> Result<(), SearchError> {
        if self.rows.contains_key(id) {
            return Err(SearchError::DuplicateId(id.to_string()));
        }
        check_vector(&format!("vector '{id}'"), vector, self.dim)?;
        self.push(id, vector, true);
        Ok(())
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some(row) = self.rows.remove(id) else { return false };
        let last = self.ids.len() - 1;
        if row != last {
            let (dim, moved) = (self.dim, self.ids[last].clone());
            self.data.copy_within(last * dim..(last + 1) * dim, row * dim);
            self.rows.insert(moved, row);
        }
        self.data.truncate(last * self.dim);
        self.ids.swap_remove(row);
        self.order.swap_remove(row);
        true
    }

    fn search_many(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>, SearchError> {
        let queries = crate::unit_queries(queries, self.dim)?;
        if self.ids.is_empty() {
            return Ok(vec![Vec::new(); queries.len() / self.dim]);
        }
        let per_block = (BLOCK_SCORES / self.ids.len()).max(1) * self.dim;
        Ok(queries.chunks(per_block).flat_map(|block| self.search_block(block, k)).collect())
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Every score by a loop, sorted best first (ties: insertion order).
    fn brute_force(entries: &[(String, Vec<f32>)], query: &[f32], k: usize) -> Vec<(String, f32)> {
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        let mut scored: Vec<(String, f32)> = entries
            .iter()
            .map(|(id, v)| {
                let dot: f32 = v.iter().zip(query).map(|(a, b)| a * b).sum();
                (id.clone(), dot / norm(v) / norm(query))
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1)); // stable: ties keep insertion order
        scored.truncate(k);
        scored
    }

    fn random_entries(n: usize, dim: usize, seed: u64) -> Vec<(String, Vec<f32>)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|i| (format!("e{i}"), (0..dim).map(|_| rng.random::<f32>() - 0.5).collect())).collect()
    }

    fn assert_same(got: &[Hit], want: &[(String, f32)]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g.score - w.1).abs() < 1e-5, "{got:?} vs {want:?}");
        }
        let ids: Vec<&str> = got.iter().map(|h| h.id.as_str()).collect();
        let want_ids: Vec<&str> = want.iter().map(|w| w.0.as_str()).collect();
        assert_eq!(ids, want_ids);
    }

    #[test]
    fn search_equals_a_brute_force_loop_before_and_after_removals() {
        let (dim, k) = (16, 7);
        let mut entries = random_entries(300, dim, 1);
        let mut index = VectorIndex::new(dim).unwrap();
        let ids: Vec<String> = entries.iter().map(|e| e.0.clone()).collect();
        index.add_many(&ids, &entries.iter().flat_map(|e| e.1.clone()).collect::<Vec<_>>()).unwrap();
        let queries: Vec<Vec<f32>> = random_entries(20, dim, 2).into_iter().map(|e| e.1).collect();
        let flat: Vec<f32> = queries.concat();
        for round in 0..2 {
            let many = index.search_many(&flat, k).unwrap();
            for (q, hits) in queries.iter().zip(&many) {
                assert_same(hits, &brute_force(&entries, q, k));
                assert_same(&index.search(q, k).unwrap(), &brute_force(&entries, q, k));
            }
            if round == 0 {
                for i in (0..300).step_by(3) {
                    assert!(index.remove(&format!("e{i}")));
                }
                entries.retain(|e| e.0[1..].parse::<usize>().unwrap() % 3 != 0);
                assert!(!index.remove("e0"), "already removed");
                assert_eq!(index.len(), 200);
            }
        }
        let all = index.search(&queries[0], 1000).unwrap();
        assert_eq!(all.len(), 200, "k > n: every entry");
        assert_same(&all, &brute_force(&entries, &queries[0], 1000));
        assert_eq!(index.ids().len(), 200);
        assert_eq!(index.ids()[..3], ["e1", "e2", "e4"], "insertion order");
    }

    #[test]
    fn ties_come_in_insertion_order() {
        let mut index = VectorIndex::new(2).unwrap();
        for (id, v) in [("c", [1.0, 0.0]), ("a", [2.0, 0.0]), ("b", [0.0, 1.0]), ("d", [3.0, 0.0])] {
            index.add(id, &v).unwrap();
        }
        let ids = |hits: Vec<Hit>| hits.into_iter().map(|h| h.id).collect::<Vec<_>>();
        assert_eq!(ids(index.search(&[1.0, 0.0], 3).unwrap()), ["c", "a", "d"]);
        index.remove("c");
        index.add("c", &[1.0, 0.0]).unwrap();
        assert_eq!(ids(index.search(&[1.0, 0.0], 4).unwrap()), ["a", "d", "c", "b"]);
        assert!(index.search(&[1.0, 0.0], 0).unwrap().is_empty());
    }

    #[test]
    fn bad_vectors_are_refused() {
        let mut index = VectorIndex::new(3).unwrap();
        index.add("x", &[1.0, 2.0, 3.0]).unwrap();
        let e = index.add("y", &[1.0, 2.0]).unwrap_err().to_string();
        assert_eq!(e, "vector 'y' has 2 coordinates; the index has 3");
        assert_eq!(index.add("x", &[1.0, 0.0, 0.0]).unwrap_err().to_string(), "id 'x' is already in the index");
        assert!(index.add("z", &[f32::NAN, 0.0, 0.0]).unwrap_err().to_string().contains("finite"));
        assert!(index.search(&[1.0; 4], 1).unwrap_err().to_string().starts_with("query 0 has 4 coordinates"));
        let dup = ["p".to_string(), "p".to_string()];
        assert!(matches!(index.add_many(&dup, &[0.0; 6]), Err(SearchError::DuplicateId(_))));
        assert_eq!(index.len(), 1, "nothing added by a refused block");
        assert!(VectorIndex::new(0).is_err());
        assert!(VectorIndex::new(3).unwrap().search(&[1.0, 0.0, 0.0], 5).unwrap().is_empty());
    }
}
