//! Retrieval files, as TSV, CSV or JSONL with columns found by name (other
//! columns are ignored):
//!
//! - a corpus: `text`, and `id` (unique; without an `id` column an entry's
//!   id is its 1-based row number) and an optional `label`;
//! - queries: `query` (or `text`), and `relevant` (the ids of the relevant
//!   corpus entries, separated by `|`) or `label` (every corpus entry with
//!   that label is relevant: nearest-neighbour classification as retrieval);
//! - training pairs: `query`, `positive` and an optional `negative` (a hard
//!   negative).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::table::{read_table, Table};
use crate::{DataError, DataFormat, FileRole};

/// One corpus entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusEntry {
    /// Its id (unique in the corpus).
    pub id: String,
    /// The text searched.
    pub text: String,
    /// Its label, if the corpus has a `label` column.
    pub label: Option<String>,
}

/// A query with the ids of the corpus entries relevant to it.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalQuery {
    /// The query text.
    pub text: String,
    /// The relevant corpus ids (never empty).
    pub relevant: BTreeSet<String>,
    /// The 1-based line it was read from.
    pub line: usize,
}

/// A training example of a bi-encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingPair {
    /// The query.
    pub query: String,
    /// A text that answers it.
    pub positive: String,
    /// A text that does not (a hard negative), if given.
    pub negative: Option<String>,
    /// The 1-based line it was read from.
    pub line: usize,
}

fn parse_error(path: &Path, line: usize, message: String) -> DataError {
    DataError::Parse { path: path.to_path_buf(), line, message }
}

/// Reads `path` keeping `columns`, an error if it has no rows.
fn read(path: &Path, format: Option<DataFormat>, columns: &[&str]) -> Result<Table, DataError> {
    let format = DataFormat::resolve(format, Some(path), FileRole::Texts)?;
    let table = read_table(path, format, columns)?;
    if table.rows.is_empty() {
        return Err(DataError::Empty { path: path.to_path_buf() });
    }
    Ok(table)
}

/// The error of a table that lacks every one of `wanted` (names as the message shows them).
fn missing(path: &Path, table: &Table, wanted: &str) -> DataError {
    let message = if table.header.is_empty() {
        format!("no line has a {wanted} key")
    } else {
        format!("header {:?}: no {wanted} column", table.header)
    };
    parse_error(path, 1, message)
}

/// A required text field: present and not blank.
fn text(path: &Path, line: usize, field: Option<String>, name: &str) -> Result<String, DataError> {
    field.filter(|t| !t.trim().is_empty()).ok_or_else(|| parse_error(path, line, format!("empty {name}")))
}

/// Reads a corpus in `format` (or the extension's). Errors name the file
/// and line: a missing `text` column, an empty text, an empty or repeated id.
pub fn read_corpus(path: &Path, format: Option<DataFormat>) -> Result<Vec<CorpusEntry>, DataError> {
    let table = read(path, format, &["id", "text", "label"])?;
    if !table.present[1] {
        return Err(missing(path, &table, "'text'"));
    }
    let has_ids = table.present[0];
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut entries = Vec::with_capacity(table.rows.len());
    for (row_number, row) in table.rows.into_iter().enumerate() {
        let [id, text_field, label] = row.fields.try_into().expect("one field per column asked for");
        let id = if has_ids { id.unwrap_or_default().trim().to_string() } else { (row_number + 1).to_string() };
        if id.is_empty() {
            return Err(parse_error(path, row.line, "empty id".into()));
        }
        if let Some(first) = first_line.insert(id.clone(), row.line) {
            return Err(parse_error(path, row.line, format!("id '{id}' repeats the one on line {first}")));
        }
        let text = text(path, row.line, text_field, &format!("text (id '{id}')"))?;
        let label = label.map(|l| l.trim().to_string()).filter(|l| !l.is_empty());
        entries.push(CorpusEntry { id, text, label });
    }
    Ok(entries)
}

/// Reads queries in `format` (or the extension's) against `corpus`: every
/// relevant id must be a corpus id, every label the label of some corpus
/// entry; errors name the file, the line and the id or label.
pub fn read_queries(
    path: &Path,
    format: Option<DataFormat>,
    corpus: &[CorpusEntry],
) -> Result<Vec<RetrievalQuery>, DataError> {
    let table = read(path, format, &["query", "text", "relevant", "label"])?;
    let query_column = match (table.present[0], table.present[1]) {
        (true, _) => 0,
        (false, true) => 1,
        (false, false) => return Err(missing(path, &table, "'query' (or 'text')")),
    };
    if !table.present[2] && !table.present[3] {
        return Err(missing(path, &table, "'relevant' (or 'label')"));
    }
    let ids: BTreeSet<&str> = corpus.iter().map(|e| e.id.as_str()).collect();
    let mut by_label: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for entry in corpus {
        if let Some(label) = &entry.label {
            by_label.entry(label).or_default().insert(entry.id.clone());
        }
    }
    let mut queries = Vec::with_capacity(table.rows.len());
    for mut row in table.rows {
        let line = row.line;
        let query = text(path, line, row.fields[query_column].take(), "query")?;
        let relevant: BTreeSet<String> = if table.present[2] {
            let field = row.fields[2].take().unwrap_or_default();
            let relevant: BTreeSet<String> =
                field.split('|').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
            if let Some(unknown) = relevant.iter().find(|id| !ids.contains(id.as_str())) {
                return Err(parse_error(path, line, format!("relevant id '{unknown}' is not in the corpus")));
            }
            relevant
        } else {
            match row.fields[3].take().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()) {
                Some(label) => by_label.get(label.as_str()).cloned().ok_or_else(|| {
                    parse_error(path, line, format!("label '{label}': no corpus entry has this label"))
                })?,
                None => BTreeSet::new(),
            }
        };
        if relevant.is_empty() {
            return Err(parse_error(path, line, "no relevant id".into()));
        }
        queries.push(RetrievalQuery { text: query, relevant, line });
    }
    Ok(queries)
}

