//! TensorBoard event files (`<output>/runs/events.out.tfevents.<time>.<host>`):
//! every number of `metrics.jsonl` as a scalar, in the record format
//! TensorBoard reads: each record is its length (u64, little-endian), the
//! masked CRC32C of those 8 bytes, an `Event` protobuf and its masked
//! CRC32C. Step lines give `train/loss`, `train/lr`, `train/grad_norm` and
//! `train/windows_per_s`; epoch lines give `epoch/...` (train loss, seconds,
//! throughput, best epoch) and `dev/...` (every number of the dev report,
//! nested keys joined by `/`), all at the line's optimizer step.

use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;
use serde_json::Value;

use crate::TrainError;

/// `tensorflow.Event` (the fields TensorBoard's scalars use).
#[derive(Clone, PartialEq, Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` with a `simple_value`.
#[derive(Clone, PartialEq, Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
}

/// CRC32C masked as TensorFlow's record format does.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One record: length, its CRC, the data, its CRC.
fn record(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// The numbers of one `metrics.jsonl` line, named as in the event files
/// (`train/loss`, `dev/micro/f1`, ...), and its optimizer step; `None` for
/// a line of another kind.
pub fn metric_scalars(line: &Value) -> Option<(u64, Vec<(String, f64)>)> {
    let step = line["step"].as_u64()?;
    let mut out = Vec::new();
    match line["type"].as_str()? {
        "step" => {
            for key in ["loss", "lr", "grad_norm", "windows_per_s"] {
                if let Some(v) = line[key].as_f64() {
                    out.push((format!("train/{key}"), v));
                }
            }
        }
        "epoch" => {
            for key in ["train_loss", "seconds", "windows_per_s", "best_epoch", "dev_score"] {
                if let Some(v) = line[key].as_f64() {
                    out.push((format!("epoch/{key}"), v));
                }
            }
            flatten("dev", &line["dev"], &mut out);
        }
        _ => return None,
    }
    Some((step, out))
}

/// Every number of `value` under `prefix`, nested object keys joined by
/// `/` (arrays, e.g. a confusion matrix, are left out).
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, f64)>) {
    match value {
        Value::Number(n) => out.extend(n.as_f64().map(|v| (prefix.to_string(), v))),
        Value::Object(map) => map.iter().for_each(|(k, v)| flatten(&format!("{prefix}/{k}"), v, out)),
        _ => {}
    }
}

/// An event file being written; each line's scalars are flushed as they
/// come, so a killed run leaves whole records behind.
pub(crate) struct EventLog {
    file: std::fs::File,
    path: PathBuf,
}

