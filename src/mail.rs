//! The cap mail (SPEC §6): composed from a plan's `MailRequest` and piped,
//! without a shell, into `sendmail -N never -t -f<from>`, bounded by a timeout.
//! Figures and class names are `crate::format`'s, as in `status`; the
//! Subject is `mail.subject`'s.

use crate::config::MailConfig;
use crate::format;
use crate::policy::{Kind, MailRequest, plus_secs};
use chrono::{DateTime, Utc};
use std::fmt::Write as _;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The two ends of a period and the moment of writing, as the mail shows them.
fn asctime(t: DateTime<Utc>) -> String {
    format!("{} GMT", t.format("%a %b %e %H:%M:%S %Y"))
}

/// The period in the 2008 mail's words: `day`, `hour`, `6.0 hours`, `2.0 days`.
pub fn period_words(secs: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let s = secs as f64;
    match secs {
        86_400 => "day".into(),
        3600 => "hour".into(),
        s_ if s_ > 86_400 => format!("{:.1} days", s / 86_400.0),
        s_ if s_ > 3600 => format!("{:.1} hours", s / 3600.0),
        s_ if s_ > 60 => format!("{:.1} minutes", s / 60.0),
        _ => format!("{secs} seconds"),
    }
}

/// The whole message, headers and body, as sendmail reads it.
pub fn compose(
    cfg: &MailConfig,
    req: &MailRequest,
    period_secs: u64,
    now: DateTime<Utc>,
) -> String {
    let host = &cfg.hostname;
    let slice = &req.name;
    let from = format!("{} Support <{}>", cfg.name, cfg.from);
    let mut to = cfg.list.clone();
    if let Some(addr) = &cfg.slice_address {
        to.push_str(", ");
        to.push_str(&addr.replace("SLICE", slice));
    }
    let until = plus_secs(req.start, period_secs);
    // Each value was checked for line breaks (config) or is a valid slice name.
    let subject = cfg
        .subject
        .replace("{slice}", slice)
        .replace("{hostname}", host)
        .replace("{name}", &cfg.name);
    let mut m = format!(
        "Content-type: text/plain\nFrom: {from}\nReply-To: {from}\nTo: {to}\nX-Mailer: bwmon/{}\nSubject: {subject}\n\n",
        env!("CARGO_PKG_VERSION")
    );
    for c in &req.classes {
        let class = match c.kind {
            Kind::Low => format::LOW,
            Kind::I2 => format::EXEMPT,
        };
        let _ = write!(
            m,
            "The slice {slice} has transmitted more than {} from\n{host} to {class} destinations\nsince {}.\n\n\
             Its maximum {class} burst rate will be capped at {}/s\nuntil {}.\n\n\
             Please reduce the average {class} transmission rate\nof the slice to {} per {}.\n\n",
            c.used,
            asctime(req.start),
            c.ceil,
            asctime(until),
            c.quota,
            period_words(period_secs),
        );
    }
    let _ = writeln!(m, "{} {host} bwcap {slice}", asctime(now));
    m
}

/// Why a mail did not go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub message: String,
    /// sendmail was killed after the timeout.
    pub timed_out: bool,
}

impl From<String> for SendError {
    fn from(message: String) -> Self {
        SendError {
            message,
            timed_out: false,
        }
    }
}

