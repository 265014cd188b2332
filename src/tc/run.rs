//! Spawning tc: one class dump to read, one `-force -batch -` to write. A run
//! never spawns tc per slice (SPEC §9.10), so a sync costs two processes, three
//! when a dump was interrupted and had to be read again.

use super::KernelClass;
use super::batch::Batch;
use super::parse::{DumpParser, ParseError};
use crate::error::Fatal;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Where tc lives on this node, and which device bwmon works on.
#[derive(Clone, Debug)]
pub struct Tc {
    pub path: PathBuf,
    pub dev: String,
}

/// How a batch went: which lines (0-based) the kernel refused or tc never ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub failed: BTreeSet<usize>,
    /// tc's stderr, for the log.
    pub stderr: String,
}

impl Tc {
    /// Resolves a bare `tc` on PATH and in the sbin directories cron's PATH lacks.
    pub fn new(configured: &Path, dev: &str) -> Result<Tc, Fatal> {
        let path = find_program(configured).ok_or_else(|| {
            Fatal::Unavailable(format!(
                "{} not found (as given, or on PATH, /usr/sbin, /sbin): install iproute2 or set `tc:` in the config",
                configured.display()
            ))
        })?;
        Ok(Tc {
            path,
            dev: dev.to_string(),
        })
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.path);
        c.stdin(Stdio::null());
        c
    }

    fn spawn_error(&self, e: &std::io::Error) -> Fatal {
        Fatal::Unavailable(format!(
            "cannot run {}: {e}; install iproute2 or set `tc:` in the config",
            self.path.display()
        ))
    }

    /// Every HTB class on the device with its counter. The dump is parsed as
    /// tc writes it; one that changed while being read is read once more.
    pub fn dump_classes(&self) -> Result<Vec<KernelClass>, Fatal> {
        for _attempt in 0..2 {
            let started = Instant::now();
            let mut child = self
                .command()
                .args(["-s", "-d", "class", "show", "dev", &self.dev])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| self.spawn_error(&e))?;
            // stderr on its own thread, so a chatty tc cannot block on it.
            let stderr_pipe = child.stderr.take();
            let stderr = std::thread::spawn(move || {
                let mut text = String::new();
                if let Some(mut pipe) = stderr_pipe {
                    let _ = pipe.read_to_string(&mut text);
                }
                text
            });
            let mut parser = DumpParser::default();
            let mut parsed = Ok(());
            if let Some(out) = child.stdout.take() {
                let mut reader = BufReader::with_capacity(1 << 16, out);
                let mut buf = Vec::with_capacity(256);
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) => break,
                        Ok(_) if parsed.is_ok() => {
                            // tc writes ASCII; the lossy path is only for the odd byte.
                            let line = match std::str::from_utf8(&buf) {
                                Ok(l) => std::borrow::Cow::Borrowed(l),
                                Err(_) => String::from_utf8_lossy(&buf),
                            };
                            parsed = parser.line(line.trim_end_matches('\n'));
                        }
                        Ok(_) => {} // drain, so tc can finish
                        Err(e) => {
                            return Err(Fatal::Unavailable(format!(
                                "reading `tc class show dev {}`: {e}",
                                self.dev
                            )));
                        }
                    }
                }
            }
            let status = child.wait().map_err(|e| self.spawn_error(&e))?;
            let stderr = stderr.join().unwrap_or_default();
            log::debug!("tc: class dump took {} µs", started.elapsed().as_micros());
            if !status.success() {
                return Err(Fatal::Unavailable(format!(
                    "`tc class show dev {}` failed: {}; check the device exists",
                    self.dev,
                    first_line(&stderr)
                )));
            }
            if stderr.contains("Dump was interrupted") {
                log::debug!("tc dump was interrupted, reading again");
                continue;
            }
            let unsupported = |e: ParseError| {
                Fatal::Unavailable(format!(
                    "cannot read `tc class show dev {}` output: {e}; is this a supported iproute2?",
                    self.dev
                ))
            };
            parsed.map_err(unsupported)?;
            return parser.finish().map_err(unsupported);
        }
        Err(Fatal::Unavailable(format!(
            "tc class dump of {} kept being interrupted; try again",
            self.dev
        )))
    }

    /// The root qdisc line of `tc qdisc show`, if any (used by `init` only).
    pub fn root_qdisc(&self) -> Result<Option<String>, Fatal> {
        let out = self
            .command()
            .args(["qdisc", "show", "dev", &self.dev])
            .output()
            .map_err(|e| self.spawn_error(&e))?;
        if !out.status.success() {
            return Err(Fatal::Unavailable(format!(
                "`tc qdisc show dev {}` failed: {}; check the device exists",
                self.dev,
                first_line(&String::from_utf8_lossy(&out.stderr))
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == "root"))
            .map(str::to_string))
    }

    /// Runs one batch. Refused lines (`Command failed -:N`) are reported and
    /// the rest applied; if tc stopped without saying where, no line is
    /// trusted to have been applied.
    pub fn run_batch(&self, batch: &Batch) -> Result<BatchOutcome, Fatal> {
        if batch.is_empty() {
            return Ok(BatchOutcome::default());
        }
        let mut child = self
            .command()
            .args(["-force", "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(&e))?;
        let started = Instant::now();
        let text = batch.text();
        if let Some(mut stdin) = child.stdin.take() {
            // A write error means tc exited early; its status says the rest.
            let _ = stdin.write_all(text.as_bytes());
        }
        let out = child.wait_with_output().map_err(|e| self.spawn_error(&e))?;
        log::debug!(
            "tc: batch of {} lines took {} µs",
            batch.lines.len(),
            started.elapsed().as_micros()
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let mut failed: BTreeSet<usize> = stderr
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Command failed -:"))
            .filter_map(|n| n.trim().parse::<usize>().ok())
            .filter(|&n| n >= 1 && n <= batch.lines.len())
            .map(|n| n - 1)
            .collect();
        if !out.status.success() && failed.is_empty() {
            failed = (0..batch.lines.len()).collect();
        }
        Ok(BatchOutcome { failed, stderr })
    }
}

/// A program named in the config: a path as given, a bare name looked up on
/// PATH and in the sbin directories cron's PATH lacks.
pub fn find_program(configured: &Path) -> Option<PathBuf> {
    if configured.components().count() > 1 {
        return configured.is_file().then(|| configured.to_path_buf());
    }
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(configured))
        .find(|p| p.is_file())
}

pub fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
}
