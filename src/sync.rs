//! `bwmon sync`: gathers the inputs of one enforcement cycle (slivers, state,
//! the kernel's classes, the clock), asks `policy::plan` what to do, and
//! carries the plan out: one tc batch, the mails, one atomic save (SPEC §5).

use crate::apply::{apply_outcome, finish, print_dry_run, write_atomically};
use crate::classes::KernelClass;
use crate::config::Classify;
use crate::context::Context;
use crate::error::Fatal;
use crate::hierarchy::{self, Tree, node_cap, node_max};
use crate::history;
use crate::mail;
use crate::nft::{self, Nft};
use crate::policy::{self, Inputs, Live, Node, Op};
use crate::report;
use crate::slivers::{self, Input};
use crate::state::{State, Store};
use crate::tc::batch::{Batch, RootQdisc};
use crate::tc::kernel::Kernel;
use std::collections::{BTreeSet, HashSet};
use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::ExitCode;

/// What the command line asks of one sync.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options<'a> {
    /// `--input`: the slivers JSON, else the config's `input`, else stdin.
    pub input: Option<&'a Path>,
    pub dry_run: bool,
    pub rebuild_state: bool,
    pub allow_mass_removal: bool,
}

pub fn run(ctx: &Context, opts: Options<'_>) -> anyhow::Result<ExitCode> {
    let Options {
        input,
        dry_run,
        rebuild_state,
        allow_mass_removal,
    } = opts;
    let started = std::time::Instant::now();
    let cfg = &ctx.config;
    let path = input.or(cfg.input.as_deref());
    let text = read_input(path)?;
    let mut tc = Kernel::open(&cfg.dev)?;
    let (store, _lock) = ctx.lock_state(dry_run)?;

    // The dump (read-only) runs while the slivers and the state are parsed:
    // at thousands of slices each takes a noticeable share of the run.
    let (kernel, (input, (loaded, guessed), mapped)) = tc.dump_classes_while(|| {
        let input = slivers::parse(&text, &slivers::uid_from_nss);
        let loaded = if input.is_ok() {
            store.load()
        } else {
            Ok(None)
        };
        // The live slices' limits, for the node the state remembers: the
        // kernel's own figures, read below, are nearly always the same.
        let guessed = match (&input, &loaded) {
            (Ok(input), Ok(Some(state))) => state.hierarchy.get(&cfg.dev).map(|h| {
                let node = Node {
                    bwcap: h.bwcap,
                    bwmax: h.bwmax,
                    period_secs: cfg.period_secs,
                };
                (node, live_slices(input, cfg, &node))
            }),
            _ => None,
        };
        // What the nft maps hold now, not what the state says they were
        // given: a flushed ruleset is put back by the next run.
        let mapped = (cfg.classify != Classify::None).then(nft::classified);
        (input, (loaded, guessed), mapped)
    });
    // Whole-input errors stop the run before anything is changed.
    let origin = path.map_or_else(|| "stdin".to_string(), |p| p.display().to_string());
    let input = input.map_err(|e| Fatal::BadData(format!("{origin}: {e}")))?;
    drop(text);
    let mut failures: Vec<String> = Vec::new();
    let mut kernel = kernel?;
    let rebuild = rebuild_state && !dry_run;
    let mut state = load_state(&store, loaded, &kernel, rebuild, ctx.now)?;
    report_input(&input, &state, &mut failures);
    // What the end of the run compares with besides what the plan reports
    // (it knows which slices it changed).
    let hierarchy_before = state.hierarchy.clone();
    let counters_before = state.counters;

    // SPEC §5 step 1: bwmon's tree, or none (rebuilt from the state), never
    // somebody else's.
    let tree = hierarchy::inspect(&kernel, &cfg.dev).map_err(Fatal::Unavailable)?;
    let recorded = state.hierarchy.get(&cfg.dev).copied();
    let remembered = recorded.filter(|h| !h.removed);
    let mut batch = Batch::default();
    let (bwcap, bwmax) = match (tree, node_cap(&kernel, remembered), recorded) {
        (Tree::Ours, Some(cap), _) => (cap, node_max(&kernel, remembered).unwrap_or(cfg.bwmax)),
        (_, _, Some(h)) if h.removed => {
            return Err(Fatal::Unavailable(format!(
                "no hierarchy on {}: `bwmon teardown` removed it; run `bwmon init` to build it again (it reuses node cap {})",
                cfg.dev, h.bwcap
            ))
            .into());
        }
        (_, _, Some(h)) => {
            log::warn!(
                "no HTB hierarchy on {}: rebuilding it from the state (node cap {}, bwmax {})",
                cfg.dev,
                h.bwcap,
                h.bwmax
            );
            batch.add_hierarchy(&cfg.dev, h.bwcap, h.bwmax, RootQdisc::Replace);
            // Whatever slice classes were there went with the hierarchy.
            kernel.clear();
            (h.bwcap, h.bwmax)
        }
        (_, _, None) => {
            return Err(Fatal::Unavailable(format!(
                "no class 1:10 on {}: run `bwmon init` first",
                cfg.dev
            ))
            .into());
        }
    };
    let node = Node {
        bwcap,
        bwmax,
        period_secs: cfg.period_secs,
    };
    // A state started without `init` (lost, or rebuilt on purpose) learns the
    // caps from the kernel, so a reboot can still be recovered from it.
    let entry = state
        .hierarchy
        .entry(cfg.dev.clone())
        .or_insert(crate::state::Hierarchy::new(bwcap, bwmax));
    // Built again by hand after a teardown: it is bwmon's again.
    entry.removed = false;
    let live = match guessed {
        Some((guess, live)) if guess == node => live,
        _ => live_slices(&input, cfg, &node),
    };
    let held_xids: HashSet<u16> = input.held.iter().filter_map(|h| h.xid).collect();
    let held_names: HashSet<String> = input.held.iter().filter_map(|h| h.name.clone()).collect();

    let mut plan = policy::plan(Inputs {
        state,
        live: &live,
        held_xids: &held_xids,
        held_names: &held_names,
        kernel: &kernel,
        node,
        base_limits: policy::limits_for(&slivers::Rspec::default(), &cfg.defaults, &node),
        now: ctx.now,
    });

    if !allow_mass_removal {
        check_removals(&input, &plan, cfg.max_removal_percent)
            .map_err(|why| Fatal::BadData(format!("{origin}: {why}")))?;
    }

    let first_op_line = batch.lines.len();
    batch.add_ops(&cfg.dev, &plan.ops);
    // The classifier follows the live slices; rewritten only when they (or
    // the hierarchy, after a reboot) changed.
    let classify = (cfg.classify != Classify::None).then(|| plan.state.tenant_xids());
    let mapped = match mapped {
        Some(Ok(keys)) => keys,
        Some(Err(e)) => {
            log::debug!("{}: going by the state's record of the maps", e.message);
            plan.state.classified.clone()
        }
        None => BTreeSet::new(),
    };
    let nft_script = classify
        .as_ref()
        .filter(|want| **want != mapped || first_op_line > 0)
        .map(|want| {
            (
                want.clone(),
                nft::table_script(cfg.classify, &cfg.exempt, want),
            )
        });
    if dry_run {
        let mails: Vec<String> = plan
            .mails
            .iter()
            .map(|req| mail::compose(&cfg.mail, req, cfg.period_secs, ctx.now))
            .collect();
        print_dry_run(&batch, &mails, cfg);
        if let Some((_, script)) = &nft_script {
            print!("# nft -f - (dry run: not run)\n{script}");
        }
        return Ok(finish(&failures));
    }
    // The periods this run ends go to the history before any save moves the
    // state past them (see `history`: a run killed in between appends them
    // again, and the reader keeps the later line). A history that cannot be
    // written costs its records, never the enforcement.
    if let Err(e) = history::append(&cfg.history_file, &plan.ended, ctx.now, cfg.history_keep) {
        failures.push(e.to_string());
    }
    // Deleting a class loses its counter, and a class created now starts
    // from zero: the state that knows this is saved before tc acts, so a run
    // killed after the batch costs no counted byte. (Changes are safe either
    // way: the next run compares with the kernel.)
    if plan
        .ops
        .iter()
        .any(|op| matches!(op, Op::Delete { .. } | Op::Add { .. }))
    {
        store.save(&plan.state)?;
    }
    let outcome = tc.run_batch(&batch)?;
    let failed_xids = apply_outcome(
        &batch,
        first_op_line,
        &outcome,
        &plan.ops,
        &mut plan.state,
        cfg,
        &mut failures,
    );
    plan.state.counters.caps += plan.state.caps_since(&plan.caps_before);

    // Usage and caps are saved before any mail is tried: a hanging or killed
    // sendmail can cost a mail (retried next run), never counted bytes. A run
    // that changed nothing only notes its time.
    let mut maps_changed = false;
    if let Some((want, script)) = nft_script {
        match Nft::new(&cfg.nft)
            .map_err(|e| e.to_string())
            .and_then(|n| n.apply(&script))
        {
            Ok(()) => {
                maps_changed = plan.state.classified != want;
                plan.state.classified = want;
            }
            Err(e) => failures.push(format!(
                "{e}; until it works, slices' packets reach their classes only if something else classifies them (retried next run)"
            )),
        }
    }
    // A refused change forgot its slice's ceil (see `apply_outcome`).
    let changed = plan.changed
        || !failed_xids.is_empty()
        || maps_changed
        || plan.state.hierarchy != hierarchy_before
        || plan.state.counters != counters_before;
    plan.state.last_sync = Some(ctx.now);
    if changed {
        store.save(&plan.state)?;
    }

    let mut flagged = false;
    let mut hung = false;
    let counted = plan.state.counters;
    for req in &plan.mails {
        if failed_xids.contains(&req.xid) {
            continue; // its cap did not land; mail with the cap that does
        }
        if hung {
            failures.push(format!(
                "slice {}: mail not tried, sendmail hung earlier in this run; retried next run",
                req.name
            ));
            continue;
        }
        let message = mail::compose(&cfg.mail, req, cfg.period_secs, ctx.now);
        let sent = if cfg.mail.enabled {
            mail::send(&cfg.mail, &message)
        } else {
            log::info!("mail disabled; would send:\n{message}");
            Ok(())
        };
        match sent {
            Ok(()) => {
                log::info!("{}: capped, mail sent", req.name);
                if let Some(s) = plan.state.slices.get_mut(&req.xid) {
                    s.mailed = true;
                    flagged = true;
                }
            }
            Err(e) => {
                // One timeout per run at most: the other mails wait for the next run.
                hung |= e.timed_out;
                plan.state.counters.mails_failed += 1;
                failures.push(format!(
                    "slice {}: mail not sent ({}); retried next run",
                    req.name, e.message
                ));
            }
        }
    }
    if flagged || plan.state.counters != counted {
        store.save(&plan.state)?;
    }
    let noted = crate::state::SyncNote::new(ctx.now, started.elapsed());
    store.note_sync(&noted)?;
    if let Some(path) = &cfg.metrics_file {
        let node = Some(crate::state::Hierarchy::new(bwcap, bwmax));
        let mut report = report::build(
            &plan.state,
            &kernel,
            &cfg.dev,
            node,
            cfg.period_secs,
            ctx.now,
        );
        report.sync_duration = noted.duration;
        // What the maps hold after this run, as far as it knows (status reads them live).
        if cfg.classify != Classify::None {
            report.mark_classified(&plan.state.classified);
        }
        if let Err(e) = write_atomically(path, &report.prometheus()) {
            failures.push(format!("metrics file {}: {e}", path.display()));
        }
    }
    // The process ends with this run: handing thousands of slice states
    // back to the allocator one by one would only cost time (a millisecond
    // at 4,000 slices), and the kernel takes the memory back at exit.
    std::mem::forget((plan, kernel, input, live));
    Ok(finish(&failures))
}

