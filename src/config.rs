//! The configuration file (SPEC §3) and the validated `Config` the rest of the
//! program reads. Every key is optional; a key we do not know is an error, so a
//! typo never silently falls back to a default on a production node.

use crate::error::Fatal;
use crate::units::{KiB, Rate, parse_rate};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_CONFIG: &str = "/etc/bwmon/bwmon.yaml";
pub const DEFAULT_STATE: &str = "/var/lib/bwmon/state.yaml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    dev: Option<String>,
    /// Read and ignored: bwmon no longer runs tc (it talks rtnetlink), and a
    /// config written for an earlier bwmon must still load.
    #[serde(rename = "tc")]
    _tc: Option<PathBuf>,
    state_file: Option<PathBuf>,
    lock_wait: Option<String>,
    period: Option<String>,
    bwmax: Option<String>,
    bwcap: Option<String>,
    input: Option<PathBuf>,
    defaults: Option<RawDefaults>,
    classify: Option<String>,
    exempt: Option<Vec<String>>,
    nft: Option<PathBuf>,
    metrics_file: Option<PathBuf>,
    max_removal_percent: Option<u64>,
    history_file: Option<PathBuf>,
    history_keep: Option<String>,
    mail: Option<RawMail>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    max_kbyte: Option<u64>,
    max_i2_kbyte: Option<u64>,
    thresh_percent: Option<u64>,
    share: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    enabled: Option<bool>,
    sendmail: Option<PathBuf>,
    from: Option<String>,
    name: Option<String>,
    list: Option<String>,
    slice_address: Option<String>,
    hostname: Option<String>,
    timeout: Option<String>,
    subject: Option<String>,
}

/// The cap mail's Subject unless `mail.subject` says otherwise: the words
/// every earlier bwmon (and the 2008 module) wrote.
pub const DEFAULT_SUBJECT: &str = "pl_mom capped bandwidth of slice {slice} on {hostname}";

/// What `mail.subject` may name: the slice, `mail.hostname`, `mail.name`.
pub const SUBJECT_FIELDS: [&str; 3] = ["{slice}", "{hostname}", "{name}"];

/// A Subject template names only [`SUBJECT_FIELDS`]; any other brace is a
/// mistake a person should hear about at once, not in every mail.
fn check_subject(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        let tail = &rest[open..];
        let Some(field) = SUBJECT_FIELDS.iter().find(|f| tail.starts_with(*f)) else {
            let shown: String = tail.chars().take(12).collect();
            return Err(format!(
                "{template:?}: unknown placeholder at {shown:?} (use {})",
                SUBJECT_FIELDS.join(", ")
            ));
        };
        rest = &tail[field.len()..];
    }
    Ok(())
}

/// Per-slice defaults for keys a sliver's rspec leaves out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    pub max_kbyte: KiB,
    pub max_i2_kbyte: KiB,
    pub thresh_percent: u8,
    pub share: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailConfig {
    /// false: the mail is logged instead of sent.
    pub enabled: bool,
    pub sendmail: PathBuf,
    pub from: String,
    pub name: String,
    pub list: String,
    /// `SLICE` is replaced by the slice name; None sends to the list only.
    pub slice_address: Option<String>,
    pub hostname: String,
    pub timeout: Duration,
    /// The Subject, `{slice}`, `{hostname}` and `{name}` filled in.
    pub subject: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub dev: String,
    pub state_file: PathBuf,
    pub lock_wait: Duration,
    pub period_secs: u64,
    pub bwmax: Rate,
    /// Node cap for a first `init` without `--bwcap` (else bwmax).
    pub bwcap: Option<Rate>,
    pub input: Option<PathBuf>,
    pub defaults: Defaults,
    pub metrics_file: Option<PathBuf>,
    pub mail: MailConfig,
    /// How packets find their slice's class.
    pub classify: Classify,
    /// Destinations counted against the exempt (i2) quota.
    pub exempt: Vec<Prefix>,
    /// The nft executable; a bare name is looked up like `tc`.
    pub nft: PathBuf,
    /// A sync that would remove more than this share of the live slices (and
    /// more than [`MASS_REMOVAL_MIN`]) is refused without
    /// `--allow-mass-removal`: a broken node manager must not uncap a node.
    pub max_removal_percent: u8,
    /// Usage per completed period, JSON lines (`bwmon history`).
    pub history_file: PathBuf,
    /// Records whose period ended longer ago than this are pruned.
    pub history_keep: Duration,
}

/// The history file's name beside the state file when `history_file` is not set.
pub const HISTORY_NAME: &str = "history.jsonl";

/// Removing this many slices or fewer in one run never counts as mass removal.
pub const MASS_REMOVAL_MIN: usize = 3;

