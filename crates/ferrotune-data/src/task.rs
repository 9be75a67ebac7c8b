//! What a model is trained to do, and how the label field of a text example
//! reads for each kind of sequence task.

use std::collections::BTreeSet;

use crate::{DataError, TextExample};

/// What a sequence-level head predicts for a text or pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SequenceKind {
    /// One class per text, softmax (`single_label_classification`).
    Classify,
    /// Any number of classes per text, sigmoid and a threshold
    /// (`multi_label_classification`).
    Multilabel,
    /// One number per text (`regression`).
    Regression,
}

impl SequenceKind {
    /// Every kind, in the order the command line lists them.
    pub const ALL: [SequenceKind; 3] = [SequenceKind::Classify, SequenceKind::Multilabel, SequenceKind::Regression];

    /// The name used on the command line and in option files.
    pub fn name(self) -> &'static str {
        match self {
            SequenceKind::Classify => "classify",
            SequenceKind::Multilabel => "multilabel",
            SequenceKind::Regression => "regression",
        }
    }

    /// The `problem_type` of `transformers`' sequence classification config.
    pub fn problem_type(self) -> &'static str {
        match self {
            SequenceKind::Classify => "single_label_classification",
            SequenceKind::Multilabel => "multi_label_classification",
            SequenceKind::Regression => "regression",
        }
    }

    /// The kind of a `problem_type`.
    pub fn from_problem_type(problem_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.problem_type() == problem_type)
    }
}

/// The task of a model: tags per word, or one of the sequence kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// Named entities: one IOB2 tag per word (`BertForTokenClassification`).
    Ner,
    /// A class, classes or a number per text (`BertForSequenceClassification`).
    Sequence(SequenceKind),
    /// One vector per text, compared by cosine similarity (a
    /// sentence-transformers bi-encoder trained on query/positive pairs).
    Retrieval,
}

impl Task {
    /// Every task, in the order the command line lists them.
    pub const ALL: [Task; 5] = [
        Task::Ner,
        Task::Sequence(SequenceKind::Classify),
        Task::Sequence(SequenceKind::Multilabel),
        Task::Sequence(SequenceKind::Regression),
        Task::Retrieval,
    ];

    /// The name used on the command line and in option files.
    pub fn name(self) -> &'static str {
        match self {
            Task::Ner => "ner",
            Task::Sequence(kind) => kind.name(),
            Task::Retrieval => "retrieval",
        }
    }

    /// Parses a name (see [`Task::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// What the task's examples are called in messages.
    pub fn example_noun(self) -> &'static str {
        match self {
            Task::Ner => "sentences",
            Task::Sequence(_) => "texts",
            Task::Retrieval => "pairs",
        }
    }

    /// What happens to an input longer than the model's maximum length.
    pub fn long_input_handling(self) -> &'static str {
        match self {
            Task::Ner => "split into overlapping windows",
            Task::Sequence(_) | Task::Retrieval => "cut",
        }
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Task {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Task {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Task::from_name(&name).ok_or_else(|| {
            let names: Vec<&str> = Task::ALL.iter().map(|t| t.name()).collect();
            serde::de::Error::custom(format!("unknown task '{name}': expected one of {}", names.join(", ")))
        })
    }
}

impl clap::ValueEnum for Task {
    fn value_variants<'a>() -> &'a [Self] {
        &Task::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let help = match self {
            Task::Ner => "tags per word",
            Task::Sequence(SequenceKind::Classify) => "one class per text",
            Task::Sequence(SequenceKind::Multilabel) => "any classes per text",
            Task::Sequence(SequenceKind::Regression) => "a number per text",
            Task::Retrieval => "a vector per text, for search",
        };
        Some(clap::builder::PossibleValue::new(self.name()).help(help))
    }
}

/// The gold answer of one text example.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A class id (classify).
    Class(usize),
    /// The ids of every class that applies (multilabel).
    Classes(Vec<usize>),
    /// A number (regression).
    Value(f32),
}

/// The label name of a regression model's single output.
pub const REGRESSION_LABEL: &str = "score";