/// The live slices with their limits on `node`.
fn live_slices(input: &Input, cfg: &crate::config::Config, node: &Node) -> Vec<Live> {
    input
        .live
        .iter()
        .map(|s| Live {
            name: s.name.clone(),
            xid: s.xid,
            limits: policy::limits_for(&s.rspec, &cfg.defaults, node),
        })
        .collect()
}

fn read_input(path: Option<&Path>) -> Result<Vec<u8>, Fatal> {
    if let Some(p) = path {
        std::fs::read(p)
            .map_err(|e| Fatal::BadData(format!("cannot read slivers input {}: {e}", p.display())))
    } else {
        // Stdin read as the file it is: a redirected file (`sync <
        // slivers.json`) in one read of its size, as `fs::read` does;
        // `Stdin` itself starts at 8 KiB and doubles.
        let read = |e: std::io::Error| {
            Fatal::BadData(format!("cannot read slivers input from stdin: {e}"))
        };
        let mut stdin = std::fs::File::from(
            std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map_err(read)?,
        );
        let mut buf = Vec::new();
        stdin.read_to_end(&mut buf).map_err(read)?;
        Ok(buf)
    }
}

fn report_input(input: &Input, state: &State, failures: &mut Vec<String>) {
    for w in &input.warnings {
        log::warn!("{w}");
    }
    for s in &input.skipped {
        log::info!("{s}");
    }
    for h in &input.held {
        // Held by xid or by name (policy::plan): say which it amounts to.
        let known = state.slices.values().any(|s| {
            !crate::state::is_special(s.xid)
                && (h.xid == Some(s.xid) || h.name.as_deref() == Some(s.name.as_str()))
        });
        let fate = if known {
            "held: its classes, usage and caps are left as they were until the record is fixed"
        } else {
            "held: no classes are made for it until the record is fixed"
        };
        failures.push(format!("slice {}: {}; {fate}", h.label, h.reason));
    }
}

