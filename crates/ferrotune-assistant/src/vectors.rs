//! Exact top-k search over the index's normalised vectors: the dot product
//! of the query with every row, then a partial sort.

/// The dot product of two equally long vectors, summed in eight lanes so
/// that the compiler can keep them in vector registers.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The `k` rows of `vectors` (rows of `dim` coordinates) nearest to `query`
/// by dot product (cosine similarity for normalised vectors), best first,
/// ties by row.
pub(crate) fn exact_top_k(vectors: &[f32], dim: usize, query: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut scored: Vec<(usize, f32)> = vectors.chunks_exact(dim).map(|row| dot(row, query)).enumerate().collect();
    let order = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if k < scored.len() {
        scored.select_nth_unstable_by(k, order);
        scored.truncate(k);
    }
    scored.sort_by(order);
    scored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_rows_in_order() {
        let vectors = [1.0, 0.0, 0.0, 1.0, 0.6, 0.8, 0.8, 0.6];
        assert_eq!(exact_top_k(&vectors, 2, &[1.0, 0.0], 2), [(0, 1.0), (3, 0.8)]);
        assert_eq!(exact_top_k(&vectors, 2, &[0.0, 1.0], 9).iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3, 0]);
        assert!(exact_top_k(&vectors, 2, &[0.0, 1.0], 0).is_empty());
        let (a, b): (Vec<f32>, Vec<f32>) = (0..21).map(|i| (i as f32, 1.0 - i as f32 / 8.0)).unzip();
        assert_eq!(dot(&a, &b), a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>());
    }
}
