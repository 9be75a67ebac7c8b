//! What a model is trained to do, and how the label field of a text example
//! reads for each kind of task.

use std::collections::BTreeSet;

use crate::{DataError, TextExample};

/// The task of a fine-tuned model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Named entities: one IOB2 tag per word (`BertForTokenClassification`).
    Ner,
    /// One class per text, softmax (`single_label_classification`).
    Classify,
    /// Any number of classes per text, sigmoid and a threshold
    /// (`multi_label_classification`).
    Multilabel,
    /// One number per text (`regression`).
    Regression,
}

/// The label name of a regression model's single output.
pub const REGRESSION_LABEL: &str = "score";

impl Task {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Task::Ner => "ner",
            Task::Classify => "classify",
            Task::Multilabel => "multilabel",
            Task::Regression => "regression",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Task::Ner, Task::Classify, Task::Multilabel, Task::Regression].into_iter().find(|t| t.name() == name)
    }

    /// The `problem_type` of `transformers`' sequence classification config.
    pub fn problem_type(self) -> Option<&'static str> {
        match self {
            Task::Ner => None,
            Task::Classify => Some("single_label_classification"),
            Task::Multilabel => Some("multi_label_classification"),
            Task::Regression => Some("regression"),
        }
    }

    /// The task of a `problem_type`.
    pub fn from_problem_type(problem_type: &str) -> Option<Self> {
        [Task::Classify, Task::Multilabel, Task::Regression].into_iter().find(|t| t.problem_type() == Some(problem_type))
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

/// The label names a sequence task learns from `examples`: sorted class
/// names (multilabel: every name between `|`), or [`REGRESSION_LABEL`].
pub fn text_labels(task: Task, examples: &[TextExample]) -> Result<Vec<String>, DataError> {
    if task == Task::Regression {
        return Ok(vec![REGRESSION_LABEL.to_string()]);
    }
    let mut names = BTreeSet::new();
    for example in examples {
        let label = example.label.as_deref().ok_or_else(|| example.error("missing label"))?;
        match task {
            Task::Multilabel => names.extend(split_classes(label)),
            _ => {
                names.insert(label.trim());
            }
        }
    }
    if task == Task::Classify && names.len() < 2 {
        let path = examples.first().map(|e| e.path.clone()).unwrap_or_default();
        return Err(DataError::Parse { path, line: 1, message: format!("{} class(es) found; classification needs at least 2", names.len()) });
    }
    Ok(names.into_iter().map(str::to_string).collect())
}

fn split_classes(label: &str) -> impl Iterator<Item = &str> {
    label.split('|').map(str::trim).filter(|s| !s.is_empty())
}

/// The target of one example under `labels`; an unknown class name or a
/// number that does not parse is an error at the example's line.
pub fn encode_target(task: Task, labels: &[String], example: &TextExample) -> Result<Target, DataError> {
    let label = example.label.as_deref().ok_or_else(|| example.error("missing label"))?;
    let class = |name: &str| {
        labels.iter().position(|l| l == name).ok_or_else(|| {
            example.error(format!("unknown label '{name}' (the model knows: {})", labels.join(", ")))
        })
    };
    match task {
        Task::Classify => Ok(Target::Class(class(label.trim())?)),
        Task::Multilabel => Ok(Target::Classes(split_classes(label).map(class).collect::<Result<_, _>>()?)),
        Task::Regression => label
            .trim()
            .parse::<f32>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Target::Value)
            .ok_or_else(|| example.error(format!("label '{label}' is not a number"))),
        Task::Ner => Err(example.error("NER examples are tagged words, not texts")),
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
        let rows = [example("neg"), example("pos"), example("neg")];
        let labels = text_labels(Task::Classify, &rows).unwrap();
        assert_eq!(labels, ["neg", "pos"]);
        assert_eq!(encode_target(Task::Classify, &labels, &rows[1]).unwrap(), Target::Class(1));
        let err = encode_target(Task::Classify, &labels, &example("meh")).unwrap_err().to_string();
        assert_eq!(err, "d.tsv:7: unknown label 'meh' (the model knows: neg, pos)");
        let multi = [example("b|a"), example("c")];
        let labels = text_labels(Task::Multilabel, &multi).unwrap();
        assert_eq!(labels, ["a", "b", "c"]);
        assert_eq!(encode_target(Task::Multilabel, &labels, &multi[0]).unwrap(), Target::Classes(vec![1, 0]));
        assert_eq!(encode_target(Task::Regression, &[], &example(" 2.5")).unwrap(), Target::Value(2.5));
        assert!(encode_target(Task::Regression, &[], &example("high")).unwrap_err().to_string().contains("not a number"));
        assert!(text_labels(Task::Classify, &[example("x")]).is_err());
    }

    #[test]
    fn names_and_problem_types_round_trip() {
        for task in [Task::Ner, Task::Classify, Task::Multilabel, Task::Regression] {
            assert_eq!(Task::from_name(task.name()), Some(task));
            if let Some(p) = task.problem_type() {
                assert_eq!(Task::from_problem_type(p), Some(task));
            }
        }
    }
}