/// How a slice's packets reach its classes (issue "caps that bite").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classify {
    /// bwmon's nftables table maps the sending socket's uid (= xid).
    Uid,
    /// bwmon's nftables table maps the packet mark (= xid), set by a container runtime.
    Mark,
    /// Someone else sets the packet priority (`SO_PRIORITY`, iptables `CLASSIFY`).
    None,
}

/// An IPv4 or IPv6 address or CIDR prefix, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: std::net::IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn parse(text: &str) -> Result<Prefix, String> {
        let (a, l) = text
            .split_once('/')
            .map_or((text, None), |(a, l)| (a, Some(l)));
        let addr: std::net::IpAddr = a.trim().parse().map_err(|_| {
            format!("{text:?} is not an IPv4/IPv6 address or prefix (e.g. 192.0.2.0/24)")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("{text:?}: prefix length must be 0..={max}"))?,
        };
        Ok(Prefix { addr, len })
    }

    pub fn is_v4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// What the command line says about configuration.
#[derive(Debug, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub dev: Option<String>,
    pub state: Option<PathBuf>,
}

impl Config {
    /// Reads the config file (the explicit one must exist; the default one may
    /// be absent) and applies the command-line overrides.
    pub fn load(over: &Overrides) -> Result<Config, Fatal> {
        let (path, explicit) = match &over.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        let raw = match std::fs::read_to_string(&path) {
            Ok(text) => parse_raw(&path, &text)?,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => RawConfig::default(),
            Err(e) => {
                return Err(Fatal::Config(format!(
                    "cannot read config {}: {e}",
                    path.display()
                )));
            }
        };
        Self::from_raw(&path, raw, over)
    }

    /// Builds a config from YAML text, as if read from `path` (for tests).
    pub fn from_yaml(path: &Path, text: &str, over: &Overrides) -> Result<Config, Fatal> {
        Self::from_raw(path, parse_raw(path, text)?, over)
    }

