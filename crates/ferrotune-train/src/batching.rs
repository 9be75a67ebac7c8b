//! Length-bucketed, shuffled batches: similar lengths share a batch so that
//! little of it is padding, while the order stays random.

use rand::seq::SliceRandom;
use rand::Rng;

/// Example indices per bucket: shuffled, then sorted by length within
/// pools of `POOL` batches.
const POOL: usize = 50;

/// Splits examples (given by their lengths) into batches of `batch_size`:
/// shuffle, sort by length within pools of 50 batches, cut, shuffle the
/// batches. Every example is in exactly one batch.
pub fn bucketed_batches(lengths: &[usize], batch_size: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
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
}
