//! The man page: clap's own rendering of the command line (so options never
//! drift from the code), one subsection per command, and the sections clap
//! knows nothing of — the slivers input, configuration, units, metrics,
//! files, exit status, clocks and examples; and `bwmon generate`, which writes it or a
//! completion script from that one definition.

use crate::cli::{Cli, Generated};
use clap::CommandFactory;
use std::io::Write;

pub fn render(out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone())
        .section("1")
        .manual("bwmon manual");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    out.write_all(DESCRIPTION.as_bytes())?;
    man.render_options_section(out)?;
    out.write_all(b".SH COMMANDS\n")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        let usage = sub
            .clone()
            .bin_name(format!("bwmon {name}"))
            .render_usage()
            .to_string();
        let usage = usage.trim_start_matches("Usage: ").to_string();
        writeln!(out, ".SS {}", roff_escape(&usage))?;
        let about = sub
            .get_long_about()
            .or_else(|| sub.get_about())
            .map(ToString::to_string)
            .unwrap_or_default();
        for para in about.split("\n\n") {
            writeln!(out, ".PP\n{}", roff_escape(para.trim()))?;
        }
        let mut opts = Vec::new();
        clap_mangen::Man::new(sub.clone()).render_options_section(&mut opts)?;
        let opts = String::from_utf8_lossy(&opts);
        // clap titles these OPTIONS; inside a command they are a paragraph.
        out.write_all(opts.replacen(".SH OPTIONS\n", "", 1).as_bytes())?;
    }
    out.write_all(SECTIONS.as_bytes())?;
    man.render_version_section(out)?;
    Ok(())
}

