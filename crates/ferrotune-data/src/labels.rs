use std::collections::BTreeSet;

use crate::{DataError, TaggedSentence};

/// The tags a token-classification model predicts, `O` first and the rest
/// sorted, as saved with the model (`id2label`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSet {
    labels: Vec<String>,
}

/// The entity type of an IOB2 tag (`B-Disease` -> `Disease`), `None` for `O`.
pub fn entity_type(tag: &str) -> Option<&str> {
    tag.strip_prefix("B-").or_else(|| tag.strip_prefix("I-"))
}

impl LabelSet {
    /// The label set of a training corpus: every tag seen, plus the `B-`/`I-`
    /// partner of each entity type so that every type can be both begun and
    /// continued. Fails on a tag that is not IOB2.
    pub fn from_sentences(sentences: &[TaggedSentence]) -> Result<Self, DataError> {
        let mut types = BTreeSet::new();
        for sentence in sentences {
            for (i, tag) in sentence.tags.iter().enumerate() {
                if tag != "O" {
                    match entity_type(tag) {
                        Some(t) if !t.is_empty() => {
                            types.insert(t.to_string());
                        }
                        _ => {
                            return Err(DataError::Parse {
                                path: sentence.path.clone(),
                                line: sentence.token_lines.get(i).copied().unwrap_or(sentence.line),
                                message: format!("tag '{tag}' is not IOB2 (expected 'O', 'B-<TYPE>' or 'I-<TYPE>')"),
                            });
                        }
                    }
                }
            }
        }
        let mut labels = vec!["O".to_string()];
        let mut rest: Vec<String> = types.iter().flat_map(|t| [format!("B-{t}"), format!("I-{t}")]).collect();
        rest.sort();
        labels.extend(rest);
        Ok(Self { labels })
    }

    /// A label set from a saved list (`id2label` order). Validates IOB2.
    pub fn from_labels(labels: Vec<String>) -> Result<Self, DataError> {
        for label in &labels {
            if label != "O" && entity_type(label).is_none_or(|t| t.is_empty()) {
                return Err(DataError::InvalidLabel { label: label.clone() });
            }
        }
        Ok(Self { labels })
    }

    /// The labels in id order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set is empty (never true for a set built here).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The id of a tag, if the set has it.
    pub fn id(&self, tag: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == tag)
    }

    /// The tag of an id.
    pub fn label(&self, id: usize) -> &str {
        &self.labels[id]
    }

    /// The tag ids of every sentence, or an error naming the file and line of
    /// the first tag this set does not know.
    pub fn encode(&self, sentences: &[TaggedSentence]) -> Result<Vec<Vec<usize>>, DataError> {
        sentences
            .iter()
            .map(|s| {
                s.tags
                    .iter()
                    .enumerate()
                    .map(|(i, tag)| {
                        self.id(tag).ok_or_else(|| DataError::Parse {
                            path: s.path.clone(),
                            line: s.token_lines.get(i).copied().unwrap_or(s.line),
                            message: format!(
                                "tag '{tag}' is unknown to the model (it knows: {})",
                                self.labels.join(", ")
                            ),
                        })
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn sentence(tags: &[&str]) -> TaggedSentence {
        TaggedSentence {
            tokens: tags.iter().map(|_| "x".to_string()).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            path: PathBuf::from("t.tsv"),
            line: 3,
            token_lines: (3..3 + tags.len()).collect(),
        }
    }

    #[test]
    fn o_first_then_sorted_with_partners() {
        let set = LabelSet::from_sentences(&[sentence(&["B-Dis", "O", "I-Chem"])]).unwrap();
        assert_eq!(set.labels(), ["O", "B-Chem", "B-Dis", "I-Chem", "I-Dis"]);
    }

    #[test]
    fn rejects_non_iob_tags() {
        let err = LabelSet::from_sentences(&[sentence(&["O", "DISEASE"])]).unwrap_err();
        assert!(err.to_string().contains("t.tsv:4"), "{err}");
        assert!(LabelSet::from_labels(vec!["O".into(), "X-Y".into()]).is_err());
    }

    #[test]
    fn unknown_tag_names_its_line() {
        let set = LabelSet::from_sentences(&[sentence(&["B-Dis"])]).unwrap();
        let err = set.encode(&[sentence(&["O", "B-Chem"])]).unwrap_err();
        assert!(err.to_string().starts_with("t.tsv:4: tag 'B-Chem'"), "{err}");
    }
}
