//! `bwmon init`: build the HTB hierarchy of SPEC §4 on the device, or change
//! its cap. Idempotent: it inspects what is there and changes only that, so
//! slice classes keep their settings and counters.

use crate::app::Context;
use crate::config::Classify;
use crate::error::Fatal;
use crate::lock::{self, Mode};
use crate::nft::{self, Nft};
use crate::policy::{CAP_CLASS, I2_PARENT, Kind, ROOT_CLASS};
use crate::state::{DEFAULT_XID, Hierarchy, State, Store};
use crate::tc::batch::{Batch, RootQdisc};
use crate::tc::run::Tc;
use crate::tc::{ClassId, KernelClass};
use crate::units::Rate;
use anyhow::Context as _;
use std::process::ExitCode;

pub fn run(ctx: &Context, bwcap: Option<Rate>, bwmax: Option<Rate>) -> anyhow::Result<ExitCode> {
    let cfg = &ctx.config;
    let tc = Tc::new(&cfg.tc, &cfg.dev)?;
    // Checked before anything is built: a half-made setup helps nobody.
    let nft = match cfg.classify {
        Classify::None => None,
        Classify::Uid | Classify::Mark => Some(Nft::new(&cfg.nft)?),
    };
    let store = Store::new(&cfg.state_file);
    let _lock = lock::acquire(&store.lock_path(), Mode::Exclusive, cfg.lock_wait)?;
    let mut state = store.load()?.unwrap_or_default();
    let remembered = state.hierarchy.get(&cfg.dev).copied();

    let root = tc.root_qdisc()?;
    let ours = root.as_deref().is_some_and(is_our_root);
    let classes = if ours { tc.dump_classes()? } else { Vec::new() };
    let find = |id| classes.iter().find(|c| c.id == id);

    let bwmax = bwmax.or(remembered.map(|h| h.bwmax)).unwrap_or(cfg.bwmax);
    let mut bwcap = bwcap
        .or(node_cap(&classes, remembered))
        .or(cfg.bwcap)
        .unwrap_or(bwmax);
    if bwcap > bwmax {
        log::warn!("node cap {bwcap} is above bwmax {bwmax}: using {bwmax}");
        bwcap = bwmax;
    }

    if let Some(line) = root.as_deref().filter(|l| is_our_root(l)) {
        let default = line
            .split_whitespace()
            .skip_while(|w| *w != "default")
            .nth(1);
        if !matches!(default, Some("1fff" | "0x1fff")) {
            log::warn!(
                "{}: the HTB root sends unclassified packets to {}, not 1:1fff; `tc qdisc del dev {} root` and `bwmon init` to fix",
                cfg.dev,
                default.unwrap_or("no class"),
                cfg.dev
            );
        }
    }
    let mut batch = Batch::default();
    if ours && find(CAP_CLASS).is_some() {
        batch.change_interior(&cfg.dev, bwcap, bwmax);
        if [ROOT_CLASS, I2_PARENT].iter().any(|id| find(*id).is_none()) {
            return Err(Fatal::Unavailable(format!(
                "the HTB hierarchy on {} is incomplete (class 1:1 or 1:20 missing): run `bwmon teardown` or `tc qdisc del dev {} root`, then `bwmon init`",
                cfg.dev, cfg.dev
            ))
            .into());
        }
        if Kind::BOTH
            .iter()
            .any(|k| find(k.class_id(DEFAULT_XID)).is_none())
        {
            batch.add_default_classes(&cfg.dev, bwcap, bwmax);
        }
    } else {
        if let Some(line) = &root {
            if line.contains("htb") && ours {
                log::warn!(
                    "{}: HTB root without class 1:10: building the hierarchy under it",
                    cfg.dev
                );
            } else {
                log::info!("{}: replacing root qdisc ({})", cfg.dev, line.trim());
            }
        }
        // `replace` over whatever root qdisc the device has (noqueue, fq_codel…).
        let root_qdisc = if ours {
            RootQdisc::Keep
        } else {
            RootQdisc::Replace
        };
        batch.add_hierarchy(&cfg.dev, bwcap, bwmax, root_qdisc);
        batch.add_default_classes(&cfg.dev, bwcap, bwmax);
    }
    let outcome = tc.run_batch(&batch)?;
    if !outcome.failed.is_empty() {
        let lines: Vec<&str> = outcome
            .failed
            .iter()
            .map(|&i| batch.lines[i].as_str())
            .collect();
        return Err(Fatal::Unavailable(format!(
            "tc refused {} line(s) building the hierarchy on {}: {} ({})",
            lines.len(),
            cfg.dev,
            lines.join("; "),
            outcome.stderr.lines().next().unwrap_or("").trim()
        ))
        .into());
    }
    if let Some(nft) = nft {
        // Init rewrites the table whatever it held: after a change of
        // `classify` or `exempt`, `bwmon init` applies it.
        let want = state.tenant_xids();
        nft.apply(&nft::table_script(cfg.classify, &cfg.exempt, &want))
            .map_err(Fatal::Unavailable)?;
        state.classified = want;
    }
    record(&mut state, &cfg.dev, bwcap, bwmax);
    store.save(&state).context("saving the hierarchy's caps")?;
    log::info!("{}: node cap {bwcap}, bwmax {bwmax}", cfg.dev);
    Ok(ExitCode::SUCCESS)
}

