//! Reading the stream: JSON lines or CSV, from a file (from a stored
//! position, and with `follow`, waiting for lines as the file grows, like
//! `tail -f`) or from stdin, on a thread of its own so that reading and
//! classifying overlap.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{parse_record, parse_time, MonitorError, StreamRecord};

/// How often a followed file is checked for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Records read ahead of classification.
const READ_AHEAD: usize = 4096;

/// Where the next record starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Byte offset.
    pub offset: u64,
    /// Lines before it.
    pub line: u64,
}

/// The record formats of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header naming the columns `time`, `text`, `topic`, `id`, `source`.
    Csv,
}

impl StreamFormat {
    /// CSV for a `.csv` file, JSON lines otherwise.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Self::Csv,
            _ => Self::Jsonl,
        }
    }
}

/// One record as read, parsed or with the reason it is rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceItem {
    /// Its line number (1-based; a CSV record's first line).
    pub line: u64,
    /// The record as read, for the dead-letter file.
    pub raw: String,
    /// The record, or why it is rejected.
    pub record: Result<StreamRecord, String>,
    /// Where the record after it starts.
    pub next: Position,
}

/// A file read until `stop` is set: at its end, it waits for more.
struct Follow {
    file: File,
    stop: Arc<AtomicBool>,
}

impl Read for Follow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.file.read(buf)?;
            if n > 0 || buf.is_empty() || self.stop.load(Ordering::Relaxed) {
                return Ok(n);
            }
            std::thread::sleep(FOLLOW_POLL);
        }
    }
}

/// The stream, read on a thread of its own.
pub struct StreamReader {
    items: Receiver<SourceItem>,
    queued: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Result<(), MonitorError>>>,
}

impl StreamReader {
    /// Starts reading `input` (`-` for stdin) at `from`. With `stop`, the
    /// file is followed until the flag is set.
    pub fn open(
        input: &Path,
        format: StreamFormat,
        from: Position,
        stop: Option<Arc<AtomicBool>>,
    ) -> Result<Self, MonitorError> {
        let (sender, items) = sync_channel(READ_AHEAD);
        let queued = Arc::new(AtomicUsize::new(0));
        let out = Sender { sender, queued: queued.clone(), stop: stop.clone() };
        let reader: Box<dyn Read + Send> = if input.as_os_str() == "-" {
            Box::new(std::io::stdin())
        } else {
            let io = |e: std::io::Error| MonitorError::Input { path: input.to_path_buf(), message: e.to_string() };
            let mut file = File::open(input).map_err(io)?;
            let length = file.metadata().map_err(io)?.len();
            if length < from.offset {
                return Err(MonitorError::Input {
                    path: input.to_path_buf(),
                    message: format!(
                        "it has {length} bytes, fewer than the {} the store has already read: \
                         a different stream needs a new --db",
                        from.offset
                    ),
                });
            }
            file.seek(SeekFrom::Start(from.offset)).map_err(io)?;
            match stop {
                Some(stop) => Box::new(Follow { file, stop }),
                None => Box::new(file),
            }
        };
        let path = input.to_path_buf();
        let thread = match format {
            StreamFormat::Jsonl => std::thread::spawn(move || read_lines(reader, from, &path, &out)),
            StreamFormat::Csv => {
                let headers = csv_header(input)?;
                std::thread::spawn(move || read_csv(reader, &headers, from, &path, &out))
            }
        };
        Ok(Self { items, queued, thread: Some(thread) })
    }

    /// Records read but not yet taken.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The next records, up to `max`: waits for the first, then takes what
    /// arrives until `linger` passes without a new one. `None` once the
    /// stream has ended and every record was taken.
    pub fn next_batch(&self, max: usize, linger: Duration) -> Option<Vec<SourceItem>> {
        let first = self.items.recv().ok()?;
        let mut batch = vec![first];
        let deadline = Instant::now() + linger;
        while batch.len() < max {
            match self.items.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(item) => batch.push(item),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        self.queued.fetch_sub(batch.len(), Ordering::Relaxed);
        Some(batch)
    }

    /// Waits for the reading thread; its error, if it had one.
    pub fn finish(mut self) -> Result<(), MonitorError> {
        drop(std::mem::replace(&mut self.items, sync_channel(0).1));
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(MonitorError::Input { path: PathBuf::from("-"), message: "reader panicked".into() }),
            None => Ok(()),
        }
    }
}

