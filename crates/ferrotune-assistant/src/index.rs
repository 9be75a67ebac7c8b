//! The FAQ index folder: the entries, one vector per entry and key (a
//! `ferrotune_search::VectorIndex`: `vectors.npy`, `ids.json`), the
//! embedding model it was built with (folder and identity), the hand-over
//! threshold, and a manifest holding the size and SHA-256 of every other
//! file. It is written as a set (a new folder swapped in whole) and checked
//! file by file when loaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferrotune_data::FaqEntry;
use ferrotune_eval::Calibration;
use ferrotune_search::{AnnSettings, Search, SearchIndex, VectorIndex, IDS_FILE, VECTORS_FILE};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AssistantError;

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
const ENTRIES: &str = "entries.jsonl";
const FORMAT: &str = "ferrotune-faq-index";
const VERSION: u32 = 2;

/// What is embedded of each entry: its question, or its question and (as a
/// second key) the question followed by the answer; an entry scores the
/// best of its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Keys {
    /// The question alone.
    #[serde(rename = "question")]
    Question,
    /// The question, and the question with the answer.
    #[serde(rename = "question+answer")]
    QuestionAndAnswer,
}

impl Keys {
    /// The names `--keys` takes.
    pub const NAMES: [&'static str; 2] = ["question", "question+answer"];

    /// The keys of a name in [`Keys::NAMES`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "question" => Some(Keys::Question),
            "question+answer" => Some(Keys::QuestionAndAnswer),
            _ => None,
        }
    }

    /// Vectors per entry.
    pub fn per_entry(self) -> usize {
        match self {
            Keys::Question => 1,
            Keys::QuestionAndAnswer => 2,
        }
    }

    /// The texts embedded for `entry`, in the order of its vectors.
    pub fn texts(self, entry: &Entry) -> Vec<String> {
        match self {
            Keys::Question => vec![entry.question.clone()],
            Keys::QuestionAndAnswer => vec![entry.question.clone(), format!("{} {}", entry.question, entry.answer)],
        }
    }
}

/// One FAQ entry as the index stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Its id.
    pub id: String,
    /// The question it answers.
    pub question: String,
    /// The answer.
    pub answer: String,
    /// The intent it answers, if the FAQ says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
}

impl From<FaqEntry> for Entry {
    fn from(entry: FaqEntry) -> Self {
        Entry { id: entry.id, question: entry.question, answer: entry.answer, intent: entry.intent }
    }
}

/// A model folder and the identity of what it computes (a hash of its
/// weights and, for an embedding model, its pooling).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    /// The folder.
    pub path: PathBuf,
    /// Its identity.
    pub identity: String,
    /// Tokens per text the entries were embedded with (absent in indexes
    /// built before it was recorded: their vectors are never reused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
}

/// The intent model of an index and the intents its FAQ covers: a question
/// of any other intent is handed over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentGate {
    /// The fine-tuned sequence classifier's folder.
    pub model: PathBuf,
    /// The intents the FAQ answers, sorted.
    pub covered: Vec<String>,
}

/// The id in the vector index of key `key` of entry `entry`.
pub(crate) fn row_id(entry: usize, key: usize) -> String {
    format!("{entry}/{key}")
}

/// The entry of a vector index id.
pub(crate) fn entry_of(id: &str) -> Option<usize> {
    id.split_once('/').and_then(|(entry, _)| entry.parse().ok())
}

