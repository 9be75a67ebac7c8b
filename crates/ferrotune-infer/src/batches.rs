//! Forward passes bounded in inputs and in padded tokens: model inputs
//! sorted longest first are cut into consecutive batches, so that the
//! activations of one pass (which grow with inputs × longest input) stay
//! bounded whatever the lengths.

use std::ops::Range;

/// The limits of one forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Model inputs per pass.
    pub inputs: usize,
    /// Padded tokens per pass (inputs × the longest of them); an input
    /// longer than this is a pass alone.
    pub tokens: usize,
}

impl BatchLimits {
    /// Limits of `inputs` per pass and no token bound.
    pub fn inputs(inputs: usize) -> Self {
        Self { inputs, tokens: usize::MAX }
    }

    /// Cuts inputs sorted longest first (`lengths`, in tokens) into
    /// consecutive batches within the limits.
    pub fn split(&self, lengths: &[usize]) -> Vec<Range<usize>> {
        let mut batches = Vec::new();
        let mut start = 0;
        while start < lengths.len() {
            let longest = lengths[start].max(1);
            let n = (self.tokens / longest).clamp(1, self.inputs.max(1)).min(lengths.len() - start);
            batches.push(start..start + n);
            start += n;
        }
        batches
    }
}

/// The rows of one forward pass grouped by the model (base + adapter)
/// each runs with: `rows` reordered by model (stably) and the ranges of
/// consecutive rows of one model, with its index.
pub(crate) fn group_by_model<T: Copy>(
    rows: &[T],
    model_of: impl Fn(&T) -> usize,
) -> (Vec<T>, Vec<(Range<usize>, usize)>) {
    let mut sorted = rows.to_vec();
    sorted.sort_by_key(&model_of);
    let mut groups: Vec<(Range<usize>, usize)> = Vec::new();
    for (i, row) in sorted.iter().enumerate() {
        match groups.last_mut() {
            Some((range, model)) if *model == model_of(row) => range.end = i + 1,
            _ => groups.push((i..i + 1, model_of(row))),
        }
    }
    (sorted, groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_within_both_limits() {
        let limits = BatchLimits { inputs: 3, tokens: 100 };
        let lengths = [120, 60, 50, 40, 30, 10, 10, 10, 10, 5];
        let batches = limits.split(&lengths);
        assert_eq!(batches, [0..1, 1..2, 2..4, 4..7, 7..10]);
        for b in &batches {
            assert!(b.len() <= 3 && (b.len() == 1 || b.len() * lengths[b.start] <= 100), "{b:?}");
        }
        assert_eq!(BatchLimits::inputs(4).split(&lengths).len(), 3);
        assert!(limits.split(&[]).is_empty());
    }

    #[test]
    fn rows_are_grouped_by_model_in_a_stable_order() {
        let (sorted, groups) = group_by_model(&[(0, 2), (1, 0), (2, 2), (3, 1), (4, 0)], |r| r.1);
        assert_eq!(sorted, [(1, 0), (4, 0), (3, 1), (0, 2), (2, 2)]);
        assert_eq!(groups, [(0..2, 0), (2..3, 1), (3..5, 2)]);
        assert!(group_by_model(&[] as &[(u8, usize)], |r| r.1).1.is_empty());
    }
}
