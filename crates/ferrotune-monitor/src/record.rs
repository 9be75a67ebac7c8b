//! Stream records as they arrive: one JSON object per line,
//! `{"time", "text", "topic"?, "id"?, "source"?}`.

use serde_json::Value;

/// A record read from the stream, before classification.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// Event time, Unix seconds.
    pub time: i64,
    /// The text to classify.
    pub text: String,
    /// The record's own topic, if it names one.
    pub topic: Option<String>,
    /// Its id, if it has one.
    pub id: Option<String>,
    /// Where it came from, if it says.
    pub source: Option<String>,
}

/// Reads one line of the stream; the error is the reason it is rejected.
pub fn parse_record(line: &[u8]) -> Result<StreamRecord, String> {
    let line = std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8: {e}"))?;
    let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(fields) = value else { return Err("not a JSON object".into()) };
    let text = match fields.get("text") {
        Some(Value::String(text)) if !text.trim().is_empty() => text.clone(),
        Some(Value::String(_)) => return Err("empty text".into()),
        Some(_) => return Err("\"text\" is not a string".into()),
        None => return Err("no \"text\"".into()),
    };
    let time = parse_time(fields.get("time").ok_or("no \"time\"")?)?;
    let optional = |name: &str| match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if name == "id" => Ok(Some(n.to_string())),
        Some(_) => Err(format!("\"{name}\" is not a string")),
    };
    Ok(StreamRecord { time, text, topic: optional("topic")?, id: optional("id")?, source: optional("source")? })
}

/// Unix seconds from an RFC 3339 string or a number of Unix seconds.
pub fn parse_time(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(t) if t.is_finite() && t.abs() < 1e12 => Ok(t.floor() as i64),
            _ => Err(format!("bad time {n}: expected Unix seconds")),
        },
        Value::String(s) => s
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_second())
            .map_err(|e| format!("bad time '{s}': expected RFC 3339 (2026-01-31T09:30:00Z) or Unix seconds ({e})")),
        other => Err(format!("bad time {other}: expected RFC 3339 or Unix seconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_their_rejection_reasons() {
        let r = parse_record(br#"{"time": "2026-01-31T09:30:00Z", "text": "Shares fell", "topic": "ACME", "id": 7}"#)
            .unwrap();
        assert_eq!(
            (r.time, r.text.as_str(), r.topic.as_deref(), r.id.as_deref()),
            (1769851800, "Shares fell", Some("ACME"), Some("7"))
        );
        assert_eq!(parse_record(br#"{"time": 1769851800.5, "text": "x"}"#).unwrap().time, 1769851800);
        assert_eq!(parse_record(br#"{"time": "2026-01-31T10:30:00+01:00", "text": "x"}"#).unwrap().time, 1769851800);
        for (line, reason) in [
            (&b"{\"time\": 1, \"text\": \"\xff\"}"[..], "invalid UTF-8"),
            (b"{\"time\": 1, \"text\": ", "invalid JSON"),
            (b"[1, 2]", "not a JSON object"),
            (b"{\"time\": 1}", "no \"text\""),
            (b"{\"time\": 1, \"text\": \"  \"}", "empty text"),
            (b"{\"text\": \"x\"}", "no \"time\""),
            (b"{\"time\": \"yesterday\", \"text\": \"x\"}", "bad time 'yesterday'"),
            (b"{\"time\": true, \"text\": \"x\"}", "bad time true"),
            (b"{\"time\": 1, \"text\": \"x\", \"topic\": 3}", "\"topic\" is not a string"),
        ] {
            let e = parse_record(line).unwrap_err();
            assert!(e.starts_with(reason), "{e}");
        }
    }
}