/// A FAQ index in memory.
#[derive(Debug)]
pub struct FaqIndex {
    /// The embedding model it was built with.
    pub model: ModelRef,
    /// What is embedded of each entry.
    pub keys: Keys,
    /// Coordinates per vector.
    pub dim: usize,
    /// The entries, in the FAQ file's order.
    pub entries: Vec<Entry>,
    /// `keys.per_entry()` unit vectors per entry, with the ids of
    /// [`row_id`]-form (`entry/key`), searched exactly or through an HNSW
    /// graph (its settings are saved; the graph is built when the index
    /// is loaded).
    pub vectors: SearchIndex,
    /// Answers scoring below this are handed over (none without one).
    pub threshold: Option<f32>,
    /// How the threshold was calibrated on a dev set, if it was.
    pub calibration: Option<Calibration>,
    /// The intent model, if any.
    pub intent: Option<IntentGate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FileCheck {
    bytes: u64,
    sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: String,
    version: u32,
    model: ModelRef,
    keys: Keys,
    dim: usize,
    entries: usize,
    threshold: Option<f32>,
    calibration: Option<Calibration>,
    intent: Option<IntentGate>,
    /// The HNSW graph's settings when the index searches approximately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ann: Option<AnnSettings>,
    files: BTreeMap<String, FileCheck>,
}

fn check_of(bytes: &[u8]) -> FileCheck {
    FileCheck { bytes: bytes.len() as u64, sha256: format!("{:x}", Sha256::digest(bytes)) }
}

impl FaqIndex {
    /// Writes the index into the folder `dir` as a set: a reader sees the
    /// old folder or the whole new one.
    pub fn save(&self, dir: &Path) -> Result<(), AssistantError> {
        let mut entries = Vec::new();
        for entry in &self.entries {
            serde_json::to_writer(&mut entries, entry).expect("entries serialise");
            entries.push(b'\n');
        }
        ferrotune_data::atomic::write_dir(dir, |staged| {
            std::fs::write(staged.join(ENTRIES), &entries)?;
            self.vectors.exact().write_files(staged).map_err(std::io::Error::other)?;
            let mut files = BTreeMap::new();
            for name in [ENTRIES, VECTORS_FILE, IDS_FILE] {
                files.insert(name.to_string(), check_of(&std::fs::read(staged.join(name))?));
            }
            let manifest = Manifest {
                format: FORMAT.into(),
                version: VERSION,
                model: self.model.clone(),
                keys: self.keys,
                dim: self.dim,
                entries: self.entries.len(),
                threshold: self.threshold,
                calibration: self.calibration,
                intent: self.intent.clone(),
                ann: self.vectors.ann_settings(),
                files,
            };
            std::fs::write(staged.join(MANIFEST), serde_json::to_vec_pretty(&manifest).expect("manifests serialise"))
        })
        .map_err(|e| AssistantError::io(dir, e))
    }

    /// Loads the index in `dir`, checking every file against the manifest;
    /// an index built with `ann` settings gets its HNSW graph built here.
    pub fn load(dir: &Path) -> Result<Self, AssistantError> {
        Self::read(dir, true)
    }

    /// As [`Self::load`], but searched exactly whatever the manifest says
    /// (no graph is built): for reading the vectors back.
    pub fn load_exact(dir: &Path) -> Result<Self, AssistantError> {
        Self::read(dir, false)
    }