/// The guard against a broken node manager (SPEC §3): a dump that yields no
/// live slice from records it has, or that would remove more than
/// `max_percent` of the live slices (and more than
/// [`crate::config::MASS_REMOVAL_MIN`]), is refused before anything is
/// changed. Removals are counted on the plan itself, so held records and
/// slices whose xid changed are not counted.
fn check_removals(input: &Input, plan: &policy::Plan, max_percent: u8) -> Result<(), String> {
    const LISTED: usize = 3;
    const OVERRIDE: &str = "if that is what the node manager means, run `bwmon sync --allow-mass-removal` (config `max_removal_percent`)";
    let records = input.live.len() + input.held.len() + input.skipped.len();
    if records > 0 && input.live.is_empty() {
        return Err(format!(
            "{records} record(s) but no live slice among them: nothing was changed; {OVERRIDE}"
        ));
    }
    let removed: Vec<&str> = plan.removed.iter().map(String::as_str).collect();
    let over_share = removed.len() * 100 > usize::from(max_percent) * plan.live_before;
    if removed.len() > crate::config::MASS_REMOVAL_MIN && over_share {
        let named = crate::format::listed(&removed, LISTED);
        return Err(format!(
            "this input would remove {} of the {} live slices ({named}), more than {max_percent} %: nothing was changed; {OVERRIDE}",
            removed.len(),
            plan.live_before
        ));
    }
    Ok(())
}

