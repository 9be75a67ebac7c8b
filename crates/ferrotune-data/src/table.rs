//! Tables whose columns are found by header name: TSV (tab, no quoting),
//! CSV (RFC 4180 quoting) or JSONL (the same names as keys), so that a
//! reader names the columns it needs and gets them from any of the three.

use std::path::Path;

use crate::{DataError, DataFormat};

/// One row: its 1-based line and the fields of the columns asked for, in
/// their order (`None` where the column or key is absent; JSON numbers and
/// booleans are given as written).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TableRow {
    pub line: usize,
    pub fields: Vec<Option<String>>,
}

/// A table read from a file: which of the asked columns its header has
/// (JSONL: which keys any line has) and the rows.
#[derive(Debug)]
pub(crate) struct Table {
    pub header: Vec<String>,
    pub present: Vec<bool>,
    pub rows: Vec<TableRow>,
}

/// Reads `path` in `format` (TSV, CSV or JSONL), keeping the `columns` asked for.
pub(crate) fn read_table(path: &Path, format: DataFormat, columns: &[&str]) -> Result<Table, DataError> {
    match format {
        DataFormat::Jsonl => read_jsonl(path, columns),
        DataFormat::Csv => read_delimited(path, b',', true, columns),
        _ => read_delimited(path, b'\t', false, columns),
    }
}

fn read_delimited(path: &Path, delimiter: u8, quoting: bool, columns: &[&str]) -> Result<Table, DataError> {
    let file = std::fs::File::open(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    let mut reader =
        csv::ReaderBuilder::new().delimiter(delimiter).quoting(quoting).has_headers(true).from_reader(file);
    let csv_error = |e: csv::Error| {
        let line = e.position().map_or(1, |p| p.line() as usize);
        DataError::Parse { path: path.to_path_buf(), line, message: e.to_string() }
    };
    let header: Vec<String> = reader.headers().map_err(csv_error)?.iter().map(|h| h.trim().to_string()).collect();
    let positions: Vec<Option<usize>> = columns.iter().map(|c| header.iter().position(|h| h == c)).collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.len() != header.len() {
            let message = format!("{} fields, the header has {}", record.len(), header.len());
            return Err(DataError::Parse { path: path.to_path_buf(), line, message });
        }
        let fields = positions.iter().map(|p| p.and_then(|i| record.get(i)).map(str::to_string)).collect();
        rows.push(TableRow { line, fields });
    }
    let present = positions.iter().map(Option::is_some).collect();
    Ok(Table { header, present, rows })
}

fn read_jsonl(path: &Path, columns: &[&str]) -> Result<Table, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    let mut present = vec![false; columns.len()];
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let error = |message: String| DataError::Parse { path: path.to_path_buf(), line: i + 1, message };
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| error(e.to_string()))?;
        let object = value.as_object().ok_or_else(|| error("expected a JSON object".into()))?;
        let mut fields = Vec::with_capacity(columns.len());
        for (k, key) in columns.iter().enumerate() {
            let field = match object.get(*key) {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => Some(v.to_string()),
                Some(_) => return Err(error(format!("'{key}' must be a string"))),
            };
            present[k] |= field.is_some();
            fields.push(field);
        }
        rows.push(TableRow { line: i + 1, fields });
    }
    Ok(Table { header: Vec::new(), present, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::write_temp as write;

    #[test]
    fn columns_by_name_in_every_format() {
        let want = |t: &Table| {
            assert_eq!(t.present, [true, true, false]);
            let fields: Vec<_> = t.rows.iter().map(|r| (r.line, r.fields.clone())).collect();
            assert_eq!(fields[0], (2, vec![Some("1".into()), Some("a \"b\"".into()), None]));
        };
        let (_d, p) = write("a.tsv", "x\tid\tq\n\t1\ta \"b\"\n");
        want(&read_table(&p, DataFormat::Tsv, &["id", "q", "z"]).unwrap());
        let (_d, p) = write("a.csv", "q,id\n\"a \"\"b\"\"\",1\n");
        want(&read_table(&p, DataFormat::Csv, &["id", "q", "z"]).unwrap());
        let (_d, p) = write("a.jsonl", "\n{\"id\": 1, \"q\": \"a \\\"b\\\"\", \"z\": null}\n");
        want(&read_table(&p, DataFormat::Jsonl, &["id", "q", "z"]).unwrap());
    }

    #[test]
    fn errors_name_the_line() {
        let err = |name: &str, content: &str, format| {
            let (_d, p) = write(name, content);
            read_table(&p, format, &["id"]).unwrap_err().to_string()
        };
        let e = err("a.tsv", "id\tq\n1\tx\n2\n", DataFormat::Tsv);
        assert!(e.contains("a.tsv:3: "), "{e}");
        let e = err("a.jsonl", "{\"id\": \"1\"}\n{\"id\": [1]}\n", DataFormat::Jsonl);
        assert!(e.ends_with("a.jsonl:2: 'id' must be a string"), "{e}");
        let e = err("a.jsonl", "[1]\n", DataFormat::Jsonl);
        assert!(e.ends_with("a.jsonl:1: expected a JSON object"), "{e}");
    }
}
