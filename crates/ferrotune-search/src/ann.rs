//! Approximate search: an HNSW graph (`hnsw_rs`) over the unit vectors of
//! a [`VectorIndex`], which keeps the vectors (for exact answers, rebuilds
//! and saving). `hnsw_rs` cannot delete a point, so a removed entry is a
//! tombstone skipped at query time; once tombstones exceed
//! `max_tombstone_share` of the live entries the graph is rebuilt.

use std::collections::HashMap;
use std::path::Path;

use hnsw_rs::prelude::{Distance, Hnsw};
use rayon::prelude::*;

use crate::{check_vector, Hit, Search, SearchError, VectorIndex};

/// The settings of the graph.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnSettings {
    /// Neighbours per node and layer (`M`), 2 to 256.
    pub m: usize,
    /// Candidates explored while inserting.
    pub ef_construction: usize,
    /// Candidates explored while searching (at least `k` is used).
    pub ef_search: usize,
    /// Removed entries, as a share of the live ones, from which the graph is
    /// rebuilt.
    pub max_tombstone_share: f32,
}

impl Default for AnnSettings {
    fn default() -> Self {
        Self { m: 16, ef_construction: 200, ef_search: 64, max_tombstone_share: 0.2 }
    }
}

impl AnnSettings {
    fn validate(&self) -> Result<(), SearchError> {
        let invalid = |field, expected| Err(SearchError::InvalidSetting { field, expected });
        if !(2..=256).contains(&self.m) {
            return invalid("m", "between 2 and 256");
        }
        if self.ef_construction == 0 || self.ef_search == 0 {
            return invalid("ef_construction and ef_search", "at least 1");
        }
        if !(self.max_tombstone_share > 0.0 && self.max_tombstone_share.is_finite()) {
            return invalid("max_tombstone_share", "a positive number");
        }
        Ok(())
    }
}

/// `1 - a·b` for unit vectors (cosine distance), in eight lanes that the
/// compiler vectorises.
#[derive(Debug, Clone, Copy, Default)]
struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        let mut lanes = [0f32; 8];
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
        for (x, y) in ca.zip(cb) {
            for i in 0..8 {
                lanes[i] += x[i] * y[i];
            }
        }
        (1.0 - (lanes.iter().sum::<f32>() + tail)).max(0.0)
    }
}

/// An HNSW graph over a [`VectorIndex`]'s vectors.
pub struct AnnIndex {
    exact: VectorIndex,
    settings: AnnSettings,
    graph: Hnsw<'static, f32, UnitCosine>,
    /// The id of each graph point (`None`: removed).
    points: Vec<Option<String>>,
    point_of: HashMap<String, usize>,
    tombstones: usize,
}

impl AnnIndex {
    /// Builds the graph over every entry of `exact` (on the thread pool).
    pub fn build(exact: VectorIndex, settings: AnnSettings) -> Result<Self, SearchError> {
        settings.validate()?;
        let (ids, data) = exact.to_matrix();
        let mut graph = Hnsw::new(settings.m, ids.len().max(1), 16, settings.ef_construction, UnitCosine);
        let rows: Vec<(&[f32], usize)> = data.chunks_exact(exact.dim()).zip(0..).collect();
        graph.parallel_insert_slice(&rows);
        graph.set_searching_mode(true);
        let point_of = ids.iter().cloned().zip(0..).collect();
        Ok(Self { exact, settings, graph, points: ids.into_iter().map(Some).collect(), point_of, tombstones: 0 })
    }

    /// Loads a saved [`VectorIndex`] folder and builds the graph over it.
    pub fn load(dir: &Path, settings: AnnSettings) -> Result<Self, SearchError> {
        Self::build(VectorIndex::load(dir)?, settings)
    }

    /// The exact index of the same entries (for exact answers and saving).
    pub fn exact(&self) -> &VectorIndex {
        &self.exact
    }

    /// The settings.
    pub fn settings(&self) -> AnnSettings {
        self.settings
    }

    /// Changes the candidates explored per search.
    pub fn set_ef_search(&mut self, ef_search: usize) -> Result<(), SearchError> {
        let settings = AnnSettings { ef_search, ..self.settings };
        settings.validate()?;
        self.settings = settings;
        Ok(())
    }

    /// Removed entries still in the graph.
    pub fn tombstones(&self) -> usize {
        self.tombstones
    }

    fn rebuild(&mut self) -> Result<(), SearchError> {
        let exact = std::mem::take(&mut self.exact);
        *self = Self::build(exact, self.settings)?;
        Ok(())
    }

