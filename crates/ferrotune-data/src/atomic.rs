//! Atomic file writes: write beside the target, flush, rename over it, then
//! flush the folder (so that a power loss cannot lose the rename), so that a
//! reader (or a resumed run after a kill) sees either the old file or the
//! whole new one.

use std::io;
use std::path::{Path, PathBuf};

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Flushes a folder's entries (a rename or a new file in it) to disk. On
/// systems where a folder cannot be opened for that (Windows) it does nothing.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Renames `from` to `to` and flushes the folders of both.
pub fn rename_durably(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    sync_dir(&parent(to))?;
    if parent(from) != parent(to) {
        sync_dir(&parent(from))?;
    }
    Ok(())
}

/// Calls `write` on a temporary path next to `path`, flushes it, renames it
/// into place and flushes the folder. A `path` that exists and is not a
/// regular file (a pipe, a terminal, `/dev/stdout`) is written directly.
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        // A pipe, a terminal or `/dev/stdout`: written in place, never
        // replaced by a file.
        return write(path);
    }
    let tmp = temp_path(path);
    let result = write(&tmp).and_then(|()| {
        std::fs::File::open(&tmp)?.sync_all()?;
        rename_durably(&tmp, path)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Puts the folder `staged` in the place of `target` as one step, so that a
/// reader sees the old folder or the new one whole, never a mix: on Linux
/// the two are swapped by one `renameat2(RENAME_EXCHANGE)` and the old one
/// is removed after; elsewhere (or where the file system cannot swap) the
/// old folder is first renamed aside. The files in `staged` must already be
/// flushed (as [`write_atomic`] does); its entries are flushed here.
pub fn replace_dir(staged: &Path, target: &Path) -> io::Result<()> {
    sync_dir(staged)?;
    if !target.exists() {
        return rename_durably(staged, target);
    }
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        if renameat_with(CWD, staged, CWD, target, RenameFlags::EXCHANGE).is_ok() {
            sync_dir(&parent(target))?;
            // `staged` now names the old folder.
            return std::fs::remove_dir_all(staged);
        }
    }
    let aside = temp_path(target);
    rename_durably(target, &aside)?;
    rename_durably(staged, target)?;
    std::fs::remove_dir_all(&aside)
}

/// Writes a folder as a set: `write` fills a new folder next to `target`,
/// whose files are then flushed, and the folder replaces `target` whole
/// ([`replace_dir`]). On an error the new folder is removed and `target` is
/// left as it was.
pub fn write_dir(target: &Path, write: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
    let staged = temp_path(target);
    if staged.exists() {
        std::fs::remove_dir_all(&staged)?;
    }
    std::fs::create_dir_all(&staged)?;
    let result = write(&staged).and_then(|()| {
        for entry in std::fs::read_dir(&staged)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::File::open(entry.path())?.sync_all()?;
            }
        }
        replace_dir(&staged, target)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staged);
    }
    result
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic(path, |tmp| std::fs::write(tmp, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_cleans_up_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_bytes_atomic(&path, b"old").unwrap();
        write_bytes_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let err = write_atomic(&path, |tmp| {
            std::fs::write(tmp, b"partial")?;
            Err(io::Error::other("disk full"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_pipe_is_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let reader = std::thread::spawn({
            let fifo = fifo.clone();
            move || std::fs::read(fifo).unwrap()
        });
        write_bytes_atomic(&fifo, b"report").unwrap();
        assert_eq!(reader.join().unwrap(), b"report");
        assert!(!std::fs::metadata(&fifo).unwrap().is_file());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    fn folder_with(path: &Path, files: &[(&str, &str)]) {
        std::fs::create_dir_all(path).unwrap();
        for (name, text) in files {
            std::fs::write(path.join(name), text).unwrap();
        }
    }

    fn files_of(path: &Path) -> Vec<(String, String)> {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap())
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn replaces_a_folder_as_a_set() {
        let dir = tempfile::tempdir().unwrap();
        let (staged, target) = (dir.path().join("staged"), dir.path().join("model"));
        folder_with(&staged, &[("config.json", "1"), ("weights", "1")]);
        replace_dir(&staged, &target).unwrap();
        folder_with(&staged, &[("config.json", "2"), ("tokenizer", "2")]);
        replace_dir(&staged, &target).unwrap();
        let want = [("config.json", "2"), ("tokenizer", "2")].map(|(n, t)| (n.to_string(), t.to_string()));
        assert_eq!(files_of(&target), want);
        // Only the new folder is left: the staged name and the old folder are gone.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn writes_a_folder_as_a_set_or_leaves_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("index");
        write_dir(&target, |d| std::fs::write(d.join("a"), "1")).unwrap();
        write_dir(&target, |d| std::fs::write(d.join("b"), "2")).unwrap();
        assert_eq!(files_of(&target), [("b".to_string(), "2".to_string())]);
        let failed = write_dir(&target, |d| {
            std::fs::write(d.join("c"), "3")?;
            Err(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(files_of(&target), [("b".to_string(), "2".to_string())]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
