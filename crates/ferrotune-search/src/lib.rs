//! Nearest-neighbour search over embeddings by cosine similarity:
//! [`VectorIndex`] scores every entry exactly (a multi-threaded matrix
//! product over a contiguous matrix of unit vectors, then a partial sort),
//! [`AnnIndex`] searches an HNSW graph (`hnsw_rs`) for large corpora. Both
//! are updated in place and saved as a folder (`vectors.npy`, `ids.json`).
//!
//! ```
//! use ferrotune_search::{Search, VectorIndex};
//!
//! # fn main() -> Result<(), ferrotune_search::SearchError> {
//! let mut index = VectorIndex::new(3)?;
//! index.add("card", &[1.0, 0.0, 0.0])?;
//! index.add("loan", &[0.0, 1.0, 0.0])?;
//! let hits = index.search(&[0.9, 0.1, 0.0], 1)?;
//! assert_eq!(hits[0].id, "card");
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod ann;
mod either;
mod error;
mod exact;
mod store;
mod top_k;

pub use ann::{AnnIndex, AnnSettings};
pub use either::SearchIndex;
pub use error::SearchError;
pub use exact::VectorIndex;
pub use store::{IDS_FILE, VECTORS_FILE};

/// One result: an entry's id and its cosine similarity to the query.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hit {
    /// The entry's id.
    pub id: String,
    /// Cosine similarity, in [-1, 1].
    pub score: f32,
}

/// What every index does: vectors in and out by id, the best `k` entries
/// of a query.
pub trait Search {
    /// Coordinates per vector.
    fn dim(&self) -> usize;

    /// Number of entries.
    fn len(&self) -> usize;

    /// Whether the index has no entry.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds an entry; its vector is stored normalised to unit length.
    fn add(&mut self, id: &str, vector: &[f32]) -> Result<(), SearchError>;

    /// Removes an entry; false when there is none of that id.
    fn remove(&mut self, id: &str) -> bool;

    /// The best `k` entries for each query of `queries` (rows of `dim`),
    /// best first; equal scores in insertion order.
    fn search_many(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>, SearchError>;

    /// The best `k` entries for one query, best first.
    fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, SearchError> {
        if query.len() != self.dim() {
            let what = "query 0".to_string();
            return Err(SearchError::Dimension { what, expected: self.dim(), found: query.len() });
        }
        Ok(self.search_many(query, k)?.pop().unwrap_or_default())
    }
}

/// Checks that `vector` has `dim` finite values.
fn check_vector(what: &str, vector: &[f32], dim: usize) -> Result<(), SearchError> {
    if vector.len() != dim {
        return Err(SearchError::Dimension { what: what.to_string(), expected: dim, found: vector.len() });
    }
    if !vector.iter().all(|v| v.is_finite()) {
        return Err(SearchError::NotFinite { what: what.to_string() });
    }
    Ok(())
}

/// `vector` divided by its Euclidean norm (a zero vector stays zero).
fn unit(vector: &[f32]) -> impl Iterator<Item = f32> + '_ {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    vector.iter().map(move |v| v / norm)
}

/// Queries (rows of `dim`) checked and normalised.
fn unit_queries(queries: &[f32], dim: usize) -> Result<Vec<f32>, SearchError> {
    if !queries.len().is_multiple_of(dim) {
        let what = format!("query {}", queries.len() / dim);
        return Err(SearchError::Dimension { what, expected: dim, found: queries.len() % dim });
    }
    let mut out = Vec::with_capacity(queries.len());
    for (i, q) in queries.chunks_exact(dim).enumerate() {
        check_vector(&format!("query {i}"), q, dim)?;
        out.extend(unit(q));
    }
    Ok(out)
}
