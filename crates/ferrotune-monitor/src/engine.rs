//! The monitor itself: each batch of classified records is stored, counted
//! in its windows and tested, and the windows, alerts, rejects, state and
//! stream position are committed in one transaction.
//!
//! With several workers on one stream (Redis), the workers only store
//! classified records ([`store_classified`]); one process counts them
//! ([`Monitor::aggregate`]), reading the store in the order records were
//! committed. Counting in one place keeps the counts exact: a record is
//! stored once (its key is unique) and read once (the read position is
//! committed with the windows it changed), and each topic's baseline and
//! alert episodes have one writer.

use serde::{Deserialize, Serialize};

use crate::source::{Position, SourceItem};
use crate::store::{record_key, StoreTransaction};
use crate::{
    Classified, Detector, DetectorSettings, MonitorError, Store, StoredAlert, StoredRecord, TopicRules, Window, Windows,
};

/// The topic every record is also counted under: the overall stream.
pub const OVERALL: &str = "*";

/// Settings a store keeps for its whole life.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MonitorSettings {
    /// Window width, seconds.
    pub width: i64,
    /// Allowed lateness, seconds.
    pub lateness: i64,
    /// The detector's settings.
    pub detector: DetectorSettings,
}

/// Everything needed to continue after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    windows: Windows,
    detector: Detector,
    /// The last stored record counted (store order).
    cursor: i64,
    /// Where the next unread record of the input starts.
    position: Position,
}

/// The model's verdict on one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// The label.
    pub label: String,
    /// Whether it is a negative label.
    pub negative: bool,
    /// The probability of the negative labels.
    pub negative_score: f32,
}

/// A record that is not counted, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reject {
    /// Its id in the store (0 before it is stored).
    pub id: i64,
    /// Its line in the input (0 when it came from the store).
    pub line: u64,
    /// Why.
    pub reason: String,
    /// The record as read.
    pub record: String,
}

impl Reject {
    /// A record of the input rejected for `reason` (not yet stored).
    fn of(item: &SourceItem, reason: String) -> Self {
        Self { id: 0, line: item.line, reason, record: item.raw.clone() }
    }
}

/// What a batch did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Records stored.
    pub stored: usize,
    /// Records already in the store (same id, or same time and text).
    pub duplicates: usize,
    /// Records rejected (also in the store's `rejects`).
    pub rejects: Vec<Reject>,
    /// Windows that became final.
    pub final_windows: usize,
    /// Alerts and resolutions raised, with their ids.
    pub alerts: Vec<StoredAlert>,
    /// Stored records read to be counted ([`Monitor::aggregate`]).
    pub read: usize,
}

impl BatchOutcome {
    /// Adds `batch`'s counts to these (its rejects and alerts are dropped:
    /// they have been written).
    pub fn add(&mut self, batch: BatchOutcome) {
        self.stored += batch.stored;
        self.duplicates += batch.duplicates;
        self.final_windows += batch.final_windows;
        self.read += batch.read;
    }
}

/// Windows and detection over a store.
#[derive(Debug)]
pub struct Monitor {
    store: Store,
    state: State,
    topics: Option<TopicRules>,
}

