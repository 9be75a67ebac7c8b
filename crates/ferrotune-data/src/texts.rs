//! Texts (or text pairs) with a label, for sequence classification and
//! regression: TSV/CSV with a header row, or JSONL with the same keys.

use std::path::{Path, PathBuf};

use crate::{DataError, DataFormat, FileRole};

/// One example: a text or a text pair, its label field as written (absent in
/// unlabelled input), and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct TextExample {
    /// The text (`text`, or `text_a` of a pair).
    pub text_a: String,
    /// The second text of a pair (`text_b`).
    pub text_b: Option<String>,
    /// The `label` field: a class name, `|`-separated names, or a number.
    pub label: Option<String>,
    /// The file it was read from.
    pub path: PathBuf,
    /// The 1-based line.
    pub line: usize,
}

impl TextExample {
    /// A parse error at this example's line.
    pub fn error(&self, message: impl Into<String>) -> DataError {
        DataError::Parse { path: self.path.clone(), line: self.line, message: message.into() }
    }
}

/// Reads a text file by extension: `.jsonl`/`.json` (one object per line),
/// `.csv` (comma-separated, RFC 4180 quoting) or anything else as TSV (tab,
/// no quoting). Columns/keys: `text` or `text_a` and `text_b`, and `label`;
/// `label` is required when `need_label`. Empty texts are errors.
pub fn read_texts(path: &Path, need_label: bool) -> Result<Vec<TextExample>, DataError> {
    read_texts_as(path, need_label, None)
}

/// [`read_texts`] in the format `format` (`tsv`, `csv` or `jsonl`), or the
/// extension's when `None`.
pub fn read_texts_as(path: &Path, need_label: bool, format: Option<DataFormat>) -> Result<Vec<TextExample>, DataError> {
    let examples = match DataFormat::resolve(format, Some(path), FileRole::Texts)? {
        DataFormat::Jsonl => read_jsonl(path)?,
        DataFormat::Csv => read_delimited(path, b',', true)?,
        _ => read_delimited(path, b'\t', false)?,
    };
    if examples.is_empty() {
        return Err(DataError::Empty { path: path.to_path_buf() });
    }
    for example in &examples {
        if example.text_a.trim().is_empty() || example.text_b.as_deref().is_some_and(|b| b.trim().is_empty()) {
            return Err(example.error("empty text"));
        }
        if need_label && example.label.as_deref().is_none_or(|l| l.trim().is_empty()) {
            return Err(example.error("missing label"));
        }
    }
    Ok(examples)
}

fn io_error(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io { path: path.to_path_buf(), source }
}

fn read_delimited(path: &Path, delimiter: u8, quoting: bool) -> Result<Vec<TextExample>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let mut reader =
        csv::ReaderBuilder::new().delimiter(delimiter).quoting(quoting).has_headers(true).from_reader(file);
    let csv_error = |e: csv::Error| {
        let line = e.position().map_or(1, |p| p.line() as usize);
        DataError::Parse { path: path.to_path_buf(), line, message: e.to_string() }
    };
    let header: Vec<String> = reader.headers().map_err(csv_error)?.iter().map(|h| h.trim().to_string()).collect();
    let column = |name: &str| header.iter().position(|h| h == name);
    let header_error = |message: String| DataError::Parse { path: path.to_path_buf(), line: 1, message };
    let (a, b) = match (column("text"), column("text_a"), column("text_b")) {
        (Some(t), None, None) => (t, None),
        (None, Some(a), Some(b)) => (a, Some(b)),
        _ => {
            return Err(header_error(format!(
                "header {header:?}: expected a 'text' column, or 'text_a' and 'text_b' columns"
            )))
        }
    };
    let label = column("label");
    let mut examples = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let field = |i: usize| record.get(i).map(str::to_string);
        if record.len() != header.len() {
            return Err(DataError::Parse {
                path: path.to_path_buf(),
                line,
                message: format!("{} fields, the header has {}", record.len(), header.len()),
            });
        }
        examples.push(TextExample {
            text_a: field(a).unwrap_or_default(),
            text_b: b.and_then(field),
            label: label.and_then(field),
            path: path.to_path_buf(),
            line,
        });
    }
    Ok(examples)
}

