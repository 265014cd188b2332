//! Replacing a file so that a crash leaves the old one or the new one, never
//! half of either: the new bytes go to a sibling temp file, are synced, the
//! temp file is renamed over the old one and the directory synced so the
//! rename itself survives. The state file and the history's pruning both
//! replace their files this way.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A step of a replacement that failed, and on what.
#[derive(Debug)]
pub struct Failed {
    /// "create", "write", "replace" or "sync directory".
    pub what: &'static str,
    pub path: PathBuf,
    pub error: io::Error,
}

/// `path` with `suffix` after its last component (`state.yaml.tmp`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `bytes` to the new file `tmp` and syncs it to disk.
pub fn write_synced(tmp: &Path, bytes: &[u8]) -> Result<(), Failed> {
    let failed = |what, error| Failed {
        what,
        path: tmp.to_path_buf(),
        error,
    };
    let mut file = File::create(tmp).map_err(|e| failed("create", e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| failed("write", e))
}

/// Renames `tmp` over `path`, then syncs their directory.
pub fn rename_synced(tmp: &Path, path: &Path) -> Result<(), Failed> {
    fs::rename(tmp, path).map_err(|error| Failed {
        what: "replace",
        path: path.to_path_buf(),
        error,
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|error| Failed {
            what: "sync directory",
            path: dir,
            error,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_leaves_only_the_new_file() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("f");
        fs::write(&path, "old").expect("written");
        let tmp = with_suffix(&path, ".tmp");
        assert_eq!(tmp, dir.path().join("f.tmp"));
        write_synced(&tmp, b"new").expect("written");
        rename_synced(&tmp, &path).expect("renamed");
        assert_eq!(fs::read_to_string(&path).expect("read"), "new");
        assert!(!tmp.exists());
        let gone = rename_synced(&tmp, &path).expect_err("no temp file");
        assert_eq!((gone.what, gone.path), ("replace", path));
    }
}