    fn from_raw(path: &Path, raw: RawConfig, over: &Overrides) -> Result<Config, Fatal> {
        let bad = |key: &str, msg: String| {
            Fatal::Config(format!("config {}: key `{key}`: {msg}", path.display()))
        };
        let duration = |key: &str, text: &Option<String>, default: Duration| match text {
            None => Ok(default),
            Some(t) => humantime::parse_duration(t).map_err(|e| {
                bad(
                    key,
                    format!("{t:?} is not a duration such as 60s, 6h or 1d ({e})"),
                )
            }),
        };
        let rate = |key: &str, text: &Option<String>| -> Result<Option<Rate>, Fatal> {
            text.as_deref()
                .map(parse_rate)
                .transpose()
                .map_err(|e| bad(key, e))
        };

        let dev = match over.dev.clone().or(raw.dev) {
            Some(d) => d,
            None => default_route_device().ok_or_else(|| {
                bad(
                    "dev",
                    "not set and no default route to take it from: set `dev:` or pass --dev".into(),
                )
            })?,
        };
        if dev.is_empty() || dev.len() > 15 || !dev.chars().all(|c| c.is_ascii_graphic()) {
            return Err(bad("dev", format!("{dev:?} is not a network device name")));
        }
        let period = duration("period", &raw.period, Duration::from_hours(24))?;
        if !(60..=366 * 86_400).contains(&period.as_secs()) {
            return Err(bad(
                "period",
                "must be between 1 minute and 366 days".into(),
            ));
        }
        let bwmax = rate("bwmax", &raw.bwmax)?.unwrap_or(Rate(1_000_000_000));
        let bwcap = rate("bwcap", &raw.bwcap)?;

        let d = raw.defaults.unwrap_or_default();
        let thresh_percent = d.thresh_percent.unwrap_or(80);
        if !(1..=100).contains(&thresh_percent) {
            return Err(bad(
                "defaults.thresh_percent",
                format!("{thresh_percent} is not within 1..=100"),
            ));
        }
        let share = d.share.unwrap_or(1);
        if share == 0 || share > 1000 {
            return Err(bad(
                "defaults.share",
                format!("{share} is not within 1..=1000"),
            ));
        }
        let defaults = Defaults {
            max_kbyte: KiB(d.max_kbyte.unwrap_or(5_662_310)),
            max_i2_kbyte: KiB(d.max_i2_kbyte.unwrap_or(17_196_646)),
            thresh_percent: u8::try_from(thresh_percent).unwrap_or(80),
            share: u32::try_from(share).unwrap_or(1),
        };

        let classify = match raw.classify.as_deref() {
            None | Some("uid") => Classify::Uid,
            Some("mark") => Classify::Mark,
            Some("none") => Classify::None,
            Some(other) => {
                return Err(bad(
                    "classify",
                    format!("{other:?} is not one of uid, mark, none"),
                ));
            }
        };
        let exempt = raw
            .exempt
            .unwrap_or_default()
            .iter()
            .map(|e| Prefix::parse(e).map_err(|m| bad("exempt", m)))
            .collect::<Result<Vec<_>, _>>()?;

        let max_removal_percent = raw.max_removal_percent.unwrap_or(50);
        if max_removal_percent > 100 {
            return Err(bad(
                "max_removal_percent",
                format!("{max_removal_percent} is not within 0..=100"),
            ));
        }

        let m = raw.mail.unwrap_or_default();
        let hostname = m.hostname.unwrap_or_else(system_hostname);
        let mail = MailConfig {
            enabled: m.enabled.unwrap_or(true),
            sendmail: m
                .sendmail
                .unwrap_or_else(|| PathBuf::from("/usr/sbin/sendmail")),
            from: m.from.unwrap_or_else(|| format!("root@{hostname}")),
            name: m.name.unwrap_or_else(|| "bwmon".into()),
            list: m.list.unwrap_or_else(|| "root".into()),
            slice_address: m.slice_address,
            timeout: duration("mail.timeout", &m.timeout, Duration::from_secs(30))?,
            hostname,
            subject: m.subject.unwrap_or_else(|| DEFAULT_SUBJECT.into()),
        };
        for (key, value) in [
            ("mail.from", Some(&mail.from)),
            ("mail.name", Some(&mail.name)),
            ("mail.list", Some(&mail.list)),
            ("mail.slice_address", mail.slice_address.as_ref()),
            ("mail.hostname", Some(&mail.hostname)),
            ("mail.subject", Some(&mail.subject)),
        ] {
            if let Some(v) = value {
                // A CR or LF here would let the config inject mail headers.
                if v.is_empty() || v.chars().any(char::is_control) {
                    return Err(bad(key, format!("{v:?} must be one non-empty line")));
                }
            }
        }
        check_subject(&mail.subject).map_err(|why| bad("mail.subject", why))?;

        let state_file = over
            .state
            .clone()
            .or(raw.state_file)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE));
        // Beside the state file, wherever --state puts it: one node's
        // history stays with its state.
        let history_file = raw.history_file.unwrap_or_else(|| {
            state_file
                .parent()
                .unwrap_or_else(|| Path::new(""))
                .join(HISTORY_NAME)
        });
        let history_keep = duration(
            "history_keep",
            &raw.history_keep,
            Duration::from_hours(90 * 24),
        )?;
        if history_keep.as_secs() < period.as_secs() {
            return Err(bad(
                "history_keep",
                format!(
                    "{} is shorter than `period` ({}): every record would be pruned as soon as it is written",
                    humantime::format_duration(history_keep),
                    humantime::format_duration(period)
                ),
            ));
        }

        Ok(Config {
            dev,
            state_file,
            lock_wait: duration("lock_wait", &raw.lock_wait, Duration::from_mins(1))?,
            period_secs: period.as_secs(),
            bwmax,
            bwcap,
            input: raw.input,
            defaults,
            metrics_file: raw.metrics_file,
            mail,
            classify,
            exempt,
            nft: raw.nft.unwrap_or_else(|| PathBuf::from("nft")),
            max_removal_percent: u8::try_from(max_removal_percent).unwrap_or(50),
            history_file,
            history_keep,
        })
    }
}

fn parse_raw(path: &Path, text: &str) -> Result<RawConfig, Fatal> {
    if text.trim().is_empty() {
        return Ok(RawConfig::default());
    }
    serde_saphyr::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or("invalid YAML");
        Fatal::Config(format!("config {}: {first}", path.display()))
    })
}