/// The state to work from (SPEC §5 step 5, issue "never lose a byte"):
/// - a missing file while slice classes exist means it was lost: the backup is
///   the best record of usage there is;
/// - an unusable file (truncated, corrupt, unknown version) is moved aside and
///   the backup used, so at most one run is lost;
/// - both unusable: nothing is changed and the run stops (65), unless the
///   operator asked to rebuild, which adopts the current counters on purpose.
fn load_state(
    store: &Store,
    loaded: Result<Option<State>, Fatal>,
    kernel: &[KernelClass],
    rebuild: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<State, Fatal> {
    if rebuild {
        if store.path.exists() {
            let aside = store.set_aside("replaced", now)?;
            log::warn!("old state file moved aside to {}", aside.display());
        }
        log::warn!(
            "rebuilding the state: slice classes are adopted with their current counters; usage counted before now is not known"
        );
        return Ok(State::default());
    }
    match loaded {
        Ok(Some(s)) => Ok(s),
        Ok(None) => {
            // A lost state file: its backup is the best record of usage there is.
            if let Some(b) = store.load_backup()? {
                log::warn!(
                    "state file {} is missing: using its backup {}",
                    store.path.display(),
                    store.backup_path().display()
                );
                return Ok(b);
            }
            // Slice classes under a hierarchy (without one, sync stops at 69).
            let has_slice_classes = kernel.iter().any(|c| c.id == policy::CAP_CLASS)
                && kernel
                    .iter()
                    .any(|c| policy::Kind::of_kernel_class(c).is_some());
            if has_slice_classes {
                log::warn!(
                    "state file {} is missing but slice classes exist: adopting them; usage before now is unknown",
                    store.path.display()
                );
            }
            Ok(State::default())
        }
        Err(Fatal::BadData(why)) => match store.load_backup() {
            Ok(Some(b)) => {
                let aside = store.set_aside("corrupt", now)?;
                log::warn!(
                    "{why}: moved aside to {}; using the backup {} (usage of at most one run is lost)",
                    aside.display(),
                    store.backup_path().display()
                );
                Ok(b)
            }
            Ok(None) | Err(_) => Err(Fatal::BadData(format!(
                "{why}, and its backup {} is missing or unusable too: nothing was changed; look at both, or run `bwmon sync --rebuild-state` to adopt the current counters (usage counted before now is lost)",
                store.backup_path().display()
            ))),
        },
        Err(e) => Err(e),
    }
}
