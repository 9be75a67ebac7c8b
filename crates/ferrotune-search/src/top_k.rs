//! The `k` best of a row of scores: partial selection, then a sort of the
//! selected, ties broken by insertion order.

/// Indices of the `k` highest `scores` (all of them when `k` is larger),
/// best first; equal scores in increasing `order`.
pub(crate) fn top_k(scores: &[f32], order: &[u64], k: usize) -> Vec<usize> {
    let better = |&a: &usize, &b: &usize| scores[b].total_cmp(&scores[a]).then(order[a].cmp(&order[b]));
    let mut picked: Vec<usize> = (0..scores.len()).collect();
    if k == 0 {
        return Vec::new();
    }
    if k < picked.len() {
        picked.select_nth_unstable_by(k - 1, |a, b| better(a, b));
        picked.truncate(k);
    }
    picked.sort_unstable_by(|a, b| better(a, b));
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_the_best_with_ties_in_insertion_order() {
        let scores = [0.5, 0.9, 0.5, 0.1, 0.9, 0.5];
        let order = [5, 3, 0, 1, 2, 4];
        assert_eq!(top_k(&scores, &order, 3), [4, 1, 2]);
        assert_eq!(top_k(&scores, &order, 10), [4, 1, 2, 5, 0, 3]);
        assert!(top_k(&scores, &order, 0).is_empty());
        assert!(top_k(&[], &[], 3).is_empty());
    }
}