    fn search_one(&self, query: &[f32], k: usize) -> Vec<Hit> {
        let alive = |point: &usize| self.points[*point].is_some();
        let ef = self.settings.ef_search.max(k);
        let found = if self.tombstones == 0 {
            self.graph.search(query, k, ef)
        } else {
            self.graph.search_filter(query, k, ef, Some(&alive))
        };
        let mut hits: Vec<Hit> = found
            .into_iter()
            .filter_map(|n| Some(Hit { id: self.points[n.d_id].clone()?, score: 1.0 - n.distance }))
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
        hits
    }
}

impl Search for AnnIndex {
    fn dim(&self) -> usize {
        self.exact.dim()
    }

    fn len(&self) -> usize {
        self.exact.len()
    }

    fn add(&mut self, id: &str, vector: &[f32]) -> Result<(), SearchError> {
        check_vector(&format!("vector '{id}'"), vector, self.dim())?;
        self.exact.add(id, vector)?;
        let point = self.points.len();
        self.graph.insert_slice((self.exact.get(id).expect("just added"), point));
        self.points.push(Some(id.to_string()));
        self.point_of.insert(id.to_string(), point);
        Ok(())
    }

    fn remove(&mut self, id: &str) -> bool {
        if !self.exact.remove(id) {
            return false;
        }
        let point = self.point_of.remove(id).expect("every entry has a point");
        self.points[point] = None;
        self.tombstones += 1;
        if self.tombstones as f32 > self.settings.max_tombstone_share * self.exact.len() as f32 {
            self.rebuild().expect("settings were validated");
        }
        true
    }

    fn search_many(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>, SearchError> {
        let queries = crate::unit_queries(queries, self.dim())?;
        if k == 0 || self.exact.is_empty() {
            return Ok(vec![Vec::new(); queries.len() / self.dim()]);
        }
        Ok(queries.par_chunks(self.dim()).map(|q| self.search_one(q, k)).collect())
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// `n` points around `clusters` random centres in `dim` dimensions.
    fn clustered(n: usize, clusters: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres: Vec<Vec<f32>> =
            (0..clusters).map(|_| (0..dim).map(|_| rng.random::<f32>() - 0.5).collect()).collect();
        (0..n).flat_map(|i| centres[i % clusters].clone()).map(|c| c + (rng.random::<f32>() - 0.5) * 0.3).collect()
    }

    fn recall_at(ann: &AnnIndex, queries: &[f32], k: usize) -> f32 {
        let exact = ann.exact().search_many(queries, k).unwrap();
        let approx = ann.search_many(queries, k).unwrap();
        let found: usize =
            exact.iter().zip(&approx).map(|(e, a)| a.iter().filter(|h| e.iter().any(|x| x.id == h.id)).count()).sum();
        found as f32 / (exact.len() * k) as f32
    }

    #[test]
    fn recall_on_a_clustered_set_and_in_place_updates() {
        let (n, dim, k) = (3000, 32, 10);
        let mut exact = VectorIndex::new(dim).unwrap();
        let ids: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
        exact.add_many(&ids, &clustered(n, 40, dim, 1)).unwrap();
        let mut ann = AnnIndex::build(exact, AnnSettings::default()).unwrap();
        let queries = clustered(200, 40, dim, 2);
        let recall = recall_at(&ann, &queries, k);
        assert!(recall >= 0.9, "recall@10 {recall}");

        let new = clustered(50, 40, dim, 3);
        for (i, v) in new.chunks(dim).enumerate() {
            ann.add(&format!("new{i}"), v).unwrap();
        }
        let hits = ann.search(&new[..dim], 1).unwrap();
        assert_eq!(hits[0].id, "new0", "an added entry is found");
        assert!((hits[0].score - 1.0).abs() < 1e-5);
        assert!(ann.remove("new0"));
        assert!(!ann.remove("new0"));
        assert!(ann.search(&new[..dim], 5).unwrap().iter().all(|h| h.id != "new0"), "a tombstone is skipped");
        assert_eq!(ann.tombstones(), 1);
        for i in 0..700 {
            ann.remove(&format!("p{i}"));
        }
        assert!(ann.tombstones() < 700, "rebuilt past the tombstone share");
        assert_eq!(ann.len(), n + 49 - 700);
        let recall = recall_at(&ann, &queries, k);
        assert!(recall >= 0.9, "recall@10 after removals {recall}");
        assert!(ann.add("p1000", &new[..dim]).is_err(), "duplicate id");
        assert!(AnnIndex::build(VectorIndex::new(2).unwrap(), AnnSettings { m: 300, ..Default::default() }).is_err());
    }
}