/// `bwmon teardown`: the root qdisc goes, and every class with it. The state
/// stays, so usage counted this period is not forgotten if bwmon comes back.
pub fn teardown(ctx: &Context) -> anyhow::Result<ExitCode> {
    let cfg = &ctx.config;
    let tc = Tc::new(&cfg.tc, &cfg.dev)?;
    let store = Store::new(&cfg.state_file);
    let _lock = lock::acquire(&store.lock_path(), Mode::Exclusive, cfg.lock_wait)?;
    if !tc.root_qdisc()?.as_deref().is_some_and(is_our_root) {
        log::info!("{}: no bwmon hierarchy to remove", cfg.dev);
        return Ok(ExitCode::SUCCESS);
    }
    let mut batch = Batch::default();
    batch.delete_root(&cfg.dev);
    let outcome = tc.run_batch(&batch)?;
    if !outcome.failed.is_empty() {
        return Err(Fatal::Unavailable(format!(
            "tc could not remove the root qdisc of {}: {}",
            cfg.dev,
            outcome.stderr.lines().next().unwrap_or("").trim()
        ))
        .into());
    }
    if cfg.classify != Classify::None
        && let Err(e) = Nft::new(&cfg.nft)
            .map_err(|e| e.to_string())
            .and_then(|n| n.delete())
    {
        log::warn!("{e}: the `{}` table may remain", nft::TABLE);
    }
    // Without this the next sync would rebuild what was just removed.
    let mut state = store.load()?.unwrap_or_default();
    let classified = std::mem::take(&mut state.classified);
    if state.hierarchy.remove(&cfg.dev).is_some() || !classified.is_empty() {
        store.save(&state)?;
    }
    log::info!("{}: hierarchy removed; the state file is kept", cfg.dev);
    Ok(ExitCode::SUCCESS)
}

fn record(state: &mut State, dev: &str, bwcap: Rate, bwmax: Rate) {
    state
        .hierarchy
        .insert(dev.to_string(), Hierarchy { bwcap, bwmax });
}

/// `qdisc htb 1: root …`: the root qdisc bwmon builds on.
fn is_our_root(line: &str) -> bool {
    let mut w = line.split_whitespace();
    w.next() == Some("qdisc") && w.next() == Some("htb") && w.next() == Some("1:")
}

/// The node cap in force: the kernel's class 1:10 is the source of truth, read
/// at the precision of the exact figure `init` recorded when they agree.
pub fn node_cap(classes: &[KernelClass], remembered: Option<Hierarchy>) -> Option<Rate> {
    kernel_ceil(classes, CAP_CLASS, remembered.map(|h| h.bwcap))
}

/// bwmax in force: class 1:20's ceil, read the same way.
pub fn node_max(classes: &[KernelClass], remembered: Option<Hierarchy>) -> Option<Rate> {
    kernel_ceil(classes, I2_PARENT, remembered.map(|h| h.bwmax))
}

fn kernel_ceil(classes: &[KernelClass], id: ClassId, recorded: Option<Rate>) -> Option<Rate> {
    let c = classes.iter().find(|c| c.id == id)?;
    Some(match recorded {
        Some(r) if c.ceil.matches(r) => r,
        _ => c.ceil.shown,
    })
}