fn read_jsonl(path: &Path) -> Result<Vec<TextExample>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    let mut examples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let error = |message: String| DataError::Parse { path: path.to_path_buf(), line: i + 1, message };
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| error(e.to_string()))?;
        let string = |key: &str| -> Result<Option<String>, DataError> {
            match value.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(serde_json::Value::Number(n)) if key == "label" => Ok(Some(n.to_string())),
                Some(serde_json::Value::Array(items)) if key == "label" => {
                    let names: Option<Vec<&str>> = items.iter().map(|v| v.as_str()).collect();
                    names.map(|n| Some(n.join("|"))).ok_or_else(|| error("'label': a list of strings expected".into()))
                }
                Some(_) => Err(error(format!("'{key}' must be a string"))),
            }
        };
        let (text_a, text_b) = match (string("text")?, string("text_a")?, string("text_b")?) {
            (Some(t), None, None) => (t, None),
            (None, Some(a), Some(b)) => (a, Some(b)),
            _ => return Err(error("expected a \"text\" key, or \"text_a\" and \"text_b\" keys".into())),
        };
        examples.push(TextExample { text_a, text_b, label: string("label")?, path: path.to_path_buf(), line: i + 1 });
    }
    Ok(examples)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::write_temp as write;

    #[test]
    fn reads_tsv_csv_and_jsonl() {
        let (_d, tsv) = write("a.tsv", "text\tlabel\nGood \"news\" today\tpositive\nBad\tnegative\n");
        let rows = read_texts(&tsv, true).unwrap();
        assert_eq!(rows[0].text_a, "Good \"news\" today");
        assert_eq!(rows[1].label.as_deref(), Some("negative"));
        assert_eq!(rows[1].line, 3);
        let (_d, csv) = write("a.csv", "text_a,text_b,label\n\"a, b\",c,x|y\n");
        let rows = read_texts(&csv, true).unwrap();
        assert_eq!((rows[0].text_a.as_str(), rows[0].text_b.as_deref()), ("a, b", Some("c")));
        assert_eq!(rows[0].label.as_deref(), Some("x|y"));
        let (_d, jsonl) =
            write("a.jsonl", "{\"text\": \"hi\", \"label\": [\"x\", \"y\"]}\n\n{\"text\": \"yo\", \"label\": 0.5}\n");
        let rows = read_texts(&jsonl, true).unwrap();
        assert_eq!(rows[0].label.as_deref(), Some("x|y"));
        assert_eq!((rows[1].label.as_deref(), rows[1].line), (Some("0.5"), 3));
    }

    #[test]
    fn errors_name_file_and_line() {
        let (_d, p) = write("a.tsv", "sentence\tlabel\nx\ty\n");
        assert!(read_texts(&p, true).unwrap_err().to_string().ends_with(
            "a.tsv:1: header [\"sentence\", \"label\"]: expected a 'text' column, or 'text_a' and 'text_b' columns"
        ));
        let (_d, p) = write("a.tsv", "text\tlabel\nok\tx\n \ty\n");
        assert!(read_texts(&p, true).unwrap_err().to_string().ends_with("a.tsv:3: empty text"));
        let (_d, p) = write("a.tsv", "text\tlabel\nok\tx\nno label\t\n");
        assert!(read_texts(&p, true).unwrap_err().to_string().ends_with("a.tsv:3: missing label"));
        assert!(read_texts(&p, false).is_ok());
        let (_d, p) = write("a.tsv", "text\tlabel\nok\tx\textra\n");
        let err = read_texts(&p, true).unwrap_err().to_string();
        assert!(err.contains("a.tsv:2:"), "{err}");
        let (_d, p) = write("a.jsonl", "{\"text\": \"a\"}\n{\"txt\": \"b\"}\n");
        assert!(read_texts(&p, false).unwrap_err().to_string().contains("a.jsonl:2: expected a \"text\" key"));
    }
}
