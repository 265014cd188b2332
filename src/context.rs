//! What every command gets — the validated config and the time to act at —
//! and the one way a command that may write takes the state: its lock,
//! shared for a dry run, exclusive (state directory made if missing)
//! otherwise.

use crate::config::Config;
use crate::error::Fatal;
use crate::lock::{self, Lock, Mode};
use crate::state::Store;
use chrono::{DateTime, Utc};

#[derive(Debug)]
pub struct Context {
    pub config: Config,
    pub now: DateTime<Utc>,
}

impl Context {
    /// The state store, locked for a run that writes (or, `dry_run`, only
    /// reads it). The lock is held until the returned [`Lock`] is dropped.
    pub fn lock_state(&self, dry_run: bool) -> Result<(Store, Lock), Fatal> {
        let cfg = &self.config;
        let store = Store::new(&cfg.state_file);
        let mode = if dry_run {
            Mode::Shared
        } else {
            store.ensure_dir()?;
            Mode::Exclusive
        };
        let lock = lock::acquire(&store.lock_path(), mode, cfg.lock_wait)?;
        Ok((store, lock))
    }
}