fn wall_time() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl EventLog {
    /// Starts a new event file in `<output>/runs/`, removing the earlier
    /// ones there, and writes the scalars of `lines` (the kept lines of a
    /// resumed run's `metrics.jsonl`) into it: the file always holds what
    /// `metrics.jsonl` holds.
    pub(crate) fn create(output: &Path, lines: &[Value]) -> Result<Self, TrainError> {
        let dir = output.join("runs");
        std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
        for entry in std::fs::read_dir(&dir).map_err(|e| TrainError::io(&dir, e))? {
            let path = entry.map_err(|e| TrainError::io(&dir, e))?.path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("events.out.tfevents.")) {
                std::fs::remove_file(&path).map_err(|e| TrainError::io(&path, e))?;
            }
        }
        let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
        let path = dir.join(format!("events.out.tfevents.{}.{host}", wall_time() as u64));
        let file = std::fs::File::create(&path).map_err(|e| TrainError::io(&path, e))?;
        let mut log = Self { file, path };
        let version =
            Event { wall_time: wall_time(), step: 0, file_version: Some("brain.Event:2".into()), summary: None };
        log.append(&version)?;
        for line in lines {
            log.write(line)?;
        }
        Ok(log)
    }

    /// Writes the scalars of one `metrics.jsonl` line.
    pub(crate) fn write(&mut self, line: &Value) -> Result<(), TrainError> {
        let Some((step, values)) = metric_scalars(line) else { return Ok(()) };
        let value = values.into_iter().map(|(tag, v)| SummaryValue { tag, simple_value: Some(v as f32) }).collect();
        let event =
            Event { wall_time: wall_time(), step: step as i64, file_version: None, summary: Some(Summary { value }) };
        self.append(&event)
    }

    fn append(&mut self, event: &Event) -> Result<(), TrainError> {
        self.file.write_all(&record(&event.encode_to_vec())).map_err(|e| TrainError::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TensorFlow's own masked CRC of a known record header (the 8 bytes
    /// of length 24), as `tensorboard`'s writer computes it.
    #[test]
    fn records_carry_tensorflows_masked_crc32c() {
        // CRC32C("123456789") = 0xE3069283 (the standard check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let masked = 0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc(b"123456789"), masked);
        let r = record(b"abc");
        assert_eq!(r.len(), 8 + 4 + 3 + 4);
        assert_eq!(&r[..8], &3u64.to_le_bytes());
        assert_eq!(&r[12..15], b"abc");
    }

    /// Every record of an event file, checked, decoded.
    fn read_events(path: &Path) -> Vec<Event> {
        let bytes = std::fs::read(path).unwrap();
        let mut events = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let length = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            assert_eq!(masked_crc(&bytes[at..at + 8]).to_le_bytes(), bytes[at + 8..at + 12]);
            let data = &bytes[at + 12..at + 12 + length];
            assert_eq!(masked_crc(data).to_le_bytes(), bytes[at + 12 + length..at + 16 + length]);
            events.push(Event::decode(data).unwrap());
            at += 16 + length;
        }
        events
    }

    /// A resumed run's event file starts anew from the kept lines: one
    /// file, holding the scalars of every line once.
    #[test]
    fn a_new_log_replays_the_kept_lines_and_replaces_older_files() {
        let dir = tempfile::tempdir().unwrap();
        let line = |step: u64| serde_json::json!({"type": "step", "step": step, "loss": 1.0 / step as f64, "lr": 0.1});
        let mut log = EventLog::create(dir.path(), &[line(1), line(2)]).unwrap();
        log.write(&line(3)).unwrap();
        drop(log);
        let mut log = EventLog::create(dir.path(), &[line(1)]).unwrap();
        log.write(&line(2)).unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("runs")).unwrap().collect();
        assert_eq!(files.len(), 1);
        let events = read_events(&log.path);
        assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
        let steps: Vec<(i64, String, f32)> = events[1..]
            .iter()
            .flat_map(|e| {
                e.summary.iter().flat_map(|s| s.value.iter().map(|v| (e.step, v.tag.clone(), v.simple_value.unwrap())))
            })
            .collect();
        let expected = [(1, "train/loss", 1.0), (1, "train/lr", 0.1), (2, "train/loss", 0.5), (2, "train/lr", 0.1)];
        assert_eq!(steps, expected.map(|(s, t, v)| (s, t.to_string(), v as f32)));
    }

    #[test]
    fn lines_become_tagged_scalars_at_their_step() {
        let step: Value = serde_json::json!({"type": "step", "epoch": 1, "step": 7, "loss": 0.5, "lr": 1e-4,
            "grad_norm": 2.0, "windows_per_s": 30.0});
        let (at, values) = metric_scalars(&step).unwrap();
        assert_eq!(at, 7);
        assert_eq!(
            values.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
            ["train/loss", "train/lr", "train/grad_norm", "train/windows_per_s"]
        );
        let epoch: Value = serde_json::json!({"type": "epoch", "step": 9, "train_loss": 0.4, "seconds": 3.0,
            "windows_per_s": 10.0, "best_epoch": 1, "dev": {"micro": {"f1": 0.8}, "confusion": [[1, 2]], "texts": 4}});
        let (_, values) = metric_scalars(&epoch).unwrap();
        assert!(values.contains(&("dev/micro/f1".to_string(), 0.8)));
        assert!(values.contains(&("dev/texts".to_string(), 4.0)));
        assert!(!values.iter().any(|(t, _)| t.contains("confusion")));
        let event = Event { wall_time: 1.5, step: 9, file_version: None, summary: None };
        assert_eq!(Event::decode(event.encode_to_vec().as_slice()).unwrap(), event);
    }
}
