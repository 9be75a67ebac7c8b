//! Unlabelled inputs of a fine-tuned model (what `predict` reads): one
//! reader per format, each yielding [`TextInput`]s with their line numbers.
//!
//! The format is given (`--format`) or comes from the extension (see
//! [`crate::FileRole::Inputs`]), never from a line's first character:
//!
//! - `tsv` / `csv`: a table with a header (`text`, or `text_a` and
//!   `text_b`; other columns such as `label` are ignored), read by the same
//!   reader as labelled text files.
//! - `jsonl`: one JSON object per line (`{"text"}`, `{"tokens": [...]}` or
//!   `{"text_a", "text_b"}`).
//! - `text` (`.txt`, any other extension, and standard input by default):
//!   one text per line, whatever its characters.
//!
//! In both line formats an empty line is an empty text, so outputs stay
//! one per line.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::{read_texts_as, DataError, DataFormat, FileRole};

/// One input of a fine-tuned model.
#[derive(Debug, Clone, PartialEq)]
pub enum TextInput {
    /// Words already split (`{"tokens": [...]}`).
    Words(Vec<String>),
    /// A raw text.
    Text(String),
    /// A text pair (`{"text_a", "text_b"}`).
    Pair(String, String),
}

/// An input and the 1-based line it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberedInput {
    /// The line (for tables: the record's line).
    pub line: usize,
    /// The input.
    pub input: TextInput,
}

/// Reads inputs from `path`, or from standard input when `None`, one at a
/// time (lines are read as they are needed, so a large file or an endless
/// stream is never held in memory), in `format` or the extension's (text
/// for standard input). Errors name the file (or `<stdin>`) and the line.
pub fn read_inputs(path: Option<&Path>, format: Option<DataFormat>) -> Result<InputReader, DataError> {
    let format = DataFormat::resolve(format, path, FileRole::Inputs)?;
    let is_table = matches!(format, DataFormat::Tsv | DataFormat::Csv);
    let json = format == DataFormat::Jsonl;
    let source = match path {
        Some(path) if is_table => {
            let rows = read_texts_as(path, false, Some(format))?.into_iter().map(|row| NumberedInput {
                line: row.line,
                input: match row.text_b {
                    Some(b) => TextInput::Pair(row.text_a, b),
                    None => TextInput::Text(row.text_a),
                },
            });
            Source::Table(Box::new(rows))
        }
        Some(path) => {
            let file =
                std::fs::File::open(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
            Source::Lines(Box::new(BufReader::new(file)))
        }
        None if is_table => {
            let name = "<stdin>".into();
            return Err(DataError::UnsupportedFormat { path: name, format: format.name(), expected: "text or jsonl" });
        }
        None => Source::Lines(Box::new(std::io::stdin().lock())),
    };
    let name = path.map_or_else(|| PathBuf::from("<stdin>"), Path::to_path_buf);
    Ok(InputReader { source, lines: LineState { name, line: 0, buffer: Vec::new(), json } })
}

enum Source {
    Table(Box<dyn Iterator<Item = NumberedInput>>),
    Lines(Box<dyn BufRead>),
}

/// The inputs of one file or of standard input; see [`read_inputs`].
pub struct InputReader {
    source: Source,
    lines: LineState,
}

/// Where a line reader is.
struct LineState {
    name: PathBuf,
    line: usize,
    buffer: Vec<u8>,
    /// JSONL (else plain text).
    json: bool,
}

impl InputReader {
    /// The file's path, or `<stdin>`.
    pub fn name(&self) -> &Path {
        &self.lines.name
    }
}

impl LineState {
    fn next(&mut self, reader: &mut dyn BufRead) -> Option<Result<NumberedInput, DataError>> {
        self.buffer.clear();
        match reader.read_until(b'\n', &mut self.buffer) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(source) => return Some(Err(DataError::Io { path: self.name.clone(), source })),
        }
        self.line += 1;
        let bytes = self.buffer.strip_suffix(b"\n").unwrap_or(&self.buffer);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let error = |message: String| DataError::Parse { path: self.name.clone(), line: self.line, message };
        let parsed = match std::str::from_utf8(bytes) {
            Ok(text) if !self.json => Ok(TextInput::Text(text.to_string())),
            Ok(text) => parse_json_line(text).map_err(error),
            Err(e) => Err(error(format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()))),
        };
        Some(parsed.map(|input| NumberedInput { line: self.line, input }))
    }
}

