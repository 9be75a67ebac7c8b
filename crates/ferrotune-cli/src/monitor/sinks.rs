//! Where the monitor's alerts and rejected records go, each exactly once.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use ferrotune_monitor::{BatchOutcome, Emitted, Store};
use serde::Serialize;

/// A sink written exactly once per item: alerts, or rejected records.
/// Items are written once committed, then marked emitted in the store; a
/// restart first writes those not yet emitted. In a file, an id already
/// there counts as emitted (and a line cut short by a kill is dropped), so
/// that a file gets each item exactly once; stdout and stderr get them at
/// least once.
pub struct OnceSink {
    out: Box<dyn Write>,
    file: Option<File>,
    table: Emitted,
    /// Items written by this run.
    pub written: usize,
}

impl OnceSink {
    fn open(path: Option<&Path>, default: Box<dyn Write>, table: Emitted, store: &Store) -> anyhow::Result<Self> {
        let (out, file): (Box<dyn Write>, _) = match path {
            Some(path) => {
                store.mark_emitted(table, last_id(path)?)?;
                let file = File::options().create(true).append(true).open(path)?;
                (Box::new(BufWriter::new(file.try_clone()?)), Some(file))
            }
            None => (default, None),
        };
        Ok(Self { out, file, table, written: 0 })
    }

    /// Writes `items` (the last with id `last`) as JSON lines.
    fn write<T: Serialize>(&mut self, items: &[T], last: i64, store: &Store) -> anyhow::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        for item in items {
            serde_json::to_writer(&mut self.out, item)?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()?;
        if let Some(file) = &self.file {
            file.sync_data()?;
        }
        store.mark_emitted(self.table, last)?;
        self.written += items.len();
        Ok(())
    }
}

/// The highest `id` in a JSON-lines file (0 when there is none), after
/// dropping a last line cut short.
fn last_id(path: &Path) -> anyhow::Result<i64> {
    let context = || format!("{}", path.display());
    let mut bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(context),
    };
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if whole < bytes.len() {
        File::options().write(true).open(path).and_then(|f| f.set_len(whole as u64)).with_context(context)?;
        bytes.truncate(whole);
    }
    let ids = bytes.split(|&b| b == b'\n').filter_map(|line| {
        let value: serde_json::Value = serde_json::from_slice(line).ok()?;
        value.get("id")?.as_i64()
    });
    Ok(ids.max().unwrap_or(0))
}

/// Alerts and rejected records.
pub struct Sinks {
    pub alerts: OnceSink,
    pub rejects: OnceSink,
}

impl Sinks {
    /// Opens the sinks (`None`: stdout for alerts, stderr for rejects) and
    /// writes what the store holds that they have not had yet.
    pub fn open(alerts: Option<&Path>, rejects: Option<&Path>, store: &Store) -> anyhow::Result<Self> {
        let stdout = Box::new(BufWriter::new(std::io::stdout()));
        let name = |path: Option<&Path>| path.unwrap_or(Path::new("-")).display().to_string();
        let alerts = OnceSink::open(alerts, stdout, Emitted::Alerts, store)
            .with_context(|| format!("alerts file {}", name(alerts)))?;
        let rejects = OnceSink::open(rejects, Box::new(std::io::stderr()), Emitted::Rejects, store)
            .with_context(|| format!("rejects file {}", name(rejects)))?;
        let mut sinks = Self { alerts, rejects };
        let pending = BatchOutcome {
            alerts: store.alerts(0, Some(false), None)?,
            rejects: store.unemitted_rejects()?,
            ..Default::default()
        };
        sinks.write(&pending, store)?;
        Ok(sinks)
    }

    /// Writes a committed batch's rejects and alerts.
    pub fn write(&mut self, outcome: &BatchOutcome, store: &Store) -> anyhow::Result<()> {
        let last_reject = outcome.rejects.last().map_or(0, |r| r.id);
        self.rejects.write(&outcome.rejects, last_reject, store)?;
        let last_alert = outcome.alerts.last().map_or(0, |a| a.id);
        self.alerts.write(&outcome.alerts, last_alert, store)
    }
}
