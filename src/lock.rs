//! The run lock (SPEC §7): `<state>.lock`, exclusive for commands that change
//! things, shared for readers, waited for a bounded time.

use crate::error::Fatal;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Exclusive,
    Shared,
}

/// Held until dropped (the kernel releases it with the file). A reader that
/// could neither open nor create the lock file holds none.
#[derive(Debug)]
pub struct Lock {
    _file: Option<File>,
}

pub fn acquire(path: &Path, mode: Mode, wait: Duration) -> Result<Lock, Fatal> {
    let cannot_open = |e: std::io::Error| {
        Fatal::Io(format!(
            "cannot open lock file {}: {e}; check the state directory exists and is writable",
            path.display()
        ))
    };
    let create = || {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
    };
    let file = match mode {
        Mode::Exclusive => create().map_err(cannot_open)?,
        // flock(2) needs no write access: a reader who may read the state
        // (a monitoring user) may take the shared lock.
        Mode::Shared => match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => match create() {
                Ok(file) => file,
                // No writer has run yet, and this reader may not create the
                // file. Saves are atomic renames, so the state it reads is
                // never torn: going on unlocked is safe.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
                    ) =>
                {
                    log::debug!(
                        "no lock file {} and cannot create it ({e}): reading without the lock",
                        path.display()
                    );
                    return Ok(Lock { _file: None });
                }
                Err(e) => return Err(cannot_open(e)),
            },
            Err(e) => return Err(cannot_open(e)),
        },
    };
    let deadline = Instant::now() + wait;
    loop {
        let attempt = match mode {
            Mode::Exclusive => file.try_lock(),
            Mode::Shared => file.try_lock_shared(),
        };
        match attempt {
            Ok(()) => return Ok(Lock { _file: Some(file) }),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Fatal::Locked(format!(
                    "another bwmon holds {} (waited {}); if none runs, check for a stuck process",
                    path.display(),
                    humantime::format_duration(wait)
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Fatal::Io(format!("cannot lock {}: {e}", path.display())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_exclusive_waits_then_gives_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.lock");
        let _held = acquire(&path, Mode::Exclusive, Duration::ZERO).expect("first");
        let err = acquire(&path, Mode::Exclusive, Duration::from_millis(120)).unwrap_err();
        assert_eq!(err.code(), 75);
        assert!(acquire(&path, Mode::Shared, Duration::ZERO).is_err());
    }

    #[test]
    fn reader_locks_a_read_only_lock_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.lock");
        std::fs::write(&path, "").expect("lock file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
        let _reader = acquire(&path, Mode::Shared, Duration::ZERO).expect("reader");
        // The read-only descriptor holds a real shared lock.
        let held = File::open(&path).expect("open");
        assert!(matches!(held.try_lock(), Err(TryLockError::WouldBlock)));
    }

    #[test]
    fn readers_share() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.lock");
        let _a = acquire(&path, Mode::Shared, Duration::ZERO).expect("first reader");
        let _b = acquire(&path, Mode::Shared, Duration::ZERO).expect("second reader");
    }
}