fn roff_escape(s: &str) -> String {
    let s = s.replace('\\', "\\\\").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

const DESCRIPTION: &str = r#".SH DESCRIPTION
\fBbwmon\fR enforces a soft daily byte quota per tenant ("slice") on a
multi\-tenant Linux node. Every slice has two HTB classes on the node's egress
device: \fIlow\fR for normal destinations and \fIexempt\fR for destinations
exempt from the node cap (config \fBexempt\fR; called \fIi2\fR, after
Internet2, in the JSON, the metrics' \fBclass\fR label and the state file).
People's text \(em the table, the mail, log lines \(em says \fIexempt\fR. Each class has a quota per recording period (default one
day, starting when that slice's period starts).
.PP
Once a slice has sent its threshold (default 80\ %) of a class's quota within
the period, the class's ceil is capped to
.PP
.RS
ceil = (quota \- used) \(mu 8 / (period \- elapsed)   [bit/s]
.RE
.PP
never below the slice's minimum rate nor above its maximum, recomputed at
every run, so the slice can finish the period but cannot exceed its quota on
average. The first time in a period that a slice is capped, one mail goes to
the operators' list and to the slice. At the end of the period the caps are
lifted and a new period begins. A slice deleted and recreated within its period
keeps its usage: recreating it buys no fresh quota.
.PP
\fBbwmon\fR is a one\-shot command: cron or a systemd timer runs \fBbwmon sync\fR
every 15 minutes. Each run takes a lock, loads the state, does its work, saves
the state atomically and exits. A run with nothing to report prints nothing.
.PP
\fBbwmon\fR talks to the kernel's traffic control over rtnetlink itself: a run
reads one dump of the device's classes and sends all its changes as one batch
of messages, each acknowledged; no \fBtc\fR process is started. A change the
kernel refuses is named with the kernel's reason and retried at the next run;
the others stand. Rates are read back exactly as the kernel keeps them, so a
class is changed only when its rate, ceil or quantum really differ.
\fBtc \-s \-d class show dev\fR \fIDEV\fR is how to look.
.PP
\fBbwmon explain\fR \fISLICE\fR shows the figures of that formula for each of
the slice's classes as the last sync decided them, rebuilt from the state
with the code the sync used: the counter read, the baseline, what was
carried from an earlier class, used, the threshold, the quota, what is left,
the seconds left, the formula with its values, the clamp that applied (raised
to the minimum rate, which is at most 25\ % of the node cap; at the maximum,
so not capped; under the threshold) and the resulting ceil, in bit/s and as
\fBtc\fR prints it. With \fB\-\-now\fR it also reads the live counter and
shows what a sync at that time would decide. It reads only, under the
shared lock.
"#;

const SECTIONS: &str = r#".SH SLIVERS INPUT
\fBbwmon sync\fR reads the live slices as JSON: from \fB\-\-input\fR \fIFILE\fR,
else from the file named by the configuration key \fBinput\fR, else from
standard input. The node manager's dump is an object keyed by sliver name (an
array of the same records is accepted too):
.PP
.nf
.RS
{"pl_alice": {"name": "pl_alice", "xid": 1001,
              "_rspec": {"net_max_rate": 10000,
                         "net_max_kbyte": "5662310"}}}
.RE
.fi
.PP
\fBname\fR is the slice's identity: 1\(en64 characters of A\(enZ a\(enz 0\(en9 _ . \-,
and not \fBroot\fR or \fBdefault\fR (bwmon's own records of xid 0 and 4095).
\fBxid\fR (1\(en4094) picks the HTB classes 1:(1000|xid) and 1:(2000|xid); without
it the xid is the uid of the user named \fIname\fR, and a name with no such user
is a delegated slice not yet instantiated (skipped, noted at \fB\-v\fR).
\fB_rspec\fR is read, falling back to \fBrspec\fR; a record with neither is
held (see INPUT SAFETY).
.PP
Keys of the rspec, all optional (rates in kbit/s, volumes in KiB):
\fBnet_min_rate\fR, \fBnet_max_rate\fR, \fBnet_i2_min_rate\fR,
\fBnet_i2_max_rate\fR, \fBnet_max_kbyte\fR, \fBnet_i2_max_kbyte\fR,
\fBnet_thresh_kbyte\fR, \fBnet_i2_thresh_kbyte\fR, \fBnet_share\fR,
\fBnet_i2_share\fR. Values are whole numbers or strings of them. An invalid
value is a warning and that key takes its default. A record with a bad name or
xid, or two records sharing a name or an xid, is held: its classes, caps and
usage stay as they were, the other slices are enforced, and the run exits 1
naming it. Empty input or text that is not such JSON exits 65 before anything
is changed; \fB{}\fR means no slice is live.
.SH INPUT SAFETY
A slice missing from the input is removed: its classes are deleted, and its
traffic falls into the default class, uncapped. A broken node manager, a
hand\-edited dump or a wrong file must therefore not be able to uncap a node,
so \fBsync\fR reads its input by these rules:
.IP \(bu 2
A record that names no slice \(em not an object (\fB[1,2,3]\fR), no \fBname\fR
in the array form, a \fBname\fR that is not a string \(em leaves the live set
unknown: the whole input is refused, exit 65, and nothing is changed (state,
classes, nftables table, mail).
.IP \(bu 2
A record whose name is invalid or reserved, whose xid is invalid or taken by
another record, that shares its name with another record, whose \fB_rspec\fR
is not an object, or that has neither \fB_rspec\fR nor \fBrspec\fR (a renamed
key) is \fIheld\fR: a slice bwmon knows under that name or xid keeps its
classes, usage and caps exactly as they were; one it does not know gets no
classes until the record is fixed. The run enforces every other slice and
exits 1 naming each held record and which of the two it amounts to.
.IP \(bu 2
An input with records but no live slice among them (a wrapper object such as
\fB{"slivers": {...}}\fR, or every record held) is refused, exit 65, nothing
changed.
.IP \(bu 2
A run that would remove more than \fBmax_removal_percent\fR (default 50) of
the live slices, and more than 3 of them, is refused, exit 65, nothing
changed; the message names the first of them. Held records and slices that
only changed xid are not removals. When the node manager really means it,
\fBbwmon sync \-\-allow\-mass\-removal\fR lifts both this rule and the one
above for that run.
.PP
\fB{}\fR is valid and means no slice is live; on a node with more than 3
slices it needs \fB\-\-allow\-mass\-removal\fR.
.SH HISTORY
Whenever a slice's period ends, \fBsync\fR appends one line for it to the
history file (\fBhistory_file\fR; JSON lines): at a period rollover, when a
slice is removed after its period has ended, when the record of a slice
removed within its period expires, and at \fBbwmon reset\fR. Root and default have
lines too: theirs is the traffic no slice's quota counted. Each line holds
\fBname\fR, \fBxid\fR (null for a removed slice recorded by a bwmon without
history), \fBstart\fR, \fBend\fR (the run that began the next period, or start
plus the period for an expired record), \fBlow_bytes\fR, \fBi2_bytes\fR,
\fBcapped\fR, \fBcapped_at\fR (the sync that first capped a class),
\fBlow_lowest_ceil_bps\fR and \fBi2_lowest_ceil_bps\fR (the lowest ceil
each class was given; null when it was never capped), \fBmailed\fR and
\fBremoved\fR. A period capped under a bwmon that did not yet keep these
shows \fBcapped\fR true and null for the rest.
.PP
A run appends its lines with one write, fsynced, before it saves the state.
Killed between the two, the next run appends the same periods again with
the bytes counted since; a line's key is its name and start, and a reader
keeps the last line of a key: no period is lost or counted twice. A line
that is not a record \(em a torn last line left by a killed run \(em is
skipped with a warning naming the file and the line; the next append starts
on a fresh line. A history that cannot be written (disk full) is reported and
the run exits 1; enforcement goes on, and those periods are missing from it.
.PP
When the oldest line ended more than \fBhistory_keep\fR (default 90d) ago,
plus a tenth of it (at most a day), the file is rewritten without the records
older than \fBhistory_keep\fR, atomically (temporary file, fsync, rename).
.PP
\fBbwmon history\fR shows it under the shared lock, newest first, with a
total per slice: \fB\-\-since\fR \fIDATE\fR keeps the periods that started
at or after \fIDATE\fR (RFC 3339, or YYYY\-MM\-DD for midnight UTC);
\fB\-\-format json\fR has \fBformat_version\fR, \fBperiods\fR and
\fBtotals\fR; \fB\-\-format csv\fR a header line and one row per period, no
total rows (a column's sum is the total). A \fISLICE\fR neither in the history
nor in the state exits 3.
.SH CONFIGURATION
\fI/etc/bwmon/bwmon.yaml\fR, or the file given with \fB\-c\fR. Every key is
optional; an unknown key is an error.
.PP
.nf
.RS
dev: eth0                  # default: the default route's device
state_file: /var/lib/bwmon/state.yaml
lock_wait: 60s
period: 1d                 # recording period: 1d, 6h, 90m
bwmax: 1gbit               # hardware maximum (exempt ceiling)
bwcap: 100mbit             # node cap of a first init
input: /var/lib/nm/slivers.json
metrics_file: /var/lib/prometheus/node\-exporter/bwmon.prom
max_removal_percent: 50    # see INPUT SAFETY
history_file: /var/lib/bwmon/history.jsonl   # default: beside state_file
history_keep: 90d          # see HISTORY
classify: uid              # uid | mark | none
exempt: [192.0.2.0/24, 2001:db8::/32]
nft: /usr/sbin/nft         # default: nft on PATH, /usr/sbin, /sbin
defaults:
  max_kbyte: 5662310       # KiB per period, normal destinations
  max_i2_kbyte: 17196646   # KiB per period, exempt destinations
  thresh_percent: 80
  share: 1
mail:
  enabled: true            # false: log the mail instead
  sendmail: /usr/sbin/sendmail
  from: support@example.org
  name: ExampleLab
  list: mom@example.org
  slice_address: SLICE@slices.example.org
  hostname: node1.example.org
  timeout: 30s
  subject: "pl_mom capped bandwidth of slice {slice} on {hostname}"
.RE
.fi
.PP
\fBmail.subject\fR is the cap mail's Subject: \fB{slice}\fR, \fB{hostname}\fR
(\fBmail.hostname\fR) and \fB{name}\fR (\fBmail.name\fR) are filled in; any
other brace is a configuration error. The default is the words every earlier
bwmon wrote.
.PP
Rates use tc's syntax: 8bit, 100kbit, 1.5mbit, 1gbit, 1mibit, 125kbps (bytes/s).
.PP
\fBclassify\fR says how a slice's packets reach its classes. With \fBuid\fR
(the default) \fBbwmon init\fR creates the nftables table \fBinet bwmon\fR:
an output chain sets each packet's priority from a map keyed by the sending
socket's uid (a slice's xid is its uid) to class 1:(1000|xid), or 1:(2000|xid)
when the destination is in \fBexempt\fR; IPv4 and IPv6. With \fBmark\fR the
map is keyed by the packet mark, for container runtimes that mark a tenant's
packets with its xid. \fBsync\fR keeps the maps equal to the live slices in one
\fBnft \-f \-\fR transaction, run only when they change. With \fBnone\fR bwmon
creates no table: packets must be classified otherwise (\fBSO_PRIORITY\fR,
iptables \fBCLASSIFY\fR). Root's and unclassified traffic go to the default
class 1:1fff. After changing \fBclassify\fR or \fBexempt\fR, run
\fBbwmon init\fR.
.SH UNITS
Chosen once for every text a person reads (\fBstatus\fR, the mail, log lines):
volumes in IEC units, powers of 1024 (\fBKiB\fR, \fBMiB\fR, \fBGiB\fR: a
quota of 10240 KiB reads \fB10M\fR in the table and \fB10.0 MiB\fR in the
mail); rates in SI bit/s, powers of 1000, as tc writes them (\fBkbit\fR,
\fBmbit\fR; \fBk\fR, \fBM\fR, \fBG\fR in the table). The table's figures
have at most four characters; two legend lines under it say so
(\fBstatus \-\-no\-legend\fR leaves them out). JSON and the metrics keep base
units: bytes and bit/s in JSON, bytes, bytes per second and seconds in the
metrics.
.SH METRICS
\fBstatus \-\-format prometheus\fR and the \fBmetrics_file\fR a sync writes
hold the same families, named by the Prometheus conventions (base units in the
name, \fB_total\fR on counters, HELP and TYPE for each; \fBpromtool check
metrics\fR passes them):
.PP
.nf
.RS
bwmon_slice_used_bytes{slice,class}            gauge
bwmon_slice_quota_bytes{slice,class}           gauge
bwmon_slice_threshold_bytes{slice,class}       gauge
bwmon_slice_ceil_bytes_per_second{slice,class} gauge (tc's bit/s / 8)
bwmon_slice_max_bytes_per_second{slice,class}  gauge
bwmon_slice_capped{slice,class}                gauge, 0 or 1
bwmon_slice_mailed{slice}                      gauge, 0 or 1
bwmon_slice_classified{slice}                  gauge (classify: uid|mark)
bwmon_slice_period_end_timestamp_seconds{slice} gauge
bwmon_dead_slice_used_bytes{slice,class}       gauge
bwmon_caps_total                               counter
bwmon_mails_failed_total                       counter
bwmon_last_sync_success_timestamp_seconds      gauge
bwmon_sync_duration_seconds                    gauge
.RE
.fi
.PP
\fBclass\fR is \fBlow\fR or \fBi2\fR. \fBbwmon_caps_total\fR counts caps
begun (a class going below its max), \fBbwmon_mails_failed_total\fR cap mails
sendmail did not take; both are kept in the state file, so they only go up.
\fBbwmon_sync_duration_seconds\fR is the last completed sync's wall time.
A Grafana dashboard over them is \fIdist/grafana/bwmon.json\fR in the source.
.SH FILES
.TP
\fI/etc/bwmon/bwmon.yaml\fR
Configuration (optional).
.TP
\fI/var/lib/bwmon/state.yaml\fR
State: per slice its period start, counter baselines, usage carried over,
caps applied and limits in force; recently removed slices; the node cap.
Written atomically; the previous good state is kept as \fIstate.yaml.bak\fR.
A run that writes creates the directory (mode 0700) when it is missing, but
not its parents. After \fBbwmon teardown\fR the node cap stays recorded, and
the next \fBbwmon init\fR without \fB\-\-bwcap\fR reuses it.
.TP
\fI/var/lib/bwmon/history.jsonl\fR
Usage per completed period, one JSON line each (see HISTORY); in the
directory of the state file unless \fBhistory_file\fR says otherwise.
.TP
\fI/var/lib/bwmon/state.yaml.corrupt\-\fRTIMESTAMP
A state file that could not be used (truncated, corrupt, unknown version),
moved aside by \fBsync\fR, which then carries on from \fIstate.yaml.bak\fR.
When the backup is unusable too, \fBsync\fR changes nothing and exits 65;
\fBbwmon sync \-\-rebuild\-state\fR then starts over from the kernel's
current counters.
.TP
\fI/var/lib/bwmon/state.yaml.last\-sync\fR
The time of the last completed sync and its wall time in seconds (a sync
that changed nothing does not rewrite the state).
.TP
\fI/var/lib/bwmon/state.yaml.lock\fR
The run lock: exclusive for sync, reset, init and teardown, shared for status.
\fBstatus\fR needs only read access, to it and to the state: a monitoring user
who may read the state directory can run it (where there is no lock file yet
and it may not create one, it reads without the lock).
.SH EXIT STATUS
.TP
\fB0\fR
Done.
.TP
\fB1\fR
Done, but some slices failed (each named on standard error); for \fBstatus
\-\-check\fR, at least one slice shown is capped (a monitoring WARNING), also
when a \fISLICE\fR name is unknown: a capped slice is never hidden behind a
typo in the check.
.TP
\fB2\fR
Usage error.
.TP
\fB3\fR
\fBstatus\fR was given a \fISLICE\fR name that is neither a live slice nor a
removed one (or \fBexplain\fR a name that is no live slice) (a monitoring UNKNOWN), with or without \fB\-\-check\fR; the
other names are still shown. Under \fB\-\-check\fR a capped slice among them
makes it 1. \fBhistory\fR likewise, for a name that has no period in the
history file either.
.TP
\fB65\fR
Bad data: slivers JSON, empty input, an input refused by INPUT SAFETY, or a
state file that cannot be used. Nothing was changed.
.TP
\fB69\fR
No such device, no permission to change its traffic control (bwmon needs
CAP_NET_ADMIN), or nft missing; no HTB hierarchy to work on (run
\fBbwmon init\fR); or an
HTB tree on the device that is not bwmon's (the message names what differs
from 1:1, 1:10 under 1:1, 1:100 under 1:10, 1:20 under 1:1; nothing was
changed).
.TP
\fB74\fR
The state file or its directory cannot be read or written.
.TP
\fB75\fR
Another bwmon holds the lock past \fBlock_wait\fR.
.TP
\fB78\fR
Bad configuration: the message names the file and the key.
.SH CLOCKS
Time comes from the system clock (or the hidden \fB\-\-now\fR of tests).
If the clock goes backwards, elapsed time is measured from the period start to
the clock as it now reads, and counts as zero when that is before the start:
the period does not end, usage and caps are kept, no quota is handed out, and
the rest of the quota is spread over the time the clock says is left. A period
ends at the first sync after its start plus the period, however long the node
was off: after a week powered off every slice starts a new period and
recently removed slices are forgotten. A change of \fBperiod\fR in the
configuration applies at the next sync: a slice whose period has already run
longer than the new length starts a new one; the others keep their start and
end at start plus the new length.
.SH ENVIRONMENT
.TP
\fBRUST_LOG\fR
Log filter (e.g. \fBdebug\fR) when neither \fB\-v\fR nor \fB\-q\fR is given.
.SH EXAMPLES
.nf
.RS
# build the hierarchy with a 100 Mbit/s node cap
bwmon init \-\-bwcap 100mbit

# one enforcement cycle, from cron every 15 minutes
*/15 * * * * root bwmon sync \-\-input /var/lib/nm/slivers.json

# what would change, without changing it
bwmon sync \-\-dry\-run < slivers.json

# where every slice stands; JSON for scripts
bwmon status
bwmon status pl_alice \-\-format json

# a monitoring check: exit 1 when a slice is capped, 3 for an unknown name
bwmon status \-\-check > /dev/null

# forgive a slice: caps lifted, usage cleared, a new period now
bwmon reset pl_alice

# why is pl_alice slow, and what would a sync at 23:00 give it
bwmon explain pl_alice
bwmon \-\-now 2026\-11\-24T23:00:00Z explain pl_alice

# a slice's past periods since March, and all of them for a spreadsheet
bwmon history pl_alice \-\-since 2026\-03\-01
bwmon history \-\-format csv > usage.csv
.RE
.fi
.SH SEE ALSO
\fBtc\fR(8), \fBtc\-htb\fR(8), \fBsendmail\fR(8)
"#;

/// Writes the man page or a completion script generated from the one clap
/// definition, so neither can drift from the code.
pub fn generate(what: &Generated, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut cmd = Cli::command();
    // Rendered whole first: clap_complete panics on a write error.
    let mut buf = Vec::new();
    match what {
        Generated::Man => render(&mut buf)?,
        Generated::Completions { shell } => {
            clap_complete::generate(*shell, &mut cmd, "bwmon", &mut buf);
        }
    }
    out.write_all(&buf)
}
