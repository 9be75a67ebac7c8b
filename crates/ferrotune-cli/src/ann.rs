//! The HNSW flags of every command that can search approximately
//! (`faq build`, `bench search`).

use clap::Args;
use ferrotune_search::AnnSettings;

/// Approximate search: whether, and the graph's settings.
#[derive(Args)]
pub struct AnnArgs {
    /// Search through an HNSW graph (approximate; for large corpora)
    /// instead of scoring every entry.
    #[arg(long)]
    ann: bool,
    /// HNSW neighbours per node (M), 2 to 256.
    #[arg(long, default_value_t = AnnSettings::default().m, requires = "ann")]
    ann_m: usize,
    /// HNSW candidates explored while building.
    #[arg(long, default_value_t = AnnSettings::default().ef_construction, requires = "ann")]
    ann_ef_construction: usize,
    /// HNSW candidates explored while searching (at least the results asked for).
    #[arg(long, default_value_t = AnnSettings::default().ef_search, requires = "ann")]
    ann_ef_search: usize,
}

impl AnnArgs {
    /// The graph's settings, or `None` for exact search.
    pub fn settings(&self) -> Option<AnnSettings> {
        self.ann.then(|| AnnSettings {
            m: self.ann_m,
            ef_construction: self.ann_ef_construction,
            ef_search: self.ann_ef_search,
            ..AnnSettings::default()
        })
    }
}
