//! An index as files: `vectors.npy` (the unit vectors, float32, rows in
//! insertion order) and `ids.json` (the ids, same order).

use std::path::{Path, PathBuf};

use crate::{Search, SearchError, VectorIndex};

/// The vectors' file in an index folder.
pub const VECTORS_FILE: &str = "vectors.npy";
/// The ids' file in an index folder.
pub const IDS_FILE: &str = "ids.json";

impl VectorIndex {
    /// Writes `vectors.npy` and `ids.json` into the existing folder `dir`,
    /// each atomically (for a folder that holds other files too).
    pub fn write_files(&self, dir: &Path) -> Result<(), SearchError> {
        let (ids, data) = self.to_matrix();
        let io = |path: PathBuf| move |source| SearchError::Io { path, source };
        let vectors = dir.join(VECTORS_FILE);
        ferrotune_data::npy::write_f32_matrix(&vectors, &data, self.dim()).map_err(io(vectors.clone()))?;
        let ids_path = dir.join(IDS_FILE);
        let text = serde_json::to_string(&ids).expect("strings serialise");
        ferrotune_data::atomic::write_bytes_atomic(&ids_path, text.as_bytes()).map_err(io(ids_path.clone()))
    }

    /// Saves the index as the folder `dir`, replaced whole: a reader sees
    /// the old index or the new one, never a mix.
    pub fn save(&self, dir: &Path) -> Result<(), SearchError> {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let staged = dir.with_file_name(format!(".{name}.staged-{}", std::process::id()));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SearchError::Io { path, source }
        };
        if staged.exists() {
            std::fs::remove_dir_all(&staged).map_err(io(&staged))?;
        }
        std::fs::create_dir_all(&staged).map_err(io(&staged))?;
        self.write_files(&staged)?;
        ferrotune_data::atomic::replace_dir(&staged, dir).map_err(io(dir))
    }

    /// Reads an index written by [`Self::save`] or [`Self::write_files`];
    /// a truncated or altered file, ids that do not match the rows, or a
    /// repeated id are errors naming the file.
    pub fn load(dir: &Path) -> Result<Self, SearchError> {
        let matrix = ferrotune_data::npy::read_f32_matrix(&dir.join(VECTORS_FILE))?;
        let ids_path = dir.join(IDS_FILE);
        let corrupt = |message: String| SearchError::Corrupt { path: ids_path.clone(), message };
        let text =
            std::fs::read_to_string(&ids_path).map_err(|source| SearchError::Io { path: ids_path.clone(), source })?;
        let ids: Vec<String> =
            serde_json::from_str(&text).map_err(|e| corrupt(format!("expected a list of ids: {e}")))?;
        if ids.len() != matrix.rows {
            return Err(corrupt(format!("{} ids for the {} rows of {VECTORS_FILE}", ids.len(), matrix.rows)));
        }
        let mut index = VectorIndex::new(matrix.cols).map_err(|_| SearchError::Corrupt {
            path: dir.join(VECTORS_FILE),
            message: "vectors of 0 coordinates".into(),
        })?;
        index.add_rows(&ids, &matrix.data, false).map_err(|e| match e {
            SearchError::DuplicateId(id) => corrupt(format!("id '{id}' appears twice")),
            e => SearchError::Corrupt { path: dir.join(VECTORS_FILE), message: e.to_string() },
        })?;
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_indexes_load_back_and_damaged_ones_name_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let mut index = VectorIndex::new(2).unwrap();
        for (id, v) in [("a", [1.0, 0.0]), ("b", [0.0, 2.0]), ("c", [1.0, 1.0])] {
            index.add(id, &v).unwrap();
        }
        index.remove("a");
        index.add("a", &[3.0, 4.0]).unwrap();
        index.save(&path).unwrap();
        index.save(&path).unwrap();
        let back = VectorIndex::load(&path).unwrap();
        assert_eq!(back.ids(), ["b", "c", "a"]);
        assert_eq!(back.get("a").unwrap(), [0.6, 0.8]);
        assert_eq!(back.search(&[1.0, 0.1], 3).unwrap(), index.search(&[1.0, 0.1], 3).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no staged folder left");

        let vectors = path.join(VECTORS_FILE);
        let bytes = std::fs::read(&vectors).unwrap();
        std::fs::write(&vectors, &bytes[..bytes.len() - 3]).unwrap();
        let e = VectorIndex::load(&path).unwrap_err().to_string();
        assert!(e.starts_with(&vectors.display().to_string()) && e.contains("bytes of values"), "{e}");
        std::fs::write(&vectors, &bytes).unwrap();
        let ids = path.join(IDS_FILE);
        for (text, expected) in [
            (r#"["b", "c"]"#, "2 ids for the 3 rows"),
            (r#"["b", "c", "b"]"#, "id 'b' appears twice"),
            (r#"{"b": 1}"#, "expected a list of ids"),
        ] {
            std::fs::write(&ids, text).unwrap();
            let e = VectorIndex::load(&path).unwrap_err().to_string();
            assert!(e.starts_with(&ids.display().to_string()) && e.contains(expected), "{e}");
        }
        let mut nan = bytes.clone();
        let at = nan.len() - 4;
        nan[at..].copy_from_slice(&f32::NAN.to_le_bytes());
        std::fs::write(&ids, r#"["b", "c", "a"]"#).unwrap();
        std::fs::write(&vectors, nan).unwrap();
        let e = VectorIndex::load(&path).unwrap_err().to_string();
        assert!(e.contains("vectors.npy: vector 'a' has a value that is not a finite number"), "{e}");
    }
}