/// The reading thread's end of the queue.
struct Sender {
    sender: SyncSender<SourceItem>,
    queued: Arc<AtomicUsize>,
    stop: Option<Arc<AtomicBool>>,
}

impl Sender {
    /// Queues `item`; false when reading should end (the consumer is gone,
    /// or a followed stream was stopped: the record read as the stop came
    /// may be incomplete and is read again on the next start).
    fn send(&self, item: SourceItem) -> bool {
        if self.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
            return false;
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.sender.send(item).is_ok()
    }
}

fn read_lines(reader: Box<dyn Read + Send>, from: Position, path: &Path, out: &Sender) -> Result<(), MonitorError> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let mut position = from;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| MonitorError::Input { path: path.to_path_buf(), message: e.to_string() })?;
        if n == 0 {
            return Ok(());
        }
        let number = position.line + 1;
        position = Position { offset: position.offset + n as u64, line: number };
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let item = SourceItem {
            line: number,
            raw: String::from_utf8_lossy(text).into_owned(),
            record: parse_record(text),
            next: position,
        };
        if !out.send(item) {
            return Ok(());
        }
    }
}

/// The columns of a CSV stream, from its first line.
fn csv_header(path: &Path) -> Result<csv::ByteRecord, MonitorError> {
    let error = |message: String| MonitorError::Input { path: path.to_path_buf(), message };
    if path.as_os_str() == "-" {
        return Err(error("a CSV stream is read from a file, not stdin (use JSON lines on stdin)".into()));
    }
    let file = File::open(path).map_err(|e| error(e.to_string()))?;
    let headers = csv::Reader::from_reader(file).byte_headers().map_err(|e| error(e.to_string()))?.clone();
    for column in ["time", "text"] {
        if !headers.iter().any(|h| h == column.as_bytes()) {
            return Err(error(format!("line 1: the CSV header has no '{column}' column")));
        }
    }
    Ok(headers)
}

fn read_csv(
    reader: Box<dyn Read + Send>,
    headers: &csv::ByteRecord,
    from: Position,
    path: &Path,
    out: &Sender,
) -> Result<(), MonitorError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(from.offset == 0).flexible(true).from_reader(reader);
    let mut row = csv::ByteRecord::new();
    loop {
        let start = reader.position().line() + from.line;
        let more = reader.read_byte_record(&mut row);
        let end = reader.position();
        let next = Position { offset: from.offset + end.byte(), line: from.line + end.line() - 1 };
        let (raw, record) = match more {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let raw = row.iter().map(String::from_utf8_lossy).collect::<Vec<_>>().join(",");
                (raw, csv_record(headers, &row))
            }
            Err(e) if e.is_io_error() => {
                return Err(MonitorError::Input { path: path.to_path_buf(), message: e.to_string() });
            }
            Err(e) => (String::new(), Err(format!("invalid CSV: {e}"))),
        };
        let line = row.position().map_or(start, |p| from.line + p.line());
        if !out.send(SourceItem { line, raw, record, next }) {
            return Ok(());
        }
    }
}

/// A CSV row as a record; the error is why it is rejected.
fn csv_record(headers: &csv::ByteRecord, row: &csv::ByteRecord) -> Result<StreamRecord, String> {
    record_from_fields(|name| headers.iter().position(|h| h == name.as_bytes()).and_then(|i| row.get(i)))
}