/// Sends one message. Ok only when sendmail exited 0 within the timeout.
pub fn send(cfg: &MailConfig, message: &str) -> Result<(), SendError> {
    let mut child = Command::new(&cfg.sendmail)
        .args(["-N", "never", "-t"])
        .arg(format!("-f{}", cfg.from))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", cfg.sendmail.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(message.as_bytes())
            .map_err(|e| format!("writing to {}: {e}", cfg.sendmail.display()))?;
    }
    let deadline = Instant::now() + cfg.timeout;
    // stderr is read on its own thread: a child that sendmail leaves behind
    // may hold the pipe open long after sendmail itself has exited.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(mut pipe) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut pipe, &mut err);
            let _ = tx.send(err);
        });
    }
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let wait = deadline
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(200));
                let err = rx.recv_timeout(wait).unwrap_or_default();
                let mut msg = format!("{} exited with {status}", cfg.sendmail.display());
                if let Some(why) = err.lines().map(str::trim).find(|l| !l.is_empty()) {
                    msg.push_str(": ");
                    msg.push_str(why);
                }
                return Err(msg.into());
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SendError {
                    message: format!(
                        "{} did not finish within {}: killed",
                        cfg.sendmail.display(),
                        humantime::format_duration(cfg.timeout)
                    ),
                    timed_out: true,
                });
            }
            Err(e) => return Err(format!("waiting for {}: {e}", cfg.sendmail.display()).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{CappedClass, Kind};
    use crate::units::{Bytes, Rate};
    use std::path::PathBuf;

    fn cfg() -> MailConfig {
        MailConfig {
            enabled: true,
            sendmail: PathBuf::from("/usr/sbin/sendmail"),
            from: "support@example.org".into(),
            name: "ExampleLab".into(),
            list: "mom@example.org".into(),
            slice_address: Some("SLICE@slices.example.org".into()),
            hostname: "node1.example.org".into(),
            timeout: Duration::from_secs(30),
            subject: crate::config::DEFAULT_SUBJECT.into(),
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn message_follows_the_spec() {
        let req = MailRequest {
            xid: 257,
            name: "pl_alice".into(),
            start: t("2026-11-04T00:00:00Z"),
            classes: vec![CappedClass {
                kind: Kind::Low,
                used: Bytes(4_200_000_000),
                ceil: Rate(312_000),
                quota: Bytes(5_798_205_440),
            }],
        };
        let m = compose(&cfg(), &req, 86_400, t("2026-11-04T18:00:00Z"));
        let expected = "Content-type: text/plain\n\
From: ExampleLab Support <support@example.org>\n\
Reply-To: ExampleLab Support <support@example.org>\n\
To: mom@example.org, pl_alice@slices.example.org\n\
X-Mailer: bwmon/0.1.0\n\
Subject: pl_mom capped bandwidth of slice pl_alice on node1.example.org\n\
\n\
The slice pl_alice has transmitted more than 3.9 GiB from\n\
node1.example.org to low bandwidth destinations\n\
since Wed Nov  4 00:00:00 2026 GMT.\n\
\n\
Its maximum low bandwidth burst rate will be capped at 312kbit/s\n\
until Thu Nov  5 00:00:00 2026 GMT.\n\
\n\
Please reduce the average low bandwidth transmission rate\n\
of the slice to 5.4 GiB per day.\n\
\n\
Wed Nov  4 18:00:00 2026 GMT node1.example.org bwcap pl_alice\n";
        assert_eq!(m, expected.replace("0.1.0", env!("CARGO_PKG_VERSION")));
    }

    /// Issue 13: the Subject is `mail.subject`'s, the exempt class is called
    /// so, and a KiB quota reads as the round figure it is (10,240 KiB is
    /// 10.0 MiB, as `status` shows `10M`).
    #[test]
    fn subject_and_names_follow_the_config_and_the_format() {
        let mut c = cfg();
        c.subject = "[{name}] {slice} capped on {hostname}".into();
        let req = MailRequest {
            xid: 257,
            name: "pl_alice".into(),
            start: t("2026-11-04T00:00:00Z"),
            classes: vec![CappedClass {
                kind: Kind::I2,
                used: Bytes(937_800),
                ceil: Rate(21_217),
                quota: Bytes(10_240 * 1024),
            }],
        };
        let m = compose(&c, &req, 86_400, t("2026-11-04T18:00:00Z"));
        assert!(
            m.contains("\nSubject: [ExampleLab] pl_alice capped on node1.example.org\n"),
            "{m}"
        );
        for line in [
            "The slice pl_alice has transmitted more than 915.8 KiB from",
            "node1.example.org to exempt destinations",
            "Its maximum exempt burst rate will be capped at 21217bit/s",
            "of the slice to 10.0 MiB per day.",
        ] {
            assert!(m.lines().any(|l| l == line), "no {line:?} in\n{m}");
        }
        assert!(!m.contains("high bandwidth"), "{m}");
    }

    #[test]
    fn period_in_words() {
        assert_eq!(period_words(86_400), "day");
        assert_eq!(period_words(3600), "hour");
        assert_eq!(period_words(6 * 3600), "6.0 hours");
        assert_eq!(period_words(2 * 86_400), "2.0 days");
    }
}
