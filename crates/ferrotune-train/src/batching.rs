//! Shuffled batches, either length-bucketed (similar lengths share a batch
//! so that little of it is padding, while the order stays random) or plain
//! random (as `transformers`' Trainer without `group_by_length`); or, for
//! in-batch negatives, batches in which no text occurs twice.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How examples are grouped into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Batching {
    /// Similar lengths together (less padding, faster).
    Bucketed,
    /// A plain shuffle.
    Random,
}

impl std::fmt::Display for Batching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Batching::Bucketed => "bucketed",
            Batching::Random => "random",
        })
    }
}

/// The batches of one epoch under `batching`; every example is in exactly
/// one batch.
pub fn epoch_batches(batching: Batching, lengths: &[usize], batch_size: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
    match batching {
        Batching::Bucketed => bucketed_batches(lengths, batch_size, rng),
        Batching::Random => {
            let mut order: Vec<usize> = (0..lengths.len()).collect();
            order.shuffle(rng);
            order.chunks(batch_size.max(1)).map(<[usize]>::to_vec).collect()
        }
    }
}

/// Example indices per bucket: shuffled, then sorted by length within
/// pools of `POOL` batches.
const POOL: usize = 50;

/// Splits examples (given by their lengths) into batches of `batch_size`:
/// shuffle, sort by length within pools of 50 batches, cut, shuffle the
/// batches. Every example is in exactly one batch.
fn bucketed_batches(lengths: &[usize], batch_size: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(rng);
    let mut batches = Vec::with_capacity(lengths.len().div_ceil(batch_size));
    for pool in order.chunks_mut(batch_size * POOL) {
        pool.sort_by_key(|&i| lengths[i]);
        batches.extend(pool.chunks(batch_size).map(|b| b.to_vec()));
    }
    batches.shuffle(rng);
    batches
}

/// Batches of up to `batch_size` examples in which no text occurs twice
/// (`texts[i]`: ids of example i's texts, e.g. query, positive, negative), as
/// sentence-transformers' `NoDuplicatesBatchSampler`: shuffle, then fill each
/// batch with the first remaining examples that share no text with it,
/// leaving the others, in order, for later batches. Every example is in
/// exactly one batch; the last batches may be smaller.
pub fn distinct_batches(texts: &[Vec<usize>], batch_size: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let mut remaining: Vec<usize> = (0..texts.len()).collect();
    remaining.shuffle(rng);
    let mut batches = Vec::with_capacity(texts.len().div_ceil(batch_size));
    while !remaining.is_empty() {
        let mut batch = Vec::with_capacity(batch_size);
        let mut seen = std::collections::HashSet::new();
        let mut deferred = Vec::new();
        for (position, &example) in remaining.iter().enumerate() {
            if batch.len() == batch_size {
                deferred.extend_from_slice(&remaining[position..]);
                break;
            }
            if texts[example].iter().any(|t| seen.contains(t)) {
                deferred.push(example);
            } else {
                seen.extend(texts[example].iter().copied());
                batch.push(example);
            }
        }
        batches.push(batch);
        remaining = deferred;
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn covers_every_example_once_and_reduces_padding() {
        let lengths: Vec<usize> = (0..1000).map(|i| (i * 7919) % 97 + 3).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let batches = bucketed_batches(&lengths, 16, &mut rng);
        let mut all: Vec<usize> = batches.concat();
        all.sort();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        let padded: usize = batches.iter().map(|b| b.iter().map(|&i| lengths[i]).max().unwrap() * b.len()).sum();
        let real: usize = lengths.iter().sum();
        assert!((padded as f64) < real as f64 * 1.1, "padding {padded} vs {real}");
        let again = bucketed_batches(&lengths, 16, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(batches, again);
    }

    #[test]
    fn random_batches_cover_every_example_once() {
        let lengths = vec![5usize; 101];
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let batches = epoch_batches(Batching::Random, &lengths, 16, &mut rng);
        assert_eq!(batches.len(), 7);
        let mut all: Vec<usize> = batches.concat();
        assert_ne!(all[..16], (0..16).collect::<Vec<_>>()[..], "shuffled");
        all.sort();
        assert_eq!(all, (0..101).collect::<Vec<_>>());
    }

    #[test]
    fn distinct_batches_never_repeat_a_text() {
        // 60 examples over 10 distinct positives (text ids 100..110): each
        // batch of 8 can hold each positive once only.
        let texts: Vec<Vec<usize>> = (0..60).map(|i| vec![i, 100 + i % 10]).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let batches = distinct_batches(&texts, 8, &mut rng);
        for batch in &batches {
            let mut ids: Vec<usize> = batch.iter().flat_map(|&i| texts[i].clone()).collect();
            let n = ids.len();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), n, "a text twice in {batch:?}");
        }
        let mut all: Vec<usize> = batches.concat();
        all.sort();
        assert_eq!(all, (0..60).collect::<Vec<_>>());
        assert_eq!(batches, distinct_batches(&texts, 8, &mut ChaCha8Rng::seed_from_u64(3)));
        assert!(batches.iter().filter(|b| b.len() == 8).count() >= 6);
    }
}