/// The interface of the IPv4 default route, from /proc/net/route (no `ip` needed).
fn default_route_device() -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    table.lines().skip(1).find_map(|line| {
        let mut f = line.split_whitespace();
        let iface = f.next()?;
        (f.next()? == "00000000").then(|| iface.to_string())
    })
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn over() -> Overrides {
        Overrides {
            dev: Some("eth0".into()),
            ..Overrides::default()
        }
    }

    #[test]
    fn empty_config_gives_the_spec_defaults() {
        let c = Config::from_yaml(Path::new("x.yaml"), "", &over()).expect("defaults");
        assert_eq!(c.period_secs, 86_400);
        assert_eq!(c.bwmax, Rate(1_000_000_000));
        assert_eq!(c.defaults.max_kbyte, KiB(5_662_310));
        assert_eq!(c.defaults.max_i2_kbyte, KiB(17_196_646));
        assert_eq!(c.defaults.thresh_percent, 80);
        assert_eq!(c.lock_wait, Duration::from_mins(1));
        assert_eq!(c.mail.timeout, Duration::from_secs(30));
        assert_eq!(c.state_file, PathBuf::from(DEFAULT_STATE));
        assert_eq!(c.mail.subject, DEFAULT_SUBJECT);
        assert_eq!(
            c.history_file,
            PathBuf::from("/var/lib/bwmon/history.jsonl")
        );
        assert_eq!(c.history_keep, Duration::from_hours(90 * 24));
    }

    #[test]
    fn history_follows_the_state_file_unless_set() {
        let o = Overrides {
            state: Some("/srv/n1/s.yaml".into()),
            ..over()
        };
        let c = Config::from_yaml(Path::new("x"), "", &o).expect("valid");
        assert_eq!(c.history_file, PathBuf::from("/srv/n1/history.jsonl"));
        let yaml = "history_file: /var/log/bwmon.jsonl\nhistory_keep: 400d\n";
        let c = Config::from_yaml(Path::new("x"), yaml, &o).expect("valid");
        assert_eq!(c.history_file, PathBuf::from("/var/log/bwmon.jsonl"));
        assert_eq!(c.history_keep, Duration::from_hours(400 * 24));
        for yaml in ["history_keep: 1h\n", "history_keep: soon\n"] {
            let err = Config::from_yaml(Path::new("/etc/b.yaml"), yaml, &o).unwrap_err();
            assert!(err.to_string().contains("history_keep"), "{err}");
            assert_eq!(err.code(), 78);
        }
    }

    #[test]
    fn every_spec_key_is_read() {
        let yaml = "dev: eth1\ntc: /sbin/tc\nstate_file: /tmp/s.yaml\nlock_wait: 5s\nperiod: 6h\nbwmax: 10gbit\nbwcap: 100mbit\ninput: /tmp/in.json\ndefaults:\n  max_kbyte: 100\n  max_i2_kbyte: 200\n  thresh_percent: 50\n  share: 2\nclassify: none\nmail:\n  enabled: false\n  sendmail: /bin/true\n  from: a@b\n  name: Lab\n  list: l@b\n  slice_address: SLICE@s.b\n  hostname: n1\n  timeout: 3s\n  subject: \"{name}: {slice} capped on {hostname}\"\n";
        let c = Config::from_yaml(Path::new("x.yaml"), yaml, &Overrides::default()).expect("valid");
        assert_eq!(c.dev, "eth1");
        assert_eq!(c.period_secs, 6 * 3600);
        assert_eq!(c.bwmax, Rate(10_000_000_000));
        assert_eq!(c.bwcap, Some(Rate(100_000_000)));
        assert_eq!(c.defaults.share, 2);
        assert_eq!(c.mail.slice_address.as_deref(), Some("SLICE@s.b"));
        assert_eq!(c.mail.timeout, Duration::from_secs(3));
        assert!(!c.mail.enabled);
        assert_eq!(c.mail.subject, "{name}: {slice} capped on {hostname}");
    }

    #[test]
    fn errors_name_file_and_key() {
        for (yaml, key) in [
            ("period: soon\n", "period"),
            ("bwmax: fast\n", "bwmax"),
            ("defaults:\n  thresh_percent: 0\n", "thresh_percent"),
            ("mail:\n  from: \"a@b\\nBcc: x@y\"\n", "mail.from"),
            (
                "mail:\n  subject: \"capped\\r\\nBcc: x@y\"\n",
                "mail.subject",
            ),
            ("mail:\n  subject: \"{slice} on {host}\"\n", "mail.subject"),
            ("mail:\n  subject: \"{slice\"\n", "mail.subject"),
            ("mail:\n  subject: \"\"\n", "mail.subject"),
        ] {
            let err = Config::from_yaml(Path::new("/etc/b.yaml"), yaml, &over()).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("/etc/b.yaml") && msg.contains(key), "{msg}");
            assert_eq!(err.code(), 78);
        }
        let err = Config::from_yaml(Path::new("/etc/b.yaml"), "perod: 1d\n", &over()).unwrap_err();
        assert!(err.to_string().contains("perod"), "{err}");
    }

    #[test]
    fn overrides_win() {
        let o = Overrides {
            dev: Some("lo".into()),
            state: Some("/tmp/x".into()),
            config: None,
        };
        let c =
            Config::from_yaml(Path::new("x"), "dev: eth0\nstate_file: /a\n", &o).expect("valid");
        assert_eq!(c.dev, "lo");
        assert_eq!(c.state_file, PathBuf::from("/tmp/x"));
    }
}
