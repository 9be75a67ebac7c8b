//! The Multiple Negatives Ranking loss of sentence-transformers (its
//! defaults: query-to-document direction, one joint softmax): each query
//! against every document of the batch, cross-entropy over scaled cosine
//! similarities with the query's own positive as the target.

use candle_core::{Result, Tensor};
use ferrotune_model::sentence::normalize_rows;

/// The mean loss of `queries` `[n, dim]` against `documents` `[m, dim]`,
/// whose first `n` rows are the queries' positives, in order, and any
/// further rows hard negatives: the mean over queries of
/// `-log softmax(scale * cos(query, documents))[own positive]`.
pub fn ranking_loss(queries: &Tensor, documents: &Tensor, scale: f64) -> Result<Tensor> {
    let scores = (normalize_rows(queries)?.matmul(&normalize_rows(documents)?.t()?)? * scale)?;
    let n = queries.dim(0)? as u32;
    let targets = Tensor::arange(0u32, n, queries.device())?;
    candle_nn::loss::cross_entropy(&scores, &targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_a_hand_computation() {
        let queries = Tensor::new(&[[1f32, 0.0], [0.0, 2.0]], &Device::Cpu).unwrap();
        // Two positives, then one hard negative; lengths do not matter (cosine).
        let documents = Tensor::new(&[[3f32, 0.0], [1.0, 1.0], [0.0, -1.0]], &Device::Cpu).unwrap();
        let loss = ranking_loss(&queries, &documents, 20.0).unwrap().to_scalar::<f32>().unwrap() as f64;
        let half = std::f64::consts::FRAC_1_SQRT_2;
        let row = |scores: [f64; 3], own: usize| {
            let scaled = scores.map(|s| 20.0 * s);
            -scaled[own] + scaled.iter().map(|s| s.exp()).sum::<f64>().ln()
        };
        let expected = (row([1.0, half, 0.0], 0) + row([0.0, half, -1.0], 1)) / 2.0;
        assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
    }

    #[test]
    fn gradients_flow_to_both_sides() {
        let queries = candle_core::Var::new(&[[1f32, 0.5], [0.2, 1.0]], &Device::Cpu).unwrap();
        let documents = candle_core::Var::new(&[[1f32, 0.0], [0.0, 1.0]], &Device::Cpu).unwrap();
        let loss = ranking_loss(queries.as_tensor(), documents.as_tensor(), 20.0).unwrap();
        let grads = loss.backward().unwrap();
        for var in [&queries, &documents] {
            let g = grads.get(var).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(g > 0.0);
        }
    }
}
