//! Entity spans from IOB/IOBES tags, by seqeval's default (lenient) rules:
//! an `I-` without a `B-` starts an entity, and a change of type ends one.

/// An entity span over word indices `start..=end` (inclusive, as seqeval).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entity {
    /// Entity type (`Disease` for `B-Disease`).
    pub kind: String,
    /// Index of the first word.
    pub start: usize,
    /// Index of the last word (inclusive).
    pub end: usize,
}

fn split(tag: &str) -> (char, &str) {
    let prefix = tag.chars().next().unwrap_or('O');
    let kind = match tag.get(1..) {
        Some(rest) => rest.split_once('-').map(|(_, t)| t).unwrap_or(rest),
        None => "",
    };
    (prefix, if kind.is_empty() { "_" } else { kind })
}

fn end_of_chunk(prev_tag: char, tag: char, prev_type: &str, kind: &str) -> bool {
    matches!(prev_tag, 'E' | 'S')
        || (matches!(prev_tag, 'B' | 'I') && matches!(tag, 'B' | 'S' | 'O'))
        || (prev_tag != 'O' && prev_tag != '.' && prev_type != kind)
}

fn start_of_chunk(prev_tag: char, tag: char, prev_type: &str, kind: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev_tag, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_type != kind)
}

/// The entities of one tag sequence, in order.
pub fn get_entities<S: AsRef<str>>(tags: &[S]) -> Vec<Entity> {
    let mut entities = Vec::new();
    let (mut prev_tag, mut prev_type) = ('O', "_".to_string());
    let mut begin = 0;
    // A final `O` closes an entity that runs to the end.
    let all = tags.iter().map(|t| split(t.as_ref())).chain(std::iter::once(('O', "_")));
    for (i, (tag, kind)) in all.enumerate() {
        if end_of_chunk(prev_tag, tag, &prev_type, kind) {
            entities.push(Entity { kind: prev_type.clone(), start: begin, end: i - 1 });
        }
        if start_of_chunk(prev_tag, tag, &prev_type, kind) {
            begin = i;
        }
        prev_tag = tag;
        prev_type = kind.to_string();
    }
    entities
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(tags: &[&str]) -> Vec<(String, usize, usize)> {
        get_entities(tags).into_iter().map(|e| (e.kind, e.start, e.end)).collect()
    }

    // Expected values are what seqeval.metrics.sequence_labeling.get_entities returns.
    #[test]
    fn matches_seqeval_get_entities() {
        let s = |k: &str, a, b| (k.to_string(), a, b);
        assert_eq!(spans(&["B-PER", "I-PER", "O", "B-LOC"]), [s("PER", 0, 1), s("LOC", 3, 3)]);
        // I- without B- starts an entity.
        assert_eq!(spans(&["O", "I-PER", "I-PER", "O"]), [s("PER", 1, 2)]);
        // Adjacent entities.
        assert_eq!(spans(&["B-PER", "B-PER", "I-PER"]), [s("PER", 0, 0), s("PER", 1, 2)]);
        // Entity at the end of the sentence.
        assert_eq!(spans(&["O", "B-LOC", "I-LOC"]), [s("LOC", 1, 2)]);
        // A type change inside a span splits it.
        assert_eq!(spans(&["B-PER", "I-LOC", "I-LOC"]), [s("PER", 0, 0), s("LOC", 1, 2)]);
        assert_eq!(spans(&["O", "O"]), []);
    }
}
