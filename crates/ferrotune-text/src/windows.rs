//! Word to sub-token alignment and overlapping windows.
//!
//! The first sub-token of each word stands for the word (its label in
//! training, its prediction at inference). A sentence whose sub-tokens do not
//! fit in `max_len - 2` positions is cut at word boundaries into windows that
//! overlap by about half a window; each word is *owned* by the one window
//! where it has the most context on both sides, and only owned words are
//! trained on and predicted there, so every word counts exactly once.

use crate::TextError;

/// One model input: `[CLS] sub-tokens [SEP]` and the words it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Token ids including `[CLS]` and `[SEP]`.
    pub input_ids: Vec<u32>,
    /// `(position in input_ids, word index in the sentence)` of the first
    /// sub-token of each word this window owns.
    pub word_positions: Vec<(usize, usize)>,
}

/// Cuts a sentence, given as the sub-tokens of each word, into windows of at
/// most `max_len` tokens. A single word longer than a window keeps only its
/// first `max_len - 2` sub-tokens (its first one still stands for it).
pub fn windows_for_sentence(
    pieces: &[Vec<u32>],
    max_len: usize,
    cls_id: u32,
    sep_id: u32,
) -> Result<Vec<Window>, TextError> {
    if max_len < 3 {
        return Err(TextError::MaxLenTooSmall(max_len));
    }
    let capacity = max_len - 2;
    let lengths: Vec<usize> = pieces.iter().map(|p| p.len().clamp(1, capacity)).collect();
    // offsets[w] = sub-token offset of word w; offsets[n] = total.
    let mut offsets = Vec::with_capacity(lengths.len() + 1);
    let mut total = 0;
    for len in &lengths {
        offsets.push(total);
        total += len;
    }
    offsets.push(total);
    let n = pieces.len();

    // Word ranges [start, end) of the windows.
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < n {
        let mut end = start;
        while end < n && offsets[end + 1] - offsets[start] <= capacity {
            end += 1;
        }
        ranges.push((start, end));
        if end == n {
            break;
        }
        let target = offsets[start] + capacity / 2;
        let mut next = start + 1;
        while next < end && offsets[next] < target {
            next += 1;
        }
        start = next;
    }

    let mut owner = vec![0usize; n];
    let mut best_context = vec![-1i64; n];
    for (k, &(s, e)) in ranges.iter().enumerate() {
        for w in s..e {
            let left = (offsets[w] - offsets[s]) as i64;
            let right = (offsets[e] - offsets[w + 1]) as i64;
            let context = left.min(right);
            if context > best_context[w] {
                best_context[w] = context;
                owner[w] = k;
            }
        }
    }

    Ok(ranges
        .iter()
        .enumerate()
        .map(|(k, &(s, e))| {
            let mut input_ids = Vec::with_capacity(offsets[e] - offsets[s] + 2);
            input_ids.push(cls_id);
            let mut word_positions = Vec::new();
            for w in s..e {
                if owner[w] == k {
                    word_positions.push((input_ids.len(), w));
                }
                input_ids.extend(&pieces[w][..lengths[w].min(pieces[w].len())]);
            }
            input_ids.push(sep_id);
            Window { input_ids, word_positions }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLS: u32 = 101;
    const SEP: u32 = 102;

    fn pieces(lens: &[usize]) -> Vec<Vec<u32>> {
        let mut next = 1000;
        lens.iter()
            .map(|&l| {
                (0..l)
                    .map(|_| {
                        next += 1;
                        next
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn short_sentence_is_one_window_with_first_subtokens() {
        let p = pieces(&[1, 3, 2]);
        let w = windows_for_sentence(&p, 16, CLS, SEP).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].input_ids, [CLS, 1001, 1002, 1003, 1004, 1005, 1006, SEP]);
        assert_eq!(w[0].word_positions, [(1, 0), (2, 1), (5, 2)]);
    }

    #[test]
    fn long_sentence_every_word_owned_exactly_once() {
        for max_len in [3, 4, 5, 8, 13] {
            let p = pieces(&[1, 2, 1, 3, 1, 1, 2, 1, 1, 1, 4, 1, 2, 1, 1, 1, 1]);
            let windows = windows_for_sentence(&p, max_len, CLS, SEP).unwrap();
            let mut owned: Vec<usize> =
                windows.iter().flat_map(|w| w.word_positions.iter().map(|&(_, word)| word)).collect();
            owned.sort();
            assert_eq!(owned, (0..p.len()).collect::<Vec<_>>(), "max_len {max_len}");
            for w in &windows {
                assert!(w.input_ids.len() <= max_len);
                assert_eq!((w.input_ids[0], *w.input_ids.last().unwrap()), (CLS, SEP));
                for &(pos, word) in &w.word_positions {
                    assert_eq!(w.input_ids[pos], p[word][0], "first sub-token of word {word}");
                }
            }
            if max_len < 13 {
                assert!(windows.len() > 1);
            }
        }
    }

    #[test]
    fn owner_is_the_window_with_most_context() {
        // 10 one-piece words, capacity 6: windows [0,6), [3,9), [6,10).
        let p = pieces(&[1; 10]);
        let windows = windows_for_sentence(&p, 8, CLS, SEP).unwrap();
        let words = |k: usize| windows[k].word_positions.iter().map(|&(_, w)| w).collect::<Vec<_>>();
        assert_eq!(windows.len(), 3);
        // Word 4 has one token of context on its weaker side in both of the
        // first two windows: ties go to the earlier window.
        assert_eq!(words(0), [0, 1, 2, 3, 4]);
        assert_eq!(words(1), [5, 6, 7]);
        assert_eq!(words(2), [8, 9]);
    }

    #[test]
    fn overlong_word_is_cut_but_kept() {
        let p = pieces(&[2, 9, 1]);
        let windows = windows_for_sentence(&p, 6, CLS, SEP).unwrap();
        let owned: usize = windows.iter().map(|w| w.word_positions.len()).sum();
        assert_eq!(owned, 3);
        assert!(windows.iter().all(|w| w.input_ids.len() <= 6));
        assert!(windows_for_sentence(&p, 2, CLS, SEP).is_err());
    }
}
