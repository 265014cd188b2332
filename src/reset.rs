//! `bwmon reset SLICE`: forgive one slice — a new period starts now, its caps
//! are lifted through tc at once, its usage and mail flag are cleared.

use crate::apply::{apply_outcome, finish, print_dry_run};
use crate::context::Context;
use crate::error::Fatal;
use crate::format::rfc3339;
use crate::hierarchy::Tree;
use crate::policy;
use crate::state::is_special;
use crate::tc::batch::Batch;
use crate::tc::kernel::Kernel;
use anyhow::bail;
use std::process::ExitCode;

pub fn run(ctx: &Context, name: &str, dry_run: bool) -> anyhow::Result<ExitCode> {
    let cfg = &ctx.config;
    let mut tc = Kernel::open(&cfg.dev)?;
    let (store, _lock) = ctx.lock_state(dry_run)?;
    let kernel = tc.dump_classes()?;
    match crate::hierarchy::inspect(&kernel, &cfg.dev).map_err(Fatal::Unavailable)? {
        Tree::Ours => {}
        Tree::Absent => {
            return Err(Fatal::Unavailable(format!(
                "no class 1:10 on {}: `bwmon sync` rebuilds a hierarchy the state remembers, `bwmon init` makes one",
                cfg.dev
            ))
            .into());
        }
    }
    let mut state = store.load()?.unwrap_or_default();

    let Some(slice) = state.slices.values_mut().find(|s| s.name == name) else {
        if let Some(d) = state.dead.get(name) {
            let end = policy::plus_secs(d.start, cfg.period_secs);
            bail!(
                "slice {name} is not live: only the record of a removed slice remains (kept until {}); nothing to reset",
                rfc3339(end)
            );
        }
        bail!("unknown slice {name}: `bwmon status` lists the slices");
    };
    if is_special(slice.xid) {
        bail!(
            "{name} is bwmon's own class for unclassified traffic: it is never capped and cannot be reset"
        );
    }
    let xid = slice.xid;
    // The period cut short is history like any other.
    let ended = policy::closed_now(slice, &kernel, ctx.now);
    let ops = policy::reset(slice, &kernel, ctx.now);
    log::info!("{name}: reset, a new period starts now");
    let mut batch = Batch::default();
    batch.add_ops(&cfg.dev, &ops);
    if dry_run {
        print_dry_run(&batch, &[], cfg);
        return Ok(ExitCode::SUCCESS);
    }
    let mut failures = Vec::new();
    // Before the save, as `sync` does (see `history`).
    if let Err(e) = crate::history::append(&cfg.history_file, &[ended], ctx.now, cfg.history_keep) {
        failures.push(e.to_string());
    }
    let outcome = tc.run_batch(&batch)?;
    apply_outcome(&batch, 0, &outcome, &ops, &mut state, cfg, &mut failures);
    store.save(&state)?;
    log::debug!("xid {xid}: {} tc line(s)", batch.lines.len());
    Ok(finish(&failures))
}
