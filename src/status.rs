//! `bwmon status`: where every slice stands, from the state (under a shared
//! lock) and one tc dump for live counters.

use crate::config::Classify;
use crate::context::Context;
use crate::error::Fatal;
use crate::hierarchy::{self, node_cap, node_max};
use crate::lock::{self, Mode};
use crate::nft::{self, Unreadable};
use crate::policy::{KernelIndex, Kind};
use crate::report::{self, Report};
use crate::state::{Hierarchy, Store};
use crate::tc::kernel::Kernel;
use std::io::Write;
use std::os::fd::AsFd;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// With the legend lines under it, or not.
    Table {
        legend: bool,
    },
    Json,
    Prometheus,
}

pub fn run(
    ctx: &Context,
    names: &[String],
    format: Format,
    check: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = &ctx.config;
    let store = Store::new(&cfg.state_file);
    let _lock = lock::acquire(&store.lock_path(), Mode::Shared, cfg.lock_wait)?;
    // The class dump runs while the state is parsed, the nft map read and
    // the state's half of the view made.
    let work = || {
        let loaded = store.load();
        let classified = (cfg.classify != Classify::None).then(nft::classified);
        let view = match &loaded {
            Ok(Some(state)) => Some(report::from_state(
                state,
                &cfg.dev,
                cfg.period_secs,
                ctx.now,
            )),
            _ => None,
        };
        (loaded, classified, view)
    };
    let (kernel, (loaded, classified, view)) = match Kernel::open(&cfg.dev) {
        Ok(mut tc) => tc.dump_classes_while(work),
        Err(e) => (Err(e), work()),
    };
    // A reader must not move files; an unusable state is shown from its backup.
    let state = match loaded {
        Ok(s) => s.unwrap_or_default(),
        Err(Fatal::BadData(why)) => match store.load_backup() {
            Ok(Some(b)) => {
                log::warn!(
                    "{why}: showing its backup {}",
                    store.backup_path().display()
                );
                b
            }
            _ => return Err(Fatal::BadData(why).into()),
        },
        Err(e) => return Err(e.into()),
    };
    // Without tc the state still says a lot: show it, say what is missing.
    let kernel = match kernel {
        Ok(k) => Some(k),
        Err(e) => {
            log::warn!("{e}; showing usage as of the last sync");
            None
        }
    };
    let remembered = state.hierarchy.get(&cfg.dev).copied();
    let dumped = kernel.is_some();
    let kernel = kernel.unwrap_or_default();
    // Somebody else's tree's counters are no slice's usage.
    hierarchy::inspect(&kernel, &cfg.dev).map_err(Fatal::Unavailable)?;
    let node = if let (Some(bwcap), Some(bwmax)) =
        (node_cap(&kernel, remembered), node_max(&kernel, remembered))
    {
        Some(Hierarchy::new(bwcap, bwmax))
    } else {
        if dumped {
            log::warn!(
                "no HTB hierarchy on {}: showing usage as of the last sync (`bwmon init` builds it)",
                cfg.dev
            );
        }
        remembered
    };
    // A view made during the dump is of this very state (none was made of
    // a state that could not be loaded).
    let mut report = match view {
        Some(mut view) => {
            view.count(&state, &kernel, node);
            view
        }
        None => report::build(&state, &kernel, &cfg.dev, node, cfg.period_secs, ctx.now),
    };
    report.sync_duration = store.sync_note().and_then(|n| n.duration);

    let mut unknown = false;
    if !names.is_empty() {
        for n in names {
            if !report.slices.iter().any(|s| &s.name == n)
                && !report.dead.iter().any(|d| &d.name == n)
            {
                log::error!("unknown slice {n}: `bwmon status` without names lists them all");
                unknown = true;
            }
        }
        report.slices.retain(|s| names.contains(&s.name));
        report.dead.retain(|d| names.contains(&d.name));
    }
    // Only the slices asked about are checked, and warned about.
    if let Some(classified) = classified {
        mark_classified(&mut report, &kernel, classified);
    }
    // A closed pipe (`bwmon status | head`) is not an error worth a message.
    // Straight to the descriptor (nothing went to stdout before): std's
    // line buffer would send each piece of the JSON's last line in a write
    // of its own.
    let stdout = std::io::stdout();
    let _ = match stdout.as_fd().try_clone_to_owned() {
        Ok(fd) => render(&report, format, &mut std::fs::File::from(fd)),
        Err(_) => render(&report, format, &mut stdout.lock()),
    };
    let status = exit_status(check, report.any_capped(), unknown);
    // The process ends with this run: thousands of slice views and states
    // handed back to the allocator one by one would only cost time.
    std::mem::forget((report, state, kernel));
    Ok(ExitCode::from(status))
}

