//! File formats by name: every reader takes its format from the caller
//! (`--format`) or from the file's extension, never from the content of a
//! line.

use std::path::Path;

use crate::DataError;

/// A data file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// One text per line (inputs only).
    Text,
    /// One JSON object per line.
    Jsonl,
    /// One token per line, the tag in the last column, a blank line between
    /// sentences (tagged files only).
    Conll,
    /// Tab-separated: a table with a header (texts), or CoNLL with tabs
    /// (tagged files).
    Tsv,
    /// Comma-separated with RFC 4180 quotes, a header first.
    Csv,
}

/// What a file is read as: decides which formats apply and the format of
/// an extension (`.tsv` is CoNLL for tagged files, a table for texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    /// Labelled NER sentences: CoNLL (`.conll`, `.tsv`) or JSONL (`.jsonl`);
    /// any other extension is CoNLL.
    Tagged,
    /// Labelled texts or pairs: TSV (`.tsv`), CSV (`.csv`) or JSONL
    /// (`.jsonl`, `.json`); any other extension is TSV.
    Texts,
    /// Unlabelled inputs: plain text (`.txt`), JSONL (`.jsonl`, `.json`),
    /// TSV or CSV tables; any other extension (and standard input) is text.
    Inputs,
}

impl DataFormat {
    /// Every format, in the order of [`DataFormat::NAMES`].
    pub const ALL: [DataFormat; 5] =
        [DataFormat::Text, DataFormat::Jsonl, DataFormat::Conll, DataFormat::Tsv, DataFormat::Csv];
    /// The name of every format.
    pub const NAMES: [&'static str; 5] = ["text", "jsonl", "conll", "tsv", "csv"];

    /// The format's name, as `--format` takes it.
    pub fn name(self) -> &'static str {
        Self::NAMES[Self::ALL.iter().position(|f| *f == self).expect("every format is listed")]
    }

    /// The format of a name (`text`, `jsonl`, `conll`, `tsv`, `csv`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)).map(|i| Self::ALL[i])
    }

    /// The format of `path` read in `role`: `given` if any, else its extension's.
    /// A format that does not apply to the role is an error naming the file.
    pub fn resolve(given: Option<Self>, path: Option<&Path>, role: FileRole) -> Result<Self, DataError> {
        let extension =
            path.and_then(|p| p.extension()).and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
        let format = given.unwrap_or(match (role, extension.as_str()) {
            (FileRole::Tagged, "jsonl" | "json") => DataFormat::Jsonl,
            (FileRole::Tagged, _) => DataFormat::Conll,
            (FileRole::Texts, "jsonl" | "json") => DataFormat::Jsonl,
            (FileRole::Texts, "csv") => DataFormat::Csv,
            (FileRole::Texts, _) => DataFormat::Tsv,
            (FileRole::Inputs, "jsonl" | "json") => DataFormat::Jsonl,
            (FileRole::Inputs, "tsv") => DataFormat::Tsv,
            (FileRole::Inputs, "csv") => DataFormat::Csv,
            (FileRole::Inputs, _) => DataFormat::Text,
        });
        let (fits, expected) = match role {
            FileRole::Tagged => {
                (matches!(format, DataFormat::Conll | DataFormat::Tsv | DataFormat::Jsonl), "conll, tsv or jsonl")
            }
            FileRole::Texts => {
                (matches!(format, DataFormat::Tsv | DataFormat::Csv | DataFormat::Jsonl), "tsv, csv or jsonl")
            }
            FileRole::Inputs => (format != DataFormat::Conll, "text, jsonl, tsv or csv"),
        };
        if fits {
            Ok(format)
        } else {
            let path = path.map_or_else(|| "<stdin>".into(), Path::to_path_buf);
            Err(DataError::UnsupportedFormat { path, format: format.name(), expected })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_name_or_the_extension() {
        let resolve = |given, path: &str, role| DataFormat::resolve(given, Some(Path::new(path)), role).unwrap();
        assert_eq!(resolve(None, "a.tsv", FileRole::Tagged), DataFormat::Conll);
        assert_eq!(resolve(None, "a.conll", FileRole::Tagged), DataFormat::Conll);
        assert_eq!(resolve(None, "a.JSONL", FileRole::Tagged), DataFormat::Jsonl);
        assert_eq!(resolve(None, "a.tsv", FileRole::Texts), DataFormat::Tsv);
        assert_eq!(resolve(None, "a.csv", FileRole::Texts), DataFormat::Csv);
        assert_eq!(resolve(None, "a.txt", FileRole::Inputs), DataFormat::Text);
        assert_eq!(resolve(None, "a.jsonl", FileRole::Inputs), DataFormat::Jsonl);
        assert_eq!(resolve(Some(DataFormat::Jsonl), "a.txt", FileRole::Inputs), DataFormat::Jsonl);
        assert_eq!(DataFormat::resolve(None, None, FileRole::Inputs).unwrap(), DataFormat::Text);
        let e = DataFormat::resolve(Some(DataFormat::Csv), Some(Path::new("a.x")), FileRole::Tagged).unwrap_err();
        assert_eq!(e.to_string(), "a.x: the csv format does not apply here; expected conll, tsv or jsonl");
        for name in DataFormat::NAMES {
            assert_eq!(DataFormat::from_name(name).unwrap().name(), name);
        }
        assert_eq!(DataFormat::from_name("xml"), None);
    }
}
