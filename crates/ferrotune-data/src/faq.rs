//! FAQ files (`id`, `question`, `answer`, optionally `intent`) and user
//! questions labelled against them (`query` with `faq_id` or `answer`), as
//! TSV, CSV or JSONL with columns found by name (other columns are ignored).

use std::collections::HashMap;
use std::path::Path;

use crate::table::{read_table, Table};
use crate::{DataError, DataFormat, FileRole};

/// One FAQ entry.
#[derive(Debug, Clone, PartialEq)]
pub struct FaqEntry {
    /// Its id (unique in the file).
    pub id: String,
    /// The question it answers.
    pub question: String,
    /// The answer.
    pub answer: String,
    /// The intent it answers (the optional `intent` column), for an
    /// assistant that hands over questions of intents its FAQ does not cover.
    pub intent: Option<String>,
    /// The 1-based line it was read from.
    pub line: usize,
}

/// What a labelled user question should get.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// The FAQ entry with this id.
    Entry(String),
    /// Any FAQ entry with this answer (an intent name, say, when many
    /// entries share one answer).
    Answer(String),
    /// Nothing: the FAQ does not cover it, so it should be handed over.
    OutOfScope,
}

/// A user question labelled against a FAQ.
#[derive(Debug, Clone, PartialEq)]
pub struct FaqQuestion {
    /// The question.
    pub query: String,
    /// What it should get.
    pub expected: Expected,
    /// The 1-based line it was read from.
    pub line: usize,
}

fn missing_column(path: &Path, table: &Table, wanted: &str) -> DataError {
    let message = if table.header.is_empty() {
        format!("no line has a \"{wanted}\" key")
    } else {
        format!("header {:?}: no '{wanted}' column", table.header)
    };
    DataError::Parse { path: path.to_path_buf(), line: 1, message }
}

fn parse_error(path: &Path, line: usize, message: String) -> DataError {
    DataError::Parse { path: path.to_path_buf(), line, message }
}

/// Reads a FAQ in `format` (or the extension's: `.csv`, `.jsonl`/`.json`,
/// anything else TSV). Columns `id`, `question` and `answer` are required,
/// `intent` is optional;
/// an empty or repeated id, or an empty question or answer, is an error
/// naming the file, the line and the id.
pub fn read_faq(path: &Path, format: Option<DataFormat>) -> Result<Vec<FaqEntry>, DataError> {
    let format = DataFormat::resolve(format, Some(path), FileRole::Texts)?;
    const COLUMNS: [&str; 4] = ["id", "question", "answer", "intent"];
    let table = read_table(path, format, &COLUMNS)?;
    if table.rows.is_empty() {
        return Err(DataError::Empty { path: path.to_path_buf() });
    }
    if let Some(k) = table.present[..3].iter().position(|p| !p) {
        return Err(missing_column(path, &table, COLUMNS[k]));
    }
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut entries = Vec::with_capacity(table.rows.len());
    for row in table.rows {
        let error = |message: String| parse_error(path, row.line, message);
        let [id, question, answer, intent] = row.fields.try_into().expect("one field per column asked for");
        let id = id.unwrap_or_default().trim().to_string();
        if id.is_empty() {
            return Err(error("empty FAQ id".into()));
        }
        if let Some(first) = first_line.insert(id.clone(), row.line) {
            return Err(error(format!("FAQ id '{id}' repeats the one on line {first}")));
        }
        let question = question.unwrap_or_default();
        if question.trim().is_empty() {
            return Err(error(format!("FAQ id '{id}': empty question")));
        }
        let answer = answer.unwrap_or_default();
        if answer.trim().is_empty() {
            return Err(error(format!("FAQ id '{id}': empty answer")));
        }
        let intent = intent.map(|i| i.trim().to_string()).filter(|i| !i.is_empty());
        entries.push(FaqEntry { id, question, answer, intent, line: row.line });
    }
    Ok(entries)
}

