//! The monitor's store: SQLite, embedded, in WAL mode. It holds the
//! classified records (keyed by their id, or a hash of time and text), the
//! final windows with the baseline they were tested against, the alerts
//! (with whether they were emitted and delivered), the webhook's delivery
//! attempts, the rejected records, and the monitor's state (windows still
//! open, baselines, the stream position). Everything a batch changes is
//! written in one transaction, so a monitor killed at any moment restarts
//! from its last commit with nothing counted twice or lost.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Alert, Baseline, Delivery, MonitorError, Reject, StreamRecord, Window};

/// How long a writer waits for another process's transaction (several
/// workers may share one store).
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    key TEXT NOT NULL UNIQUE, time INTEGER NOT NULL, topic TEXT, source TEXT,
    label TEXT NOT NULL, negative INTEGER NOT NULL, negative_score REAL NOT NULL, text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS windows (
    topic TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL, count INTEGER NOT NULL,
    negatives INTEGER NOT NULL, labels TEXT NOT NULL, negative_score_sum REAL NOT NULL,
    baseline_share REAL, baseline_sd REAL, PRIMARY KEY (topic, start)
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY, topic TEXT NOT NULL, window_start INTEGER NOT NULL, body TEXT NOT NULL,
    emitted INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS deliveries (
    alert_id INTEGER NOT NULL REFERENCES alerts(id), attempt INTEGER NOT NULL, at INTEGER NOT NULL,
    status INTEGER, error TEXT, delivered INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rejects (
    id INTEGER PRIMARY KEY, line INTEGER NOT NULL, reason TEXT NOT NULL, record TEXT NOT NULL,
    emitted INTEGER NOT NULL DEFAULT 0
);
";

/// A classified record as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// Its place in the store: records are aggregated in this order.
    pub rowid: i64,
    /// Event time, Unix seconds.
    pub time: i64,
    /// The record's own topic.
    pub topic: Option<String>,
    /// The model's label.
    pub label: String,
    /// Whether the label is negative.
    pub negative: bool,
    /// The model's probability of the negative labels.
    pub negative_score: f32,
    /// The text.
    pub text: String,
}

/// An alert with its id in the store; written as one JSON line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    /// Its id: alerts are numbered in the order they were raised.
    pub id: i64,
    /// The alert.
    #[serde(flatten)]
    pub alert: Alert,
}

/// A final window as stored, with the baseline it was tested against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredWindow {
    /// The window's counts (without its texts).
    pub window: Window,
    /// The topic's baseline share then, if it had one.
    pub baseline_share: Option<f64>,
    /// Its standard deviation.
    pub baseline_sd: Option<f64>,
}

/// What a sink writes once: alerts, or rejected records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emitted {
    /// Alerts and resolutions.
    Alerts,
    /// Rejected records.
    Rejects,
}

/// The key of a record: its id, or a hash of its time and text.
pub fn record_key(record: &StreamRecord) -> String {
    match &record.id {
        Some(id) => format!("id:{id}"),
        None => {
            let mut hash = Sha256::new();
            hash.update(record.time.to_le_bytes());
            hash.update(record.text.as_bytes());
            format!("sha256:{:x}", hash.finalize())
        }
    }
}

