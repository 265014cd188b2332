//! The run lock (SPEC §7): `<state>.lock`, exclusive for commands that change
//! things, shared for readers, waited for a bounded time.

use crate::error::Fatal;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Exclusive,
    Shared,
}

/// Held until dropped (the kernel releases it with the file).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

pub fn acquire(path: &Path, mode: Mode, wait: Duration) -> Result<Lock, Fatal> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| {
            Fatal::Io(format!(
                "cannot open lock file {}: {e}; check the state directory exists and is writable",
                path.display()
            ))
        })?;
    let deadline = Instant::now() + wait;
    loop {
        let attempt = match mode {
            Mode::Exclusive => file.try_lock(),
            Mode::Shared => file.try_lock_shared(),
        };
        match attempt {
            Ok(()) => return Ok(Lock { _file: file }),
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
    fn readers_share() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.lock");
        let _a = acquire(&path, Mode::Shared, Duration::ZERO).expect("first reader");
        let _b = acquire(&path, Mode::Shared, Duration::ZERO).expect("second reader");
    }
}