/// Reads training pairs in `format` (or the extension's): `query`,
/// `positive` and an optional `negative`, none of them empty where given.
pub fn read_pairs(path: &Path, format: Option<DataFormat>) -> Result<Vec<TrainingPair>, DataError> {
    let table = read(path, format, &["query", "positive", "negative"])?;
    for (k, name) in ["'query'", "'positive'"].into_iter().enumerate() {
        if !table.present[k] {
            return Err(missing(path, &table, name));
        }
    }
    let has_negatives = table.present[2];
    table
        .rows
        .into_iter()
        .map(|row| {
            let [query, positive, negative] = row.fields.try_into().expect("one field per column asked for");
            Ok(TrainingPair {
                query: text(path, row.line, query, "query")?,
                positive: text(path, row.line, positive, "positive")?,
                negative: if has_negatives { Some(text(path, row.line, negative, "negative")?) } else { None },
                line: row.line,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::write_temp as write;

    #[test]
    fn corpus_queries_by_id_or_label_and_pairs() {
        let (_d, c) = write("c.tsv", "id\ttext\tlabel\nd1\tone\ta\nd2\ttwo\tb\nd3\tthree\ta\n");
        let corpus = read_corpus(&c, None).unwrap();
        assert_eq!(corpus[2], CorpusEntry { id: "d3".into(), text: "three".into(), label: Some("a".into()) });
        let (_d, q) = write("q.csv", "query,relevant\nfirst,d1|d3\n");
        let queries = read_queries(&q, None, &corpus).unwrap();
        assert_eq!(queries[0].relevant, BTreeSet::from(["d1".to_string(), "d3".to_string()]));
        let (_d, q) = write("q.tsv", "text\tlabel\nsecond\ta\n");
        assert_eq!(read_queries(&q, None, &corpus).unwrap()[0].relevant, queries[0].relevant);
        let (_d, no_ids) = write("c.jsonl", "{\"text\": \"x\"}\n{\"text\": \"y\"}\n");
        assert_eq!(read_corpus(&no_ids, None).unwrap()[1].id, "2");
        let (_d, p) = write("p.tsv", "query\tpositive\tnegative\nq\tp\tn\n");
        assert_eq!(read_pairs(&p, None).unwrap()[0].negative.as_deref(), Some("n"));
        let (_d, p) = write("p.jsonl", "{\"query\": \"q\", \"positive\": \"p\"}\n");
        assert_eq!(read_pairs(&p, None).unwrap()[0].negative, None);
    }

    #[test]
    fn errors_name_file_line_and_id() {
        let err = |name: &str, content: &str| {
            let (_d, p) = write(name, content);
            read_corpus(&p, None).unwrap_err().to_string()
        };
        assert!(err("c.tsv", "id\ttext\nd1\tx\nd1\ty\n").ends_with("c.tsv:3: id 'd1' repeats the one on line 2"));
        assert!(err("c.tsv", "id\ttext\nd1\t \n").ends_with("c.tsv:2: empty text (id 'd1')"));
        assert!(err("c.tsv", "id\tquestion\nd1\tx\n").contains("c.tsv:1: header [\"id\", \"question\"]: no 'text'"));
        let (_d, c) = write("c.tsv", "id\ttext\nd1\tx\n");
        let corpus = read_corpus(&c, None).unwrap();
        let query_err = |content: &str| {
            let (_d, p) = write("q.tsv", content);
            read_queries(&p, None, &corpus).unwrap_err().to_string()
        };
        assert!(query_err("query\trelevant\nq\td9\n").ends_with("q.tsv:2: relevant id 'd9' is not in the corpus"));
        assert!(query_err("query\trelevant\nq\t\n").ends_with("q.tsv:2: no relevant id"));
        assert!(query_err("query\tlabel\nq\tx\n").ends_with("q.tsv:2: label 'x': no corpus entry has this label"));
        assert!(query_err("query\tid\nq\td1\n").contains("no 'relevant' (or 'label') column"));
        let (_d, p) = write("p.tsv", "query\tpositive\tnegative\nq\tp\t\n");
        assert!(read_pairs(&p, None).unwrap_err().to_string().ends_with("p.tsv:2: empty negative"));
    }
}