impl Monitor {
    /// Continues the monitor kept in `store`, or starts one. A store keeps
    /// the settings it was made with: other settings are refused.
    pub fn open(mut store: Store, settings: MonitorSettings, topics: Option<TopicRules>) -> Result<Self, MonitorError> {
        match store.load::<MonitorSettings>("settings")? {
            Some(stored) => check_settings(&store, &stored, &settings)?,
            None => {
                let tx = store.transaction()?;
                tx.save("settings", &settings)?;
                tx.commit()?;
            }
        }
        let state = store.load::<State>("state")?.unwrap_or_else(|| State {
            windows: Windows::new(settings.width, settings.lateness),
            detector: Detector::new(settings.detector),
            cursor: 0,
            position: Position::default(),
        });
        Ok(Self { store, state, topics })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where the input continues.
    pub fn position(&self) -> Position {
        self.state.position
    }

    /// Stores and counts a batch read from the input: `labels` holds the
    /// model's verdict on each item whose record parsed, in order.
    pub fn ingest(&mut self, items: &[SourceItem], labels: &[Labelled]) -> Result<BatchOutcome, MonitorError> {
        let Some(last) = items.last() else { return Ok(BatchOutcome::default()) };
        let Self { store, state, topics } = self;
        let tx = store.transaction()?;
        let mut outcome = BatchOutcome::default();
        let mut labels = labels.iter();
        for item in items {
            let record = match &item.record {
                Ok(record) => record,
                Err(reason) => {
                    reject(&tx, &mut outcome, Reject::of(item, reason.clone()))?;
                    continue;
                }
            };
            let labelled = labels.next().expect("one verdict for each parsed record");
            // A late record is rejected before it is stored.
            if let Some(late) = state.windows.lateness_error(record.time) {
                reject(&tx, &mut outcome, Reject::of(item, late.to_string()))?;
                continue;
            }
            let key = record_key(record);
            let Some(rowid) =
                tx.insert_record(&key, record, &labelled.label, labelled.negative, labelled.negative_score)?
            else {
                outcome.duplicates += 1;
                continue;
            };
            outcome.stored += 1;
            let stored = StoredRecord {
                rowid,
                time: record.time,
                topic: record.topic.clone(),
                label: labelled.label.clone(),
                negative: labelled.negative,
                negative_score: labelled.negative_score,
                text: record.text.clone(),
            };
            count(&tx, state, topics.as_ref(), stored, &mut outcome)?;
        }
        state.position = last.next;
        tx.save("state", state)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Counts up to `limit` records that workers stored since the last
    /// call (this process being the one that counts).
    pub fn aggregate(&mut self, limit: usize) -> Result<BatchOutcome, MonitorError> {
        let mut rows = self.store.records_after(self.state.cursor, limit)?;
        // Workers commit in parallel: time order within a read keeps the
        // counts independent of which worker committed first.
        rows.sort_by_key(|r| (r.time, r.rowid));
        let Self { store, state, topics } = self;
        let tx = store.transaction()?;
        let mut outcome = BatchOutcome { read: rows.len(), ..Default::default() };
        for row in rows {
            state.cursor = state.cursor.max(row.rowid);
            // Workers store late records too; they are rejected here, with no input line.
            if let Some(late) = state.windows.lateness_error(row.time) {
                let record = serde_json::json!({ "time": row.time, "text": row.text, "topic": row.topic });
                let reject_row = Reject { id: 0, line: 0, reason: late.to_string(), record: record.to_string() };
                reject(&tx, &mut outcome, reject_row)?;
                continue;
            }
            count(&tx, state, topics.as_ref(), row, &mut outcome)?;
        }
        tx.save("state", state)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// The end of the stream: every open window becomes final.
    pub fn end(&mut self) -> Result<BatchOutcome, MonitorError> {
        let Self { store, state, .. } = self;
        let tx = store.transaction()?;
        let mut outcome = BatchOutcome::default();
        let done = state.windows.flush();
        observe(&tx, &mut state.detector, done, &mut outcome)?;
        tx.save("state", state)?;
        tx.commit()?;
        Ok(outcome)
    }
}

/// Stores classified records without counting them (a worker of several).
pub fn store_classified(
    store: &mut Store,
    items: &[SourceItem],
    labels: &[Labelled],
) -> Result<BatchOutcome, MonitorError> {
    let tx = store.transaction()?;
    let mut outcome = BatchOutcome::default();
    let mut labels = labels.iter();
    for item in items {
        match &item.record {
            Ok(record) => {
                let l = labels.next().expect("one verdict for each parsed record");
                let key = record_key(record);
                match tx.insert_record(&key, record, &l.label, l.negative, l.negative_score)? {
                    Some(_) => outcome.stored += 1,
                    None => outcome.duplicates += 1,
                }
            }
            Err(reason) => reject(&tx, &mut outcome, Reject::of(item, reason.clone()))?,
        }
    }
    tx.commit()?;
    Ok(outcome)
}

fn check_settings(store: &Store, stored: &MonitorSettings, asked: &MonitorSettings) -> Result<(), MonitorError> {
    let (s, a) = (stored, asked);
    let fields: [(&'static str, String, String); 8] = [
        ("window", s.width.to_string(), a.width.to_string()),
        ("allowed_lateness", s.lateness.to_string(), a.lateness.to_string()),
        ("alpha", s.detector.alpha.to_string(), a.detector.alpha.to_string()),
        ("min_count", s.detector.min_count.to_string(), a.detector.min_count.to_string()),
        ("min_rise", s.detector.min_rise.to_string(), a.detector.min_rise.to_string()),
        ("warmup", s.detector.warmup.to_string(), a.detector.warmup.to_string()),
        ("half_life", s.detector.half_life.to_string(), a.detector.half_life.to_string()),
        ("cooldown", s.detector.cooldown.to_string(), a.detector.cooldown.to_string()),
    ];
    match fields.into_iter().find(|(_, stored, asked)| stored != asked) {
        Some((field, stored, asked)) => {
            Err(MonitorError::SettingsChanged { path: store.path().to_path_buf(), field, stored, asked })
        }
        None => Ok(()),
    }
}

fn reject(tx: &StoreTransaction<'_>, outcome: &mut BatchOutcome, mut reject: Reject) -> Result<(), MonitorError> {
    reject.id = tx.insert_reject(reject.line, &reject.reason, &reject.record)?;
    outcome.rejects.push(reject);
    Ok(())
}

/// Counts a stored record (not late) under each of its topics.
fn count(
    tx: &StoreTransaction<'_>,
    state: &mut State,
    topics: Option<&TopicRules>,
    row: StoredRecord,
    outcome: &mut BatchOutcome,
) -> Result<(), MonitorError> {
    state.cursor = state.cursor.max(row.rowid);
    let mut names = vec![OVERALL.to_string()];
    names.extend(row.topic.clone());
    if let Some(rules) = topics {
        names.extend(rules.topics_of(&row.text).map(str::to_string));
    }
    names.sort();
    names.dedup();
    for topic in names {
        let record = Classified {
            time: row.time,
            topic,
            label: row.label.clone(),
            negative: row.negative,
            negative_score: row.negative_score,
            text: row.text.clone(),
        };
        let done = state.windows.add(record)?;
        observe(tx, &mut state.detector, done, outcome)?;
    }
    Ok(())
}

/// Stores final windows with their baselines, tests them, stores alerts.
fn observe(
    tx: &StoreTransaction<'_>,
    detector: &mut Detector,
    done: Vec<Window>,
    outcome: &mut BatchOutcome,
) -> Result<(), MonitorError> {
    for window in done {
        tx.insert_window(&window, detector.baseline(&window.topic))?;
        for alert in detector.observe(&window) {
            outcome.alerts.push(tx.insert_alert(alert)?);
        }
        outcome.final_windows += 1;
    }
    Ok(())
}