impl Iterator for InputReader {
    type Item = Result<NumberedInput, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.source {
            Source::Table(rows) => rows.next().map(Ok),
            Source::Lines(reader) => self.lines.next(reader.as_mut()),
        }
    }
}

/// One JSONL input line: a JSON object, or an empty line (an empty text).
pub fn parse_json_line(line: &str) -> Result<TextInput, String> {
    if line.trim().is_empty() {
        return Ok(TextInput::Text(String::new()));
    }
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let string = |key: &str| match value.get(key) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("\"{key}\" must be a string")),
    };
    if let Some(text) = string("text")? {
        return Ok(TextInput::Text(text));
    }
    if let Some(tokens) = value.get("tokens") {
        let tokens: Vec<String> =
            serde_json::from_value(tokens.clone()).map_err(|_| "\"tokens\" must be an array of strings".to_string())?;
        if let Some(t) = tokens.iter().find(|t| t.trim().is_empty() || t.chars().any(char::is_whitespace)) {
            return Err(format!("token {t:?} is empty or contains whitespace"));
        }
        return Ok(TextInput::Words(tokens));
    }
    match (string("text_a")?, string("text_b")?) {
        (Some(a), Some(b)) => Ok(TextInput::Pair(a, b)),
        _ => Err("expected an object with \"text\", \"tokens\", or \"text_a\" and \"text_b\"".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, content: &[u8]) -> Result<Vec<NumberedInput>, DataError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        read_inputs(Some(&path), None)?.collect()
    }

    #[test]
    fn lines_are_text_or_json_objects() {
        let inputs = read(
            "in.jsonl",
            b"{\"text\": \"plain text\"}\r\n{\"tokens\": [\"BRCA1\", \"cancer\"]}\n\n{\"text\": \"a, b\"}\n{\"text_a\": \"x\", \"text_b\": \"y\"}",
        )
        .unwrap();
        let expected = [
            TextInput::Text("plain text".into()),
            TextInput::Words(vec!["BRCA1".into(), "cancer".into()]),
            TextInput::Text(String::new()),
            TextInput::Text("a, b".into()),
            TextInput::Pair("x".into(), "y".into()),
        ];
        assert_eq!(inputs.iter().map(|i| &i.input).collect::<Vec<_>>(), expected.iter().collect::<Vec<_>>());
        assert_eq!(inputs.iter().map(|i| i.line).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn tables_are_read_by_header() {
        let inputs = read("in.csv", b"text_a,text_b,label\n\"a, b\",c,x\n").unwrap();
        assert_eq!(inputs[0], NumberedInput { line: 2, input: TextInput::Pair("a, b".into(), "c".into()) });
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        for bad in [
            &br#"{"text": 3}"#[..],
            br#"{"tokens": "x"}"#,
            br#"{"other": 1}"#,
            b"{broken",
            br#"{"tokens": ["a b"]}"#,
            b"\xffx",
        ] {
            let mut content = b"{\"text\": \"fine\"}\n".to_vec();
            content.extend_from_slice(bad);
            let err = read("in.jsonl", &content).unwrap_err().to_string();
            assert!(err.contains("in.jsonl:2: "), "{err}");
        }
    }

    /// Issue 13, item 6: in a text file every line is a text, braces and all.
    #[test]
    fn text_lines_starting_with_a_brace_are_text() {
        for name in ["in.txt", "in"] {
            let inputs = read(name, b"{BRCA1} mutations cause cancer\n{\"text\": 1}\n").unwrap();
            assert_eq!(inputs[0].input, TextInput::Text("{BRCA1} mutations cause cancer".into()), "{name}");
            assert_eq!(inputs[1].input, TextInput::Text("{\"text\": 1}".into()), "{name}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "{\"text\": \"a\"}\n").unwrap();
        let read = read_inputs(Some(&path), Some(DataFormat::Jsonl)).unwrap().next().unwrap().unwrap();
        assert_eq!(read.input, TextInput::Text("a".into()));
        assert!(read_inputs(Some(&path), Some(DataFormat::Conll)).is_err());
    }
}