/// The label names a sequence task learns from `examples`: sorted class
/// names (multilabel: every name between `|`), or [`REGRESSION_LABEL`].
pub fn text_labels(kind: SequenceKind, examples: &[TextExample]) -> Result<Vec<String>, DataError> {
    if kind == SequenceKind::Regression {
        return Ok(vec![REGRESSION_LABEL.to_string()]);
    }
    let mut names = BTreeSet::new();
    for example in examples {
        let label = example.label.as_deref().ok_or_else(|| example.error("missing label"))?;
        match kind {
            SequenceKind::Multilabel => names.extend(split_classes(label)),
            _ => {
                names.insert(label.trim());
            }
        }
    }
    if kind == SequenceKind::Classify && names.len() < 2 {
        let path = examples.first().map(|e| e.path.clone()).unwrap_or_default();
        return Err(DataError::Parse {
            path,
            line: 1,
            message: format!("{} class(es) found; classification needs at least 2", names.len()),
        });
    }
    Ok(names.into_iter().map(str::to_string).collect())
}

fn split_classes(label: &str) -> impl Iterator<Item = &str> {
    label.split('|').map(str::trim).filter(|s| !s.is_empty())
}

/// The target of one example under `labels`; an unknown class name or a
/// number that does not parse is an error at the example's line.
pub fn encode_target(kind: SequenceKind, labels: &[String], example: &TextExample) -> Result<Target, DataError> {
    let label = example.label.as_deref().ok_or_else(|| example.error("missing label"))?;
    let class = |name: &str| {
        labels
            .iter()
            .position(|l| l == name)
            .ok_or_else(|| example.error(format!("unknown label '{name}' (the model knows: {})", labels.join(", "))))
    };
    match kind {
        SequenceKind::Classify => Ok(Target::Class(class(label.trim())?)),
        SequenceKind::Multilabel => Ok(Target::Classes(split_classes(label).map(class).collect::<Result<_, _>>()?)),
        SequenceKind::Regression => label
            .trim()
            .parse::<f32>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Target::Value)
            .ok_or_else(|| example.error(format!("label '{label}' is not a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(label: &str) -> TextExample {
        TextExample { text_a: "t".into(), text_b: None, label: Some(label.into()), path: "d.tsv".into(), line: 7 }
    }

    #[test]
    fn labels_and_targets_per_task() {
        use SequenceKind::*;
        let rows = [example("neg"), example("pos"), example("neg")];
        let labels = text_labels(Classify, &rows).unwrap();
        assert_eq!(labels, ["neg", "pos"]);
        assert_eq!(encode_target(Classify, &labels, &rows[1]).unwrap(), Target::Class(1));
        let err = encode_target(Classify, &labels, &example("meh")).unwrap_err().to_string();
        assert_eq!(err, "d.tsv:7: unknown label 'meh' (the model knows: neg, pos)");
        let multi = [example("b|a"), example("c")];
        let labels = text_labels(Multilabel, &multi).unwrap();
        assert_eq!(labels, ["a", "b", "c"]);
        assert_eq!(encode_target(Multilabel, &labels, &multi[0]).unwrap(), Target::Classes(vec![1, 0]));
        assert_eq!(encode_target(Regression, &[], &example(" 2.5")).unwrap(), Target::Value(2.5));
        assert!(encode_target(Regression, &[], &example("high")).unwrap_err().to_string().contains("not a number"));
        assert!(text_labels(Classify, &[example("x")]).is_err());
    }

    #[test]
    fn names_and_problem_types_round_trip() {
        for task in Task::ALL {
            assert_eq!(Task::from_name(task.name()), Some(task));
            let json = serde_json::to_string(&task).unwrap();
            assert_eq!(serde_json::from_str::<Task>(&json).unwrap(), task);
        }
        for kind in SequenceKind::ALL {
            assert_eq!(SequenceKind::from_problem_type(kind.problem_type()), Some(kind));
        }
        assert!(serde_json::from_str::<Task>("\"tagging\"").unwrap_err().to_string().contains("unknown task"));
    }
}
