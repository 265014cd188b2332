//! `bwmon init`: build the HTB hierarchy of SPEC §4 on the device, or change
//! its cap. Idempotent: it inspects what is there and changes only that, so
//! slice classes keep their settings and counters.

use crate::config::Classify;
use crate::context::Context;
use crate::error::Fatal;
use crate::hierarchy::{self, Tree, node_cap};
use crate::lock::{self, Mode};
use crate::nft::{self, Nft};
use crate::policy::Kind;
use crate::state::{DEFAULT_XID, Hierarchy, State, Store};
use crate::tc::batch::{Batch, RootQdisc};
use crate::tc::decode::Qdisc;
use crate::tc::kernel::Kernel;
use crate::units::Rate;
use anyhow::Context as _;
use std::process::ExitCode;

pub fn run(ctx: &Context, bwcap: Option<Rate>, bwmax: Option<Rate>) -> anyhow::Result<ExitCode> {
    let cfg = &ctx.config;
    let mut tc = Kernel::open(&cfg.dev)?;
    // Checked before anything is built: a half-made setup helps nobody.
    let nft = match cfg.classify {
        Classify::None => None,
        Classify::Uid | Classify::Mark => Some(Nft::new(&cfg.nft)?),
    };
    let (store, _lock) = ctx.lock_state(false)?;
    let mut state = store.load()?.unwrap_or_default();
    let remembered = state.hierarchy.get(&cfg.dev).copied();

    let root = tc.root_qdisc()?;
    // Only HTB classes are read: another qdisc's classes (mq) are no tree to
    // refuse, an HTB tree that is not bwmon's is (issue 9).
    let classes = tc.dump_classes()?;
    let tree = hierarchy::inspect(&classes, &cfg.dev).map_err(Fatal::Unavailable)?;
    let find = |id| classes.iter().find(|c| c.id == id);

    let bwmax = bwmax.or(remembered.map(|h| h.bwmax)).unwrap_or(cfg.bwmax);
    let kept = node_cap(&classes, remembered);
    let mut bwcap = match (bwcap, kept, remembered) {
        (Some(cap), _, _) | (None, Some(cap), _) => cap,
        (None, None, Some(h)) => {
            log::warn!(
                "{}: node cap {} from the state, as set before the hierarchy was removed (`--bwcap RATE` sets another)",
                cfg.dev,
                h.bwcap
            );
            h.bwcap
        }
        (None, None, None) => cfg.bwcap.unwrap_or(bwmax),
    };
    if bwcap > bwmax {
        log::warn!("node cap {bwcap} is above bwmax {bwmax}: using {bwmax}");
        bwcap = bwmax;
    }

    if let Some(q) = root.as_ref().filter(|q| is_our_root(q)) {
        let default = q.htb_default();
        if default != Some(Kind::Low.class_id(DEFAULT_XID).minor) {
            log::warn!(
                "{}: the HTB root sends unclassified packets to {}, not 1:1fff; `tc qdisc del dev {} root` and `bwmon init` to fix",
                cfg.dev,
                default.map_or_else(|| "no class".to_string(), |m| format!("1:{m:x}")),
                cfg.dev
            );
        }
    }
    let mut batch = Batch::default();
    if tree == Tree::Ours {
        batch.change_interior(&cfg.dev, bwcap, bwmax);
        if Kind::BOTH
            .iter()
            .any(|k| find(k.class_id(DEFAULT_XID)).is_none())
        {
            batch.add_default_classes(&cfg.dev, bwcap, bwmax);
        }
    } else {
        if let Some(q) = &root {
            log::info!("{}: replacing root qdisc {} {}", cfg.dev, q.kind, q.handle);
        }
        // `replace` over whatever root qdisc the device has (noqueue, fq_codel…).
        batch.add_hierarchy(&cfg.dev, bwcap, bwmax, RootQdisc::Replace);
        batch.add_default_classes(&cfg.dev, bwcap, bwmax);
    }
    let outcome = tc.run_batch(&batch)?;
    if !outcome.failed.is_empty() {
        let refused: Vec<String> = outcome
            .failed
            .iter()
            .map(|(&i, why)| format!("`{}` ({why})", batch.lines[i]))
            .collect();
        return Err(Fatal::Unavailable(format!(
            "the kernel refused {} change(s) building the hierarchy on {}: {}",
            refused.len(),
            cfg.dev,
            refused.join("; ")
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
    let mut tc = Kernel::open(&cfg.dev)?;
    let store = Store::new(&cfg.state_file);
    let _lock = lock::acquire(&store.lock_path(), Mode::Exclusive, cfg.lock_wait)?;
    if !tc.root_qdisc()?.as_ref().is_some_and(is_our_root) {
        log::info!("{}: no bwmon hierarchy to remove", cfg.dev);
        return Ok(ExitCode::SUCCESS);
    }
    let mut batch = Batch::default();
    batch.delete_root(&cfg.dev);
    let outcome = tc.run_batch(&batch)?;
    if let Some(why) = outcome.failed.values().next() {
        return Err(Fatal::Unavailable(format!(
            "the kernel did not remove the root qdisc of {}: {why}",
            cfg.dev
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
    // Marked, not forgotten: the next sync must not rebuild what was just
    // removed, and the next `init` reuses the node cap.
    let mut state = store.load()?.unwrap_or_default();
    let classified = std::mem::take(&mut state.classified);
    let marked = match state.hierarchy.get_mut(&cfg.dev) {
        Some(h) if !h.removed => {
            h.removed = true;
            true
        }
        _ => false,
    };
    if marked || !classified.is_empty() {
        store.save(&state)?;
    }
    log::info!("{}: hierarchy removed; the state file is kept", cfg.dev);
    Ok(ExitCode::SUCCESS)
}

fn record(state: &mut State, dev: &str, bwcap: Rate, bwmax: Rate) {
    state
        .hierarchy
        .insert(dev.to_string(), Hierarchy::new(bwcap, bwmax));
}

/// `qdisc htb 1: root …`: the root qdisc bwmon builds on.
fn is_our_root(q: &Qdisc) -> bool {
    q.kind == "htb" && q.handle == crate::classes::ClassId::new(1, 0)
}
