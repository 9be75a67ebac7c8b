//! A Redis stream read by a consumer group: several workers share one
//! stream, each entry goes to one of them (XREADGROUP), is acknowledged
//! (XACK) once its record is committed to the store, and the entries of a
//! worker that died before acknowledging are claimed by the others once
//! they have been idle long enough (XAUTOCLAIM). A worker restarted under
//! the same name first reads its own pending entries again.
//!
//! An entry holds either one field `record` with a JSON record (the line of
//! a JSON-lines stream) or the record's fields themselves (`time`, `text`,
//! `topic`, `id`, `source`).

use std::time::{Duration, Instant};

use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};
use redis::{Commands, Value};

use crate::source::{record_from_fields, Position, SourceItem};
use crate::{parse_record, MonitorError};

/// Where a stream is and who reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisStreamAddress {
    /// The server, `redis://HOST:PORT`.
    pub server: String,
    /// The stream's key.
    pub stream: String,
}

impl RedisStreamAddress {
    /// Parses `redis://HOST:PORT/STREAM`.
    pub fn parse(url: &str) -> Result<Self, MonitorError> {
        let invalid = |expected: &'static str| MonitorError::InvalidSetting { field: "input", expected };
        let rest = url.strip_prefix("redis://").ok_or(invalid("redis://HOST:PORT/STREAM"))?;
        let (server, stream) = rest.split_once('/').ok_or(invalid("a stream name: redis://HOST:PORT/STREAM"))?;
        if server.is_empty() || stream.is_empty() {
            return Err(invalid("redis://HOST:PORT/STREAM with a host and a stream name"));
        }
        Ok(Self { server: format!("redis://{server}"), stream: stream.to_string() })
    }

    /// Whether `input` names a Redis stream.
    pub fn is_redis(input: &str) -> bool {
        input.starts_with("redis://")
    }
}

/// One consumer of a group on a stream.
pub struct RedisStream {
    connection: redis::Connection,
    address: RedisStreamAddress,
    group: String,
    consumer: String,
    claim_idle: Duration,
    /// Still reading this consumer's own pending entries (after a restart).
    own_pending: bool,
    last_claim: Option<Instant>,
}

impl std::fmt::Debug for RedisStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStream").field("address", &self.address).field("consumer", &self.consumer).finish()
    }
}

impl RedisStream {
    /// Connects as `consumer` of `group` (created at the stream's start if
    /// missing); entries another consumer left unacknowledged for
    /// `claim_idle` are claimed.
    pub fn connect(
        address: RedisStreamAddress,
        group: &str,
        consumer: &str,
        claim_idle: Duration,
    ) -> Result<Self, MonitorError> {
        let error = |e: redis::RedisError| MonitorError::Redis { url: address.server.clone(), message: e.to_string() };
        let client = redis::Client::open(address.server.as_str()).map_err(error)?;
        let mut connection = client.get_connection_with_timeout(Duration::from_secs(10)).map_err(error)?;
        let created: redis::RedisResult<()> = connection.xgroup_create_mkstream(&address.stream, group, "0");
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(error(e)),
        }
        Ok(Self {
            connection,
            address,
            group: group.to_string(),
            consumer: consumer.to_string(),
            claim_idle,
            own_pending: true,
            last_claim: None,
        })
    }

    fn error(&self, e: redis::RedisError) -> MonitorError {
        MonitorError::Redis { url: self.address.server.clone(), message: e.to_string() }
    }

    /// Up to `max` entries: this consumer's own pending ones first, then
    /// entries claimed from dead consumers (checked at most once per
    /// `claim_idle`), then new ones (waiting up to `block`). Each item comes
    /// with its entry id, to acknowledge once stored.
    pub fn next_batch(&mut self, max: usize, block: Duration) -> Result<Vec<(String, SourceItem)>, MonitorError> {
        if self.own_pending {
            let entries = self.read_group("0", max, None)?;
            if !entries.is_empty() {
                return Ok(entries);
            }
            self.own_pending = false;
        }
        if self.last_claim.is_none_or(|t| t.elapsed() >= self.claim_idle) {
            self.last_claim = Some(Instant::now());
            let options = StreamAutoClaimOptions::default().count(max);
            let idle = self.claim_idle.as_millis() as u64;
            let (stream, group, consumer) = (&self.address.stream, &self.group, &self.consumer);
            let reply: redis::streams::StreamAutoClaimReply = self
                .connection
                .xautoclaim_options(stream, group, consumer, idle, "0-0", options)
                .map_err(|e| self.error(e))?;
            if !reply.claimed.is_empty() {
                return Ok(reply.claimed.into_iter().map(item).collect());
            }
        }
        self.read_group(">", max, Some(block))
    }

    fn read_group(
        &mut self,
        from: &str,
        max: usize,
        block: Option<Duration>,
    ) -> Result<Vec<(String, SourceItem)>, MonitorError> {
        let mut options = StreamReadOptions::default().group(&self.group, &self.consumer).count(max);
        if let Some(block) = block {
            options = options.block(block.as_millis().max(1) as usize);
        }
        let reply: Option<StreamReadReply> =
            self.connection.xread_options(&[&self.address.stream], &[from], &options).map_err(|e| self.error(e))?;
        let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
        Ok(entries.map(item).collect())
    }

    /// Acknowledges entries whose records are committed.
    pub fn ack(&mut self, ids: &[String]) -> Result<(), MonitorError> {
        if ids.is_empty() {
            return Ok(());
        }
        let acked: redis::RedisResult<usize> = self.connection.xack(&self.address.stream, &self.group, ids);
        acked.map(drop).map_err(|e| self.error(e))
    }
}

/// An entry as a stream item: its record, or why it is rejected.
fn item(entry: StreamId) -> (String, SourceItem) {
    let bytes = |name: &str| match entry.map.get(name) {
        Some(Value::BulkString(b)) => Some(b.as_slice()),
        Some(Value::SimpleString(s)) => Some(s.as_bytes()),
        _ => None,
    };
    let (raw, record) = match bytes("record") {
        Some(line) => (String::from_utf8_lossy(line).into_owned(), parse_record(line)),
        None => {
            let mut fields: Vec<(&String, String)> = entry
                .map
                .keys()
                .map(|k| (k, bytes(k).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default()))
                .collect();
            fields.sort();
            (serde_json::to_string(&fields).unwrap_or_default(), record_from_fields(bytes))
        }
    };
    let raw = format!("{} {raw}", entry.id);
    (entry.id, SourceItem { line: 0, raw, record, next: Position::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_a_server_and_a_stream() {
        let a = RedisStreamAddress::parse("redis://127.0.0.1:6390/news").unwrap();
        assert_eq!((a.server.as_str(), a.stream.as_str()), ("redis://127.0.0.1:6390", "news"));
        for bad in ["127.0.0.1:6390/news", "redis://127.0.0.1:6390", "redis:///news", "redis://h:1/"] {
            assert!(RedisStreamAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
