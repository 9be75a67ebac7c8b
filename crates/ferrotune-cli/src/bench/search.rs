//! `ferrotune bench search`: per-query latency of exact search (and of the
//! HNSW index with its recall@k against exact) over a corpus of unit
//! vectors made from real embeddings.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use ferrotune_search::{AnnIndex, Search, VectorIndex};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

#[derive(Args)]
pub struct SearchBench {
    /// Embeddings to build the corpus from (a .npy matrix written by
    /// `ferrotune embed`): entry i is row i mod rows plus Gaussian noise,
    /// queries other noisy copies [default: random unit vectors, the worst
    /// case for HNSW].
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Entries in the index.
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Coordinates (without --vectors; with it, the file's).
    #[arg(long, default_value_t = 384)]
    dim: usize,
    /// Queries timed one by one.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Results per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Standard deviation of the noise added to each coordinate, relative to
    /// 1/sqrt(dim).
    #[arg(long, default_value_t = 0.5)]
    noise: f32,
    /// With --ann: also build the HNSW index, time it and measure its recall.
    #[command(flatten)]
    ann: crate::ann::AnnArgs,
    /// Seed of the noise and of the query draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// A standard normal value (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * rng.random::<f32>()).cos()
}

/// `n` rows: noisy copies of `base` rows, in turn or (`drawn`) at random,
/// or pure noise without a base.
fn noisy_rows(
    base: Option<&(Vec<f32>, usize)>,
    n: usize,
    dim: usize,
    noise: f32,
    drawn: bool,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let sigma = noise / (dim as f32).sqrt();
    let mut out = Vec::with_capacity(n * dim);
    for i in 0..n {
        match base {
            Some((data, rows)) => {
                let row = if drawn { rng.random_range(0..*rows) } else { i % rows };
                out.extend(data[row * dim..(row + 1) * dim].iter().map(|v| v + sigma * normal(rng)));
            }
            None => out.extend((0..dim).map(|_| normal(rng))),
        }
    }
    out
}

/// p50 and p99 of `f` run on each query, in milliseconds.
fn latencies(queries: &[f32], dim: usize, mut f: impl FnMut(&[f32])) -> (f64, f64) {
    let mut ms: Vec<f64> = queries
        .chunks_exact(dim)
        .map(|q| {
            let start = Instant::now();
            f(q);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    (at(0.5), at(0.99))
}

pub fn run(args: &SearchBench) -> anyhow::Result<serde_json::Value> {
    if args.entries == 0 || args.queries == 0 || args.k == 0 {
        return Err(crate::UsageError("--entries, --queries and --k must be at least 1".into()).into());
    }
    let base = match &args.vectors {
        Some(path) => {
            let m = ferrotune_data::npy::read_f32_matrix(path)?;
            anyhow::ensure!(m.rows > 0, "{}: no vectors", path.display());
            Some((m.data, m.rows))
        }
        None => None,
    };
    let dim = match &args.vectors {
        Some(_) => base.as_ref().map(|(d, r)| d.len() / r).unwrap_or(args.dim),
        None => args.dim,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let corpus = noisy_rows(base.as_ref(), args.entries, dim, args.noise, false, &mut rng);
    let queries = noisy_rows(base.as_ref(), args.queries, dim, args.noise, true, &mut rng);
    let ids: Vec<String> = (0..args.entries).map(|i| i.to_string()).collect();
    let mut exact = VectorIndex::new(dim)?;
    exact.add_many(&ids, &corpus)?;
    drop(corpus);
    let (p50, p99) = latencies(&queries, dim, |q| drop(exact.search(q, args.k)));
    let start = Instant::now();
    let truth = exact.search_many(&queries, args.k)?;
    let batched_ms = start.elapsed().as_secs_f64() * 1e3 / args.queries as f64;
    let mut record = json!({
        "workload": "search", "entries": args.entries, "dim": dim, "queries": args.queries, "k": args.k,
        "vectors": args.vectors.as_ref().map(|p| p.display().to_string()), "noise": args.noise,
        "exact_p50_ms": p50, "exact_p99_ms": p99, "exact_batched_ms_per_query": batched_ms,
    });
    if let Some(settings) = args.ann.settings() {
        let start = Instant::now();
        let ann = AnnIndex::build(exact, settings)?;
        let build_s = start.elapsed().as_secs_f64();
        let (p50, p99) = latencies(&queries, dim, |q| drop(ann.search(q, args.k)));
        let mut found = 0;
        for (q, want) in queries.chunks_exact(dim).zip(&truth) {
            let got = ann.search(q, args.k)?;
            found += got.iter().filter(|h| want.iter().any(|w| w.id == h.id)).count();
        }
        let recall = found as f64 / (args.queries * args.k) as f64;
        record["ann"] = json!({
            "m": settings.m, "ef_construction": settings.ef_construction, "ef_search": settings.ef_search,
            "build_s": build_s, "p50_ms": p50, "p99_ms": p99, "recall_at_k": recall,
        });
    }
    Ok(record)
}
