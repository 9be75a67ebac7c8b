//! [`SearchIndex`]: the exact index, or an HNSW graph over it, chosen when
//! the index is built and searched through the same [`Search`] calls.

use crate::{AnnIndex, AnnSettings, Hit, Search, SearchError, VectorIndex};

/// Exact search, or approximate search over an HNSW graph of the same
/// vectors (for large corpora).
pub enum SearchIndex {
    /// Every entry scored ([`VectorIndex`]).
    Exact(VectorIndex),
    /// An HNSW graph ([`AnnIndex`]).
    Approximate(Box<AnnIndex>),
}

impl SearchIndex {
    /// `exact` as is, or with a graph built over it when `ann` is given.
    pub fn new(exact: VectorIndex, ann: Option<AnnSettings>) -> Result<Self, SearchError> {
        Ok(match ann {
            None => Self::Exact(exact),
            Some(settings) => Self::Approximate(Box::new(AnnIndex::build(exact, settings)?)),
        })
    }

    /// The vectors, searched exactly (for saving, and reading vectors back).
    pub fn exact(&self) -> &VectorIndex {
        match self {
            Self::Exact(index) => index,
            Self::Approximate(index) => index.exact(),
        }
    }

    /// The graph's settings, for an approximate index.
    pub fn ann_settings(&self) -> Option<AnnSettings> {
        match self {
            Self::Exact(_) => None,
            Self::Approximate(index) => Some(index.settings()),
        }
    }

    fn inner(&self) -> &dyn Search {
        match self {
            Self::Exact(index) => index,
            Self::Approximate(index) => index.as_ref(),
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Search {
        match self {
            Self::Exact(index) => index,
            Self::Approximate(index) => index.as_mut(),
        }
    }
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("entries", &self.len())
            .field("dim", &self.dim())
            .field("ann", &self.ann_settings())
            .finish()
    }
}

impl Search for SearchIndex {
    fn dim(&self) -> usize {
        self.inner().dim()
    }

    fn len(&self) -> usize {
        self.inner().len()
    }

    fn add(&mut self, id: &str, vector: &[f32]) -> Result<(), SearchError> {
        self.inner_mut().add(id, vector)
    }

    fn remove(&mut self, id: &str) -> bool {
        self.inner_mut().remove(id)
    }

    fn search_many(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>, SearchError> {
        self.inner().search_many(queries, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_find_the_same_nearest_entry() {
        let mut exact = VectorIndex::new(3).unwrap();
        for (id, v) in [("a", [1.0, 0.0, 0.0]), ("b", [0.0, 1.0, 0.0]), ("c", [0.0, 0.0, 1.0])] {
            exact.add(id, &v).unwrap();
        }
        let query = [0.1, 0.9, 0.2];
        let plain = SearchIndex::new(exact.clone(), None).unwrap();
        let mut graph = SearchIndex::new(exact, Some(AnnSettings::default())).unwrap();
        assert_eq!(plain.ann_settings(), None);
        assert_eq!(graph.ann_settings(), Some(AnnSettings::default()));
        assert_eq!(plain.search(&query, 1).unwrap(), graph.search(&query, 1).unwrap());
        graph.add("d", &[0.0, 1.0, 0.1]).unwrap();
        assert_eq!(graph.search(&query, 1).unwrap()[0].id, "d");
        assert!(graph.remove("d"));
        assert_eq!(graph.exact().len(), 3);
    }
}