/// The exit status as a monitoring check reads it (Nagios: 0 OK, 1 WARNING,
/// 3 UNKNOWN): 1 when `--check` finds a capped slice among those shown, else
/// 3 when a name is unknown, else 0. A cap found outranks a name that could
/// not be checked, as monitoring plugins rank states (CRITICAL, WARNING,
/// UNKNOWN, OK): a typo in the check must not hide a capped slice, and once
/// the cap is lifted the 3 shows the typo.
fn exit_status(check: bool, capped: bool, unknown: bool) -> u8 {
    if check && capped {
        1
    } else if unknown {
        3
    } else {
        0
    }
}

fn render(report: &Report, format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    match format {
        Format::Table { legend } => out.write_all(report.table(legend).as_bytes()),
        // Sent a piece at a time: 2.9 MB at 4,000 slices.
        Format::Json => report.write_json(out),
        Format::Prometheus => out.write_all(report.prometheus().as_bytes()),
    }
}

/// Per slice, whether the live nftables maps hold it; one warning for the
/// slices whose traffic cannot be reaching their classes.
fn mark_classified(
    report: &mut Report,
    kernel: &[crate::classes::KernelClass],
    classified: Result<std::collections::BTreeSet<u16>, Unreadable>,
) {
    let live = match classified {
        Ok(set) => set,
        // The kernel shows the ruleset to root only: a monitoring user's
        // every run would warn about what it can do nothing about.
        Err(e) if e.not_permitted && !nix::unistd::geteuid().is_root() => {
            log::debug!(
                "{}: not root, so status cannot tell which slices are classified",
                e.message
            );
            return;
        }
        Err(e) => {
            log::warn!("{}: cannot tell which slices are classified", e.message);
            return;
        }
    };
    report.mark_classified(&live);
    let index = KernelIndex::new(kernel);
    let mut silent: Vec<&str> = Vec::new();
    for s in &report.slices {
        let counted = index.get((Kind::Low, s.xid)).is_some_and(|c| c.sent.0 > 0);
        if s.classified == Some(false) && !counted {
            silent.push(&s.name);
        }
    }
    // Without a hierarchy nothing counts anyway, and that has its own warning.
    let hierarchy = kernel.iter().any(|c| c.id == crate::policy::CAP_CLASS);
    if hierarchy && !silent.is_empty() {
        log::warn!(
            "{} count no bytes and have no entry in the {} maps: their traffic is not shaped (`bwmon sync` restores the entries)",
            crate::format::listed(&silent, 5),
            crate::nft::TABLE
        );
    }
}

#[cfg(test)]
mod tests {
    use super::exit_status;

    #[test]
    fn exit_status_ranks_capped_over_unknown() {
        // (check, capped, unknown) → status
        for (check, capped, unknown, want) in [
            (false, false, false, 0),
            (false, true, false, 0),
            (true, false, false, 0),
            (true, true, false, 1),
            (false, false, true, 3),
            (false, true, true, 3),
            (true, false, true, 3),
            (true, true, true, 1),
        ] {
            assert_eq!(
                exit_status(check, capped, unknown),
                want,
                "check {check}, capped {capped}, unknown {unknown}"
            );
        }
    }
}
