//! The failures whose kind decides bwmon's exit status (SPEC §2).
//!
//! Anything else travels as `anyhow::Error` with context; `main` looks for a
//! `Fatal` in the chain to pick the exit code, so a layer can add context
//! without losing the kind.

use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// Slivers JSON or a state file that cannot be used.
    #[error("{0}")]
    BadData(String),
    /// tc missing, or no hierarchy to work on.
    #[error("{0}")]
    Unavailable(String),
    /// The state file or its directory cannot be read or written.
    #[error("{0}")]
    Io(String),
    /// Another bwmon holds the lock past the wait.
    #[error("{0}")]
    Locked(String),
    /// Bad configuration file or key.
    #[error("{0}")]
    Config(String),
}

impl Fatal {
    pub fn code(&self) -> u8 {
        match self {
            Fatal::BadData(_) => 65,
            Fatal::Unavailable(_) => 69,
            Fatal::Io(_) => 74,
            Fatal::Locked(_) => 75,
            Fatal::Config(_) => 78,
        }
    }
}

/// The exit status for an error chain: the first `Fatal` in it, else 1.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    err.chain()
        .find_map(|e| e.downcast_ref::<Fatal>())
        .map_or(ExitCode::from(1), |f| ExitCode::from(f.code()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn codes_follow_the_spec() {
        assert_eq!(Fatal::BadData(String::new()).code(), 65);
        assert_eq!(Fatal::Unavailable(String::new()).code(), 69);
        assert_eq!(Fatal::Io(String::new()).code(), 74);
        assert_eq!(Fatal::Locked(String::new()).code(), 75);
        assert_eq!(Fatal::Config(String::new()).code(), 78);
    }

    #[test]
    fn kind_survives_context() {
        let err = Err::<(), _>(Fatal::Locked("held".into()))
            .context("outer")
            .unwrap_err();
        assert_eq!(exit_code(&err), ExitCode::from(75));
        assert_eq!(exit_code(&anyhow::anyhow!("plain")), ExitCode::from(1));
    }
}