/// A record from named fields (CSV columns, a Redis entry's fields): a
/// time in Unix seconds or RFC 3339, a text, and optionally a topic, id and
/// source; the error is why it is rejected.
pub fn record_from_fields<'a>(field: impl Fn(&str) -> Option<&'a [u8]>) -> Result<StreamRecord, String> {
    let text_of = |name: &str| -> Result<Option<&'a str>, String> {
        let Some(bytes) = field(name) else { return Ok(None) };
        let text = std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8 in '{name}': {e}"))?;
        Ok(Some(text).filter(|t| !t.is_empty()))
    };
    let text = text_of("text")?.filter(|t| !t.trim().is_empty()).ok_or("no text")?.to_string();
    let time = text_of("time")?.ok_or("no time")?;
    let time = match time.parse::<f64>() {
        Ok(seconds) => parse_time(&serde_json::json!(seconds))?,
        Err(_) => parse_time(&Value::String(time.to_string()))?,
    };
    let owned = |name| text_of(name).map(|v| v.map(str::to_string));
    Ok(StreamRecord { time, text, topic: owned("topic")?, id: owned("id")?, source: owned("source")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(path: &Path, format: StreamFormat, from: Position) -> Vec<SourceItem> {
        let reader = StreamReader::open(path, format, from, None).unwrap();
        let mut items = Vec::new();
        while let Some(batch) = reader.next_batch(2, Duration::from_millis(10)) {
            items.extend(batch);
        }
        reader.finish().unwrap();
        items
    }

    #[test]
    fn json_lines_are_read_from_a_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let text = "{\"time\": 1, \"text\": \"a\"}\n\n{\"time\": 2}\r\n{\"time\": 3, \"text\": \"c\"}";
        std::fs::write(&path, text).unwrap();
        let items = read_all(&path, StreamFormat::Jsonl, Position::default());
        assert_eq!(items.iter().map(|i| i.line).collect::<Vec<_>>(), [1, 3, 4]);
        assert_eq!(items[1].record, Err("no \"text\"".to_string()));
        assert_eq!(items[1].raw, "{\"time\": 2}");
        assert_eq!(items[2].next, Position { offset: text.len() as u64, line: 4 });
        let rest = read_all(&path, StreamFormat::Jsonl, items[0].next);
        assert_eq!(rest, items[1..]);
        let e = StreamReader::open(&path, StreamFormat::Jsonl, Position { offset: 999, line: 9 }, None);
        assert!(e.err().unwrap().to_string().contains("fewer than the 999"));
    }

    #[test]
    fn csv_rows_are_read_with_their_lines_and_positions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        let text =
            "id,time,text,topic\n7,2026-01-31T09:30:00Z,\"Shares fell,\nsharply\",ACME\n8,1769851801,,\n9,x,y,\n";
        std::fs::write(&path, text).unwrap();
        let items = read_all(&path, StreamFormat::Csv, Position::default());
        assert_eq!(items.iter().map(|i| i.line).collect::<Vec<_>>(), [2, 4, 5]);
        let first = items[0].record.as_ref().unwrap();
        assert_eq!(
            (first.time, first.text.as_str(), first.topic.as_deref()),
            (1769851800, "Shares fell,\nsharply", Some("ACME"))
        );
        assert_eq!(first.id.as_deref(), Some("7"));
        assert_eq!(items[1].record, Err("no text".to_string()));
        assert!(items[2].record.as_ref().unwrap_err().starts_with("bad time 'x'"));
        let rest = read_all(&path, StreamFormat::Csv, items[0].next);
        assert_eq!(rest, items[1..]);
        std::fs::write(&path, "when,text\n1,a\n").unwrap();
        let e = StreamReader::open(&path, StreamFormat::Csv, Position::default(), None).err().unwrap().to_string();
        assert!(e.ends_with("line 1: the CSV header has no 'time' column"), "{e}");
    }

    #[test]
    fn a_followed_file_is_read_as_it_grows_until_stopped() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        std::fs::write(&path, "{\"time\": 1, \"text\": \"a\"}\n").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = StreamReader::open(&path, StreamFormat::Jsonl, Position::default(), Some(stop.clone())).unwrap();
        assert_eq!(reader.next_batch(10, Duration::from_millis(50)).unwrap().len(), 1);
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"time\": 2, \"text\": \"b\"}\n{\"time\": 3,").unwrap();
        let batch = reader.next_batch(10, Duration::from_millis(300)).unwrap();
        assert_eq!(batch.iter().map(|i| i.line).collect::<Vec<_>>(), [2]);
        stop.store(true, Ordering::Relaxed);
        assert!(reader.next_batch(10, Duration::from_millis(10)).is_none(), "the half-written line is left");
        reader.finish().unwrap();
    }
}