/// Reads user questions labelled against a FAQ, in `format` or the
/// extension's. Columns: `query`, and `faq_id` (the entry that answers it)
/// or `answer` (any entry with that answer) or both (`faq_id` first); a row
/// with both empty is out of scope. Rows whose optional `similar` column is
/// `0` are left out: their `faq_id` is a question that does NOT mean the
/// same (a hard negative), which says nothing about the right answer.
pub fn read_faq_questions(path: &Path, format: Option<DataFormat>) -> Result<Vec<FaqQuestion>, DataError> {
    let format = DataFormat::resolve(format, Some(path), FileRole::Texts)?;
    let table = read_table(path, format, &["query", "faq_id", "answer", "similar"])?;
    if !table.rows.is_empty() && !table.present[0] {
        return Err(missing_column(path, &table, "query"));
    }
    if !table.rows.is_empty() && !table.present[1] && !table.present[2] {
        return Err(missing_column(path, &table, "faq_id' or 'answer"));
    }
    let mut questions = Vec::with_capacity(table.rows.len());
    for row in table.rows {
        let [query, faq_id, answer, similar] = row.fields.try_into().expect("one field per column asked for");
        match similar.as_deref().map(str::trim) {
            None | Some("1") => {}
            Some("0") => continue,
            Some(other) => return Err(parse_error(path, row.line, format!("'similar' is '{other}', expected 0 or 1"))),
        }
        let query = query.unwrap_or_default();
        if query.trim().is_empty() {
            return Err(parse_error(path, row.line, "empty query".into()));
        }
        let nonempty = |f: Option<String>| f.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let expected = match (nonempty(faq_id), nonempty(answer)) {
            (Some(id), _) => Expected::Entry(id),
            (None, Some(answer)) => Expected::Answer(answer),
            (None, None) => Expected::OutOfScope,
        };
        questions.push(FaqQuestion { query, expected, line: row.line });
    }
    if questions.is_empty() {
        return Err(DataError::Empty { path: path.to_path_buf() });
    }
    Ok(questions)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::write_temp as write;

    #[test]
    fn reads_a_faq_in_every_format() {
        let (_d, p) =
            write("faq.tsv", "id\tquestion\tanswer\tsource\nf1\tWhat?\tThat.\tCDC\nf2\tWhy?\tBecause.\tWHO\n");
        let faq = read_faq(&p, None).unwrap();
        let want =
            FaqEntry { id: "f2".into(), question: "Why?".into(), answer: "Because.".into(), intent: None, line: 3 };
        assert_eq!(faq[1], want);
        let (_d, p) = write("faq.csv", "question,answer,id\n\"What, then?\",That.,f1\n");
        assert_eq!(read_faq(&p, None).unwrap()[0].question, "What, then?");
        let (_d, p) =
            write("faq.jsonl", "{\"id\": 7, \"question\": \"What?\", \"answer\": \"That.\", \"intent\": \"x\"}\n");
        let faq = read_faq(&p, None).unwrap();
        assert_eq!((faq[0].id.as_str(), faq[0].intent.as_deref()), ("7", Some("x")));
    }

    #[test]
    fn faq_errors_name_file_line_and_id() {
        let err = |content: &str| {
            let (_d, p) = write("faq.tsv", content);
            read_faq(&p, None).unwrap_err().to_string()
        };
        assert!(err("id\tanswer\nf1\tx\n").ends_with("faq.tsv:1: header [\"id\", \"answer\"]: no 'question' column"));
        assert!(err("id\tquestion\tanswer\nf1\tq\ta\n \tq\ta\n").ends_with("faq.tsv:3: empty FAQ id"));
        assert!(err("id\tquestion\tanswer\nf1\tq\ta\nf2\tq\ta\nf1\tr\tb\n")
            .ends_with("faq.tsv:4: FAQ id 'f1' repeats the one on line 2"));
        assert!(err("id\tquestion\tanswer\nf1\t \ta\n").ends_with("faq.tsv:2: FAQ id 'f1': empty question"));
        assert!(err("id\tquestion\tanswer\nf1\tq\t\n").ends_with("faq.tsv:2: FAQ id 'f1': empty answer"));
        assert!(err("id\tquestion\tanswer\n").ends_with("faq.tsv: no sentences found (empty file?)"));
        let (_d, p) = write("faq.jsonl", "{\"id\": \"f1\", \"answer\": \"a\"}\n");
        assert!(read_faq(&p, None).unwrap_err().to_string().ends_with("faq.jsonl:1: no line has a \"question\" key"));
    }

    #[test]
    fn reads_labelled_questions() {
        let (_d, p) = write("q.tsv", "query\tfaq_id\tsimilar\nWhat is it?\tf1\t1\nNot the same\tf1\t0\nOther\t\t1\n");
        let q = read_faq_questions(&p, None).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q[0], FaqQuestion { query: "What is it?".into(), expected: Expected::Entry("f1".into()), line: 2 });
        assert_eq!((q[1].expected.clone(), q[1].line), (Expected::OutOfScope, 4));
        let (_d, p) = write("q.jsonl", "{\"query\": \"a\", \"answer\": \"card_lost\"}\n{\"query\": \"b\"}\n");
        let q = read_faq_questions(&p, None).unwrap();
        assert_eq!(q[0].expected, Expected::Answer("card_lost".into()));
        assert_eq!(q[1].expected, Expected::OutOfScope);
    }

    #[test]
    fn question_errors_name_file_and_line() {
        let err = |content: &str| {
            let (_d, p) = write("q.tsv", content);
            read_faq_questions(&p, None).unwrap_err().to_string()
        };
        assert!(err("text\tfaq_id\nx\tf1\n").ends_with("q.tsv:1: header [\"text\", \"faq_id\"]: no 'query' column"));
        assert!(err("query\tlabel\nx\tf1\n").contains("no 'faq_id' or 'answer' column"));
        assert!(err("query\tfaq_id\nx\tf1\n \tf2\n").ends_with("q.tsv:3: empty query"));
        assert!(err("query\tfaq_id\tsimilar\nx\tf1\tyes\n").ends_with("q.tsv:2: 'similar' is 'yes', expected 0 or 1"));
    }
}
