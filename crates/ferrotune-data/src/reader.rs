use std::path::{Path, PathBuf};

use crate::{DataError, DataFormat, FileRole};

/// One sentence of a labelled file: words, their tags, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct TaggedSentence {
    /// The words.
    pub tokens: Vec<String>,
    /// One tag per word.
    pub tags: Vec<String>,
    /// The file it was read from.
    pub path: PathBuf,
    /// The 1-based line where the sentence starts.
    pub line: usize,
    /// The 1-based line of each word (all equal to `line` for JSONL).
    pub token_lines: Vec<usize>,
}

/// Reads a labelled file in the format of its extension (see
/// [`crate::FileRole::Tagged`]): JSONL (`{"tokens": [...], "tags": [...]}`
/// per line) for `.jsonl`, CoNLL otherwise (token and tag separated by a tab
/// or spaces, tag in the last column, a blank line between sentences,
/// `-DOCSTART-` lines skipped). The content never decides the format.
pub fn read_tagged(path: &Path) -> Result<Vec<TaggedSentence>, DataError> {
    read_tagged_as(path, None)
}

/// [`read_tagged`] in the format `format` (`conll`, `tsv` or `jsonl`), or
/// the extension's when `None`.
pub fn read_tagged_as(path: &Path, format: Option<DataFormat>) -> Result<Vec<TaggedSentence>, DataError> {
    let format = DataFormat::resolve(format, Some(path), FileRole::Tagged)?;
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    let mut lines = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = std::str::from_utf8(raw).map_err(|e| DataError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            message: format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()),
        })?;
        lines.push(text);
    }
    let sentences = match format {
        DataFormat::Jsonl => parse_jsonl(path, &lines)?,
        _ => parse_conll(path, &lines)?,
    };
    if sentences.is_empty() {
        return Err(DataError::Empty { path: path.to_path_buf() });
    }
    Ok(sentences)
}

fn parse_conll(path: &Path, lines: &[&str]) -> Result<Vec<TaggedSentence>, DataError> {
    let mut sentences = Vec::new();
    let mut current: Option<TaggedSentence> = None;
    for (i, line) in lines.iter().enumerate() {
        let number = i + 1;
        if line.trim().is_empty() {
            sentences.extend(current.take());
            continue;
        }
        let columns: Vec<&str> = if line.contains('\t') {
            line.split('\t').map(str::trim).collect()
        } else {
            line.split_whitespace().collect()
        };
        if columns[0] == "-DOCSTART-" {
            sentences.extend(current.take());
            continue;
        }
        if columns.len() < 2 || columns[0].is_empty() || columns.last().is_some_and(|t| t.is_empty()) {
            return Err(DataError::Parse {
                path: path.to_path_buf(),
                line: number,
                message: format!("expected a token and a tag separated by a tab or spaces, found {line:?}"),
            });
        }
        let sentence = current.get_or_insert_with(|| TaggedSentence {
            tokens: Vec::new(),
            tags: Vec::new(),
            path: path.to_path_buf(),
            line: number,
            token_lines: Vec::new(),
        });
        sentence.tokens.push(columns[0].to_string());
        sentence.tags.push(columns[columns.len() - 1].to_string());
        sentence.token_lines.push(number);
    }
    sentences.extend(current);
    Ok(sentences)
}

#[derive(serde::Deserialize)]
struct JsonSentence {
    tokens: Vec<String>,
    tags: Vec<String>,
}

fn parse_jsonl(path: &Path, lines: &[&str]) -> Result<Vec<TaggedSentence>, DataError> {
    let mut sentences = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let error = |message: String| DataError::Parse { path: path.to_path_buf(), line: i + 1, message };
        let parsed: JsonSentence = serde_json::from_str(line)
            .map_err(|e| error(format!("expected {{\"tokens\": [...], \"tags\": [...]}}: {e}")))?;
        if parsed.tokens.len() != parsed.tags.len() {
            return Err(error(format!("{} tokens but {} tags", parsed.tokens.len(), parsed.tags.len())));
        }
        if parsed.tokens.is_empty() {
            return Err(error("a sentence with no tokens".to_string()));
        }
        if let Some(t) = parsed.tokens.iter().find(|t| t.trim().is_empty()) {
            return Err(error(format!("empty or blank token {t:?}")));
        }
        sentences.push(TaggedSentence {
            token_lines: vec![i + 1; parsed.tokens.len()],
            tokens: parsed.tokens,
            tags: parsed.tags,
            path: path.to_path_buf(),
            line: i + 1,
        });
    }
    Ok(sentences)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(content: &[u8]) -> tempfile::NamedTempFile {
        // The format comes from the extension: JSON content goes in `.jsonl`.
        let suffix = if content.starts_with(b"{") { ".jsonl" } else { ".conll" };
        let mut f = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
        f.write_all(content).unwrap();
        f
    }

    #[test]
    fn conll_tabs_spaces_docstart_and_blank_lines() {
        let f = file(b"-DOCSTART- O\n\nThe\tO\ncancer\tB-Disease\n\n\nA  x  B-Chem\r\n");
        let s = read_tagged(f.path()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].tokens, ["The", "cancer"]);
        assert_eq!(s[0].tags, ["O", "B-Disease"]);
        assert_eq!(s[0].line, 3);
        assert_eq!(s[1].tokens, ["A"]);
        assert_eq!(s[1].tags, ["B-Chem"]);
        assert_eq!(s[1].token_lines, [7]);
    }

    #[test]
    fn jsonl() {
        let f = file(
            b"{\"tokens\": [\"a\", \"b\"], \"tags\": [\"O\", \"B-X\"]}\n\n{\"tokens\": [\"c\"], \"tags\": [\"O\"]}\n",
        );
        let s = read_tagged(f.path()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].line, 3);
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases: [(&[u8], &str); 5] = [
            (b"a\tO\nbroken\n", ":2: expected a token and a tag"),
            (b"a\tO\n\xff\tO\n", ":2: invalid UTF-8"),
            (b"", "no sentences found"),
            (b"{\"tokens\": [\"a\"], \"tags\": []}\n", ":1: 1 tokens but 0 tags"),
            (b"{\"tokens\": [\"a\"]}\n", ":1: expected {\"tokens\""),
        ];
        for (content, expected) in cases {
            let f = file(content);
            let err = read_tagged(f.path()).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
            assert!(err.starts_with(&f.path().display().to_string()), "{err}");
        }
    }

    /// Issue 13, item 6: a CoNLL file whose first token is `{` is CoNLL
    /// (its extension says so), not a JSONL file that fails at line 1.
    #[test]
    fn a_conll_file_starting_with_a_brace_is_conll() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.tsv", "a.conll", "a.iob"] {
            let path = dir.path().join(name);
            std::fs::write(&path, "{\tO\nBRCA1\tB-Gene\n}\tO\n").unwrap();
            let s = read_tagged(&path).unwrap();
            assert_eq!(s[0].tokens, ["{", "BRCA1", "}"], "{name}");
        }
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, "{\"tokens\": [\"a\"], \"tags\": [\"O\"]}\n").unwrap();
        assert_eq!(read_tagged(&path).unwrap()[0].tokens, ["a"]);
        // Told CoNLL, the same line is CoNLL: a token and its tag, no guess.
        let as_conll = read_tagged_as(&path, Some(DataFormat::Conll)).unwrap();
        assert_eq!(as_conll[0].tokens, ["{\"tokens\":"]);
    }
}