/// The SQLite store of one monitor (or of several workers).
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the store at `path`, in WAL mode.
    pub fn open(path: &Path) -> Result<Self, MonitorError> {
        let err = |e: rusqlite::Error| MonitorError::Store { path: path.to_path_buf(), message: e.to_string() };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Self { conn, path: path.to_path_buf() })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> MonitorError {
        MonitorError::Store { path: self.path.clone(), message: e.to_string() }
    }

    /// Starts a transaction: nothing it writes is seen until it commits.
    pub fn transaction(&mut self) -> Result<StoreTransaction<'_>, MonitorError> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| MonitorError::Store { path: path.clone(), message: e.to_string() })?;
        Ok(StoreTransaction { tx, path })
    }

    /// The value saved under `key`, if any.
    pub fn load<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, MonitorError> {
        let text: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| row.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| self.err(format!("meta '{key}': {e}")))).transpose()
    }

    /// Up to `limit` records stored after `rowid`, in store order.
    pub fn records_after(&self, rowid: i64, limit: usize) -> Result<Vec<StoredRecord>, MonitorError> {
        let sql = "SELECT rowid, time, topic, label, negative, negative_score, text FROM records
                   WHERE rowid > ?1 ORDER BY rowid LIMIT ?2";
        let mut statement = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = statement
            .query_map(params![rowid, limit as i64], |row| {
                Ok(StoredRecord {
                    rowid: row.get(0)?,
                    time: row.get(1)?,
                    topic: row.get(2)?,
                    label: row.get(3)?,
                    negative: row.get(4)?,
                    negative_score: row.get::<_, f64>(5)? as f32,
                    text: row.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Alerts with id above `after`, filtered by `emitted` / `delivered`
    /// when given, in id order.
    pub fn alerts(
        &self,
        after: i64,
        emitted: Option<bool>,
        delivered: Option<bool>,
    ) -> Result<Vec<StoredAlert>, MonitorError> {
        let sql = "SELECT id, body FROM alerts WHERE id > ?1 AND (?2 IS NULL OR emitted = ?2)
                   AND (?3 IS NULL OR delivered = ?3) ORDER BY id";
        let mut statement = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = statement
            .query_map(params![after, emitted, delivered], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut alerts = Vec::new();
        for row in rows {
            let (id, body) = row.map_err(|e| self.err(e))?;
            let alert = serde_json::from_str(&body).map_err(|e| self.err(format!("alert {id}: {e}")))?;
            alerts.push(StoredAlert { id, alert });
        }
        Ok(alerts)
    }

    /// Rejected records not yet written to the dead-letter sink, in id order.
    pub fn unemitted_rejects(&self) -> Result<Vec<Reject>, MonitorError> {
        let sql = "SELECT id, line, reason, record FROM rejects WHERE emitted = 0 ORDER BY id";
        let mut statement = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = statement
            .query_map([], |row| {
                Ok(Reject { id: row.get(0)?, line: row.get(1)?, reason: row.get(2)?, record: row.get(3)? })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Marks every alert (or reject) up to `id` as written to its sink.
    pub fn mark_emitted(&self, table: Emitted, id: i64) -> Result<(), MonitorError> {
        let sql = match table {
            Emitted::Alerts => "UPDATE alerts SET emitted = 1 WHERE id <= ?1 AND emitted = 0",
            Emitted::Rejects => "UPDATE rejects SET emitted = 1 WHERE id <= ?1 AND emitted = 0",
        };
        self.conn.execute(sql, [id]).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records a webhook delivery attempt (and the alert as delivered).
    pub fn record_delivery(&self, d: &Delivery) -> Result<(), MonitorError> {
        let sql =
            "INSERT INTO deliveries (alert_id, attempt, at, status, error, delivered) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
        let values = params![d.alert_id, d.attempt, d.at, d.status, d.error, d.delivered];
        self.conn.execute(sql, values).map_err(|e| self.err(e))?;
        if d.delivered {
            self.conn
                .execute("UPDATE alerts SET delivered = 1 WHERE id = ?1", [d.alert_id])
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Final windows of `topics` (every topic when empty) that overlap
    /// `[from, to)`, by topic then time.
    pub fn windows(&self, topics: &[String], from: i64, to: i64) -> Result<Vec<StoredWindow>, MonitorError> {
        let sql = "SELECT topic, start, end, count, negatives, labels, negative_score_sum, baseline_share, baseline_sd
                   FROM windows WHERE end > ?1 AND start < ?2 ORDER BY topic, start";
        let mut statement = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = statement
            .query_map(params![from, to], |row| {
                let labels: String = row.get(5)?;
                let window = Window {
                    topic: row.get(0)?,
                    start: row.get(1)?,
                    end: row.get(2)?,
                    count: row.get(3)?,
                    negatives: row.get(4)?,
                    labels: serde_json::from_str(&labels).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, Box::new(e))
                    })?,
                    negative_score_sum: row.get(6)?,
                    most_negative: Vec::new(),
                };
                Ok(StoredWindow { window, baseline_share: row.get(7)?, baseline_sd: row.get(8)? })
            })
            .map_err(|e| self.err(e))?;
        let windows: Vec<StoredWindow> = rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?;
        Ok(windows.into_iter().filter(|w| topics.is_empty() || topics.contains(&w.window.topic)).collect())
    }

    /// Rows in each table, by name.
    pub fn counts(&self) -> Result<Vec<(&'static str, i64)>, MonitorError> {
        let mut counts = Vec::new();
        for table in ["records", "windows", "alerts", "deliveries", "rejects"] {
            let n = self
                .conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0))
                .map_err(|e| self.err(e))?;
            counts.push((table, n));
        }
        Ok(counts)
    }
}

/// One batch's writes.
pub struct StoreTransaction<'a> {
    tx: Transaction<'a>,
    path: &'a Path,
}

impl StoreTransaction<'_> {
    fn err(&self, e: impl std::fmt::Display) -> MonitorError {
        MonitorError::Store { path: self.path.to_path_buf(), message: e.to_string() }
    }

    /// Stores a classified record under `key`; `None` when a record with
    /// that key is already stored (a duplicate, not counted again).
    pub fn insert_record(
        &self,
        key: &str,
        record: &StreamRecord,
        label: &str,
        negative: bool,
        negative_score: f32,
    ) -> Result<Option<i64>, MonitorError> {
        let sql = "INSERT OR IGNORE INTO records (key, time, topic, source, label, negative, negative_score, text)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
        let mut statement = self.tx.prepare_cached(sql).map_err(|e| self.err(e))?;
        let values = params![
            key,
            record.time,
            record.topic,
            record.source,
            label,
            negative,
            f64::from(negative_score),
            record.text
        ];
        let inserted = statement.execute(values).map_err(|e| self.err(e))?;
        Ok((inserted == 1).then(|| self.tx.last_insert_rowid()))
    }

    /// Stores a final window with the baseline it was tested against.
    pub fn insert_window(&self, window: &Window, baseline: Option<&Baseline>) -> Result<(), MonitorError> {
        let sql = "INSERT OR REPLACE INTO windows
                   (topic, start, end, count, negatives, labels, negative_score_sum, baseline_share, baseline_sd)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
        let mut statement = self.tx.prepare_cached(sql).map_err(|e| self.err(e))?;
        let labels = serde_json::to_string(&window.labels).map_err(|e| self.err(e))?;
        let tested = baseline.filter(|b| b.windows > 0);
        let values = params![
            window.topic,
            window.start,
            window.end,
            window.count,
            window.negatives,
            labels,
            window.negative_score_sum,
            tested.map(|b| b.share_mean),
            tested.map(|b| b.share_variance.max(0.0).sqrt())
        ];
        statement.execute(values).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Stores an alert and returns it with its id.
    pub fn insert_alert(&self, alert: Alert) -> Result<StoredAlert, MonitorError> {
        let body = serde_json::to_string(&alert).map_err(|e| self.err(e))?;
        self.tx
            .execute(
                "INSERT INTO alerts (topic, window_start, body) VALUES (?1, ?2, ?3)",
                params![alert.topic, alert.window_start, body],
            )
            .map_err(|e| self.err(e))?;
        Ok(StoredAlert { id: self.tx.last_insert_rowid(), alert })
    }

    /// Stores a rejected record and returns its id.
    pub fn insert_reject(&self, line: u64, reason: &str, record: &str) -> Result<i64, MonitorError> {
        let sql = "INSERT INTO rejects (line, reason, record) VALUES (?1, ?2, ?3)";
        self.tx.execute(sql, params![line, reason, record]).map_err(|e| self.err(e))?;
        Ok(self.tx.last_insert_rowid())
    }

    /// Saves `value` under `key`.
    pub fn save<T: Serialize>(&self, key: &str, value: &T) -> Result<(), MonitorError> {
        let text = serde_json::to_string(value).map_err(|e| self.err(e))?;
        let sql = "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2";
        self.tx.execute(sql, params![key, text]).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Makes every write of the batch durable at once.
    pub fn commit(self) -> Result<(), MonitorError> {
        let path = self.path.to_path_buf();
        self.tx.commit().map_err(|e| MonitorError::Store { path, message: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: Option<&str>, time: i64, text: &str) -> StreamRecord {
        StreamRecord { time, text: text.into(), topic: None, id: id.map(String::from), source: None }
    }

    #[test]
    fn records_are_stored_once_per_key_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("m.sqlite")).unwrap();
        let tx = store.transaction().unwrap();
        let a = record(Some("a"), 5, "up");
        let b = record(None, 6, "down");
        assert!(tx.insert_record(&record_key(&a), &a, "positive", false, 0.1).unwrap().is_some());
        assert!(tx.insert_record(&record_key(&b), &b, "negative", true, 0.9).unwrap().is_some());
        assert_eq!(tx.insert_record(&record_key(&a), &a, "positive", false, 0.1).unwrap(), None);
        tx.save("state", &42).unwrap();
        tx.commit().unwrap();
        let rows = store.records_after(0, 10).unwrap();
        assert_eq!(rows.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(), ["up", "down"]);
        assert!(rows[1].negative && (rows[1].negative_score - 0.9).abs() < 1e-6);
        assert_eq!(store.records_after(rows[0].rowid, 10).unwrap().len(), 1);
        assert_eq!(store.load::<i32>("state").unwrap(), Some(42));
        assert_eq!(record_key(&b), record_key(&record(None, 6, "down")));
        assert_ne!(record_key(&b), record_key(&record(None, 7, "down")));
    }

    #[test]
    fn a_transaction_not_committed_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sqlite");
        let mut store = Store::open(&path).unwrap();
        {
            let tx = store.transaction().unwrap();
            let a = record(Some("a"), 5, "up");
            tx.insert_record("k", &a, "positive", false, 0.1).unwrap();
            tx.save("state", &1).unwrap();
        }
        drop(store);
        let store = Store::open(&path).unwrap();
        assert!(store.records_after(0, 10).unwrap().is_empty());
        assert_eq!(store.load::<i32>("state").unwrap(), None);
    }
}