    fn read(dir: &Path, with_graph: bool) -> Result<Self, AssistantError> {
        let manifest_path = dir.join(MANIFEST);
        let text = std::fs::read(&manifest_path).map_err(|e| AssistantError::io(&manifest_path, e))?;
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|e| AssistantError::corrupt(&manifest_path, format!("not a FAQ index manifest: {e}")))?;
        if manifest.format != FORMAT || manifest.version != VERSION {
            let message = format!(
                "format '{}' version {}; this ferrotune reads '{FORMAT}' version {VERSION}",
                manifest.format, manifest.version
            );
            return Err(AssistantError::corrupt(&manifest_path, message));
        }
        if manifest.entries == 0 || manifest.dim == 0 {
            let message =
                format!("{} entries of {} coordinates: an index holds at least one", manifest.entries, manifest.dim);
            return Err(AssistantError::corrupt(&manifest_path, message));
        }
        let read_checked = |name: &str| -> Result<Vec<u8>, AssistantError> {
            let path = dir.join(name);
            let want = manifest
                .files
                .get(name)
                .ok_or_else(|| AssistantError::corrupt(&manifest_path, format!("no entry for {name}")))?;
            let bytes = std::fs::read(&path).map_err(|e| AssistantError::io(&path, e))?;
            let got = check_of(&bytes);
            if got.bytes != want.bytes {
                let message = format!("{} bytes, the manifest says {} (truncated or altered)", got.bytes, want.bytes);
                return Err(AssistantError::corrupt(&path, message));
            }
            if got.sha256 != want.sha256 {
                return Err(AssistantError::corrupt(&path, "its SHA-256 differs from the manifest's (altered)"));
            }
            Ok(bytes)
        };
        let entries_path = dir.join(ENTRIES);
        let text = String::from_utf8(read_checked(ENTRIES)?)
            .map_err(|_| AssistantError::corrupt(&entries_path, "not UTF-8"))?;
        let entries = text
            .lines()
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_str(line)
                    .map_err(|e| AssistantError::corrupt(&entries_path, format!("line {}: {e}", i + 1)))
            })
            .collect::<Result<Vec<Entry>, _>>()?;
        if entries.len() != manifest.entries {
            let message = format!("{} entries, the manifest says {}", entries.len(), manifest.entries);
            return Err(AssistantError::corrupt(&entries_path, message));
        }
        read_checked(VECTORS_FILE)?;
        read_checked(IDS_FILE)?;
        let vectors = VectorIndex::load(dir)?;
        let rows = manifest.entries * manifest.keys.per_entry();
        let all_rows =
            (0..manifest.entries).all(|e| (0..manifest.keys.per_entry()).all(|k| vectors.contains(&row_id(e, k))));
        if vectors.len() != rows || vectors.dim() != manifest.dim || !all_rows {
            let message = format!(
                "{} vectors of {} coordinates, not one of {} per key of each of the {} entries",
                vectors.len(),
                vectors.dim(),
                manifest.dim,
                manifest.entries
            );
            return Err(AssistantError::corrupt(&dir.join(IDS_FILE), message));
        }
        Ok(FaqIndex {
            model: manifest.model,
            keys: manifest.keys,
            dim: manifest.dim,
            entries,
            vectors: SearchIndex::new(vectors, manifest.ann.filter(|_| with_graph))?,
            threshold: manifest.threshold,
            calibration: manifest.calibration,
            intent: manifest.intent,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small index of three entries with two keys each.
    pub(crate) fn sample() -> FaqIndex {
        let entry = |id: &str, q: &str| Entry {
            id: id.into(),
            question: q.into(),
            answer: format!("answer {id}"),
            intent: None,
        };
        let mut vectors = VectorIndex::new(4).unwrap();
        for row in 0..6 {
            let mut v = [0.0f32; 4];
            v[row % 4] = 1.0;
            vectors.add(&row_id(row / 2, row % 2), &v).unwrap();
        }
        FaqIndex {
            model: ModelRef { path: "models/emb".into(), identity: "abc".into(), max_len: Some(128) },
            keys: Keys::QuestionAndAnswer,
            dim: 4,
            entries: vec![entry("f1", "one?"), entry("f2", "two?"), entry("f3", "three?")],
            vectors: SearchIndex::Exact(vectors),
            threshold: Some(0.5),
            calibration: None,
            intent: None,
        }
    }

    fn same(a: &FaqIndex, b: &FaqIndex) {
        assert_eq!((&a.model, a.keys, a.dim, &a.entries), (&b.model, b.keys, b.dim, &b.entries));
        assert_eq!((a.threshold, a.calibration, &a.intent), (b.threshold, b.calibration, &b.intent));
        assert_eq!(a.vectors.exact().to_matrix(), b.vectors.exact().to_matrix());
        assert_eq!(a.vectors.ann_settings(), b.vectors.ann_settings());
    }

    #[test]
    fn saves_and_loads_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let index = sample();
        index.save(&path).unwrap();
        same(&FaqIndex::load(&path).unwrap(), &index);
        let mut other = sample();
        other.entries.truncate(1);
        for row in 2..6 {
            other.vectors.remove(&row_id(row / 2, row % 2));
        }
        other.save(&path).unwrap();
        same(&FaqIndex::load(&path).unwrap(), &other);
        // An index whose vectors do not match its entries is refused.
        let mut wrong = sample();
        wrong.entries.truncate(2);
        wrong.save(&path).unwrap();
        let e = FaqIndex::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("ids.json: 6 vectors of 4 coordinates, not one of 4 per key of each of the 2 entries"),
            "{e}"
        );
    }

    #[test]
    fn truncated_or_altered_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        sample().save(&path).unwrap();
        let vectors = path.join(VECTORS_FILE);
        let bytes = std::fs::read(&vectors).unwrap();
        std::fs::write(&vectors, &bytes[..bytes.len() - 3]).unwrap();
        let e = FaqIndex::load(&path).unwrap_err().to_string();
        let want =
            format!("vectors.npy: {} bytes, the manifest says {} (truncated or altered)", bytes.len() - 3, bytes.len());
        assert!(e.ends_with(&want), "{e}");
        let mut altered = bytes.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        std::fs::write(&vectors, &altered).unwrap();
        let e = FaqIndex::load(&path).unwrap_err().to_string();
        assert!(e.ends_with("vectors.npy: its SHA-256 differs from the manifest's (altered)"), "{e}");
        std::fs::write(path.join(MANIFEST), "{\"format\": 1").unwrap();
        let e = FaqIndex::load(&path).unwrap_err().to_string();
        assert!(e.contains("manifest.json: not a FAQ index manifest"), "{e}");
    }
}
