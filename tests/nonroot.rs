//! `bwmon status` run by a user who may read the state but not write it (a
//! monitoring agent as `nobody`): it takes the shared lock on a read-only
//! descriptor, or reads without the lock when there is no lock file and it may
//! not create one, and says nothing about the nftables maps only root can list.
//!
//! Issue: a non-root `bwmon status` exited 74 because the lock file was opened
//! for writing even for the shared lock.
//!
//! Needs root (namespaces; the state is written by a root `bwmon sync`) and
//! `setpriv` (util-linux) to become `nobody`. Without either, the tests print a
//! line and pass, except under `CI=true`, where they fail.

mod common;

use common::{
    ALICE, BOB, BWMON, HOUR, Netns, Sandbox, Settings, T0, alice_and_bob, assert_exit, at, log_run,
    or_skip, skip_or_fail, stderr, stdout,
};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const NOBODY: &str = "65534";

/// Whether `setpriv` can run; missing: a failure under CI, else a skip.
fn require_setpriv() -> bool {
    let ok = Command::new("setpriv")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok || skip_or_fail("non-root test", "setpriv (util-linux) is missing")
}

/// A root `init` and `sync` with Alice and Bob in a sandbox, so a state file
/// exists (and its lock file, root's, 0644); `None` when the test cannot run.
fn synced() -> Option<Sandbox> {
    let sb = Sandbox::new(&Settings::default())?;
    if !require_setpriv() {
        return None;
    }
    sb.init(T0, Some("1gbit"));
    sb.sync(T0, &alice_and_bob());
    Some(sb)
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// A config for nobody: the real tc (the sandbox's wrapper logs to a file
/// nobody may not write), the given state file, a short lock wait.
fn nobody_config(dir: &Path, state: &Path) -> PathBuf {
    let tc = ["/usr/sbin/tc", "/sbin/tc", "/usr/bin/tc"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("tc installed");
    let config = dir.join("nobody.yaml");
    fs::write(
        &config,
        format!(
            "tc: {}\nstate_file: {}\nlock_wait: 1s\n",
            tc.display(),
            state.display()
        ),
    )
    .expect("write config");
    chmod(&config, 0o644);
    config
}

/// `bwmon -c CONFIG --dev lo --now NOW ARGS...` as nobody in `ns`.
fn status_as_nobody(ns: &Netns, config: &Path, args: &[&str]) -> Output {
    let now = at(HOUR);
    let out = ns
        .command("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            BWMON,
            "-c",
        ])
        .arg(config)
        .args(["--dev", "lo", "--now", &now, "status"])
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("spawn setpriv");
    log_run(
        &format!("(as nobody) bwmon status {}", args.join(" ")),
        &out,
    );
    out
}

/// `status ARGS` as nobody, which must exit 0.
#[track_caller]
fn nobody_ok(ns: &Netns, config: &Path, args: &[&str], what: &str) -> Output {
    let out = status_as_nobody(ns, config, args);
    assert_exit(&out, 0, what);
    out
}

/// `status` as nobody shows both slices and says nothing on stderr; with
/// `-vv` it exits 0 as well. Returns the `-vv` run's stderr (what it says
/// about how it read the state).
#[track_caller]
fn silent_then_verbose(ns: &Netns, config: &Path, what: &str) -> String {
    let out = nobody_ok(ns, config, &[], what);
    shows_both(&out, what);
    assert!(out.stderr.is_empty(), "{what}: {}", stderr(&out));
    stderr(&nobody_ok(ns, config, &["-vv"], &format!("{what}, -vv")))
}

#[track_caller]
fn shows_both(out: &Output, what: &str) {
    let stdout = stdout(out);
    for name in [ALICE.0, BOB.0] {
        assert!(stdout.contains(name), "{what}: shows {name}:\n{stdout}");
    }
}

/// The state as the operator made it readable: a world-readable directory
/// nobody may not write, the state 0644, the lock file root's 0644.
#[test]
fn status_as_nobody_takes_the_shared_lock_on_a_read_only_lock_file() {
    let sb = or_skip!(synced());
    let lock = sb.lock_path();
    assert!(lock.exists(), "the root sync made {}", lock.display());
    chmod(sb.dir.path(), 0o755);
    chmod(&sb.state, 0o644);
    chmod(&lock, 0o644);
    let config = nobody_config(sb.dir.path(), &sb.state);

    // Not even a warning about the nft maps, which only root may list.
    let err = silent_then_verbose(&sb.ns, &config, "status as nobody");
    let out = nobody_ok(
        &sb.ns,
        &config,
        &["--format", "json"],
        "status --format json as nobody",
    );
    shows_both(&out, "json as nobody");
    assert!(
        err.lines().any(|l| l.contains("not root")),
        "-vv says why the maps were not read: {err}"
    );
    assert!(!err.contains("warning"), "{err}");

    // It really is a lock: held exclusively, the reader waits, then exits 75.
    let held = fs::File::open(&lock).expect("open lock");
    held.try_lock().expect("exclusive lock");
    let out = status_as_nobody(&sb.ns, &config, &[]);
    assert_exit(&out, 75, "status as nobody while a writer holds the lock");
    drop(held);
}

/// No lock file yet and a directory nobody may not write: status reads the
/// state without the lock (saves are atomic renames), says so at -vv.
#[test]
fn status_as_nobody_without_a_lock_file_in_a_read_only_dir() {
    let sb = or_skip!(synced());
    let dir = tempfile::Builder::new()
        .prefix("bwmon-ro-")
        .tempdir()
        .expect("temp dir");
    let state = dir.path().join("state.yaml");
    fs::copy(&sb.state, &state).expect("copy state");
    chmod(&state, 0o644);
    let config = nobody_config(dir.path(), &state);
    chmod(dir.path(), 0o555);

    let err = silent_then_verbose(&sb.ns, &config, "status as nobody, no lock file");
    assert!(
        err.lines().any(|l| l.contains("without the lock")),
        "-vv says it read without the lock: {err}"
    );
    assert!(
        !dir.path().join("state.yaml.lock").exists(),
        "nobody created no lock file"
    );
    chmod(dir.path(), 0o755);
}

/// The same readable state on a device without the hierarchy (a fresh
/// namespace): one warning, the figures of the last sync, exit 0.
#[test]
fn status_as_nobody_without_a_hierarchy_shows_the_state() {
    let sb = or_skip!(synced());
    chmod(sb.dir.path(), 0o755);
    chmod(&sb.state, 0o644);
    let config = nobody_config(sb.dir.path(), &sb.state);
    let bare = Netns::new().expect("a second namespace");

    let out = nobody_ok(&bare, &config, &[], "status as nobody without a hierarchy");
    shows_both(&out, "without a hierarchy");
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one warning: {err}");
    assert!(
        lines[0].starts_with("bwmon: warning: ") && lines[0].contains("no HTB hierarchy"),
        "{err}"
    );
}
