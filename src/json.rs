//! JSON written by hand into one buffer, byte for byte what `serde_json`
//! writes for the same values: the state file and `status --format json`
//! are written at every run, and at thousands of slices serde's generic
//! path (and chrono's formatting of every time) was most of the run. What is
//! rare (a string that needs escaping, a year beyond 9999) goes through
//! `serde_json` itself, so the bytes never differ.

use chrono::{DateTime, Utc};

/// One value as `serde_json` writes it: for what the fast writers leave to it.
pub fn line<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value)
        .unwrap_or_else(|e| unreachable!("a value of ours always serialises: {e}"));
}

pub fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// "00" to "99": integers are written two digits a step, as `itoa` does.
#[allow(clippy::cast_possible_truncation)] // i < 100
const PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

/// Every byte of `bufs`, in order, in as few vectored writes as `w` takes
/// (`Write::write_all_vectored` is not stable).
pub fn write_all_vectored(w: &mut dyn std::io::Write, bufs: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice> = bufs.iter().map(|b| std::io::IoSlice::new(b)).collect();
    let mut left = &mut slices[..];
    std::io::IoSlice::advance_slices(&mut left, 0);
    while !left.is_empty() {
        match w.write_vectored(left) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut left, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[allow(clippy::cast_possible_truncation)] // every cast is of a value < 100
pub fn put_u64(out: &mut Vec<u8>, mut n: u64) {
    // Zeros and small counts are most of what is written.
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    while n >= 100 {
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[(n % 100) as usize]);
        n /= 100;
    }
    if n >= 10 {
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[n as usize]);
    } else {
        at -= 1;
        buf[at] = b'0' + n as u8;
    }
    out.extend_from_slice(&buf[at..]);
}

/// A JSON string. Names and device names need no escaping; anything that
/// does goes through `serde_json`, so the bytes are always what it writes.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        line(out, &s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// A time as chrono's `Serialize` writes it (RFC 3339, `Z`, the fraction in
/// 3, 6 or 9 digits when there is one). Years beyond 0..=9999 and leap
/// seconds, which chrono writes its own way, go through chrono itself.
pub fn put_time(out: &mut Vec<u8>, time: &DateTime<Utc>) {
    put_rfc3339(out, time, true);
}

/// A time to the second, as `to_rfc3339_opts(SecondsFormat::Secs, true)`
/// writes it (what `status` shows), quoted.
pub fn put_time_secs(out: &mut Vec<u8>, time: &DateTime<Utc>) {
    put_rfc3339(out, time, false);
}

fn put_rfc3339(out: &mut Vec<u8>, time: &DateTime<Utc>, fraction: bool) {
    use chrono::{Datelike, Timelike};
    let naive = time.naive_utc();
    let (year, nano) = (naive.year(), naive.nanosecond());
    if !(0..=9999).contains(&year) || nano >= 1_000_000_000 {
        if fraction {
            line(out, time);
        } else {
            line(
                out,
                &time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        }
        return;
    }
    let year = year.unsigned_abs();
    // `"YYYY-MM-DDTHH:MM:SS`, each field two digits from PAIRS.
    let mut text = *b"\"0000-00-00T00:00:00";
    let fields = [
        (1, year / 100),
        (3, year % 100),
        (6, naive.month()),
        (9, naive.day()),
        (12, naive.hour()),
        (15, naive.minute()),
        (18, naive.second()),
    ];
    for (at, value) in fields {
        text[at..at + 2].copy_from_slice(&PAIRS[usize::try_from(value % 100).unwrap_or(0)]);
    }
    out.extend_from_slice(&text);
    if fraction && nano != 0 {
        let (mut value, digits) = if nano.is_multiple_of(1_000_000) {
            (nano / 1_000_000, 3)
        } else if nano.is_multiple_of(1000) {
            (nano / 1000, 6)
        } else {
            (nano, 9)
        };
        let mut fraction = *b".000000000";
        for at in (1..=digits).rev() {
            fraction[at] = b'0' + u8::try_from(value % 10).unwrap_or(0);
            value /= 10;
        }
        out.extend_from_slice(&fraction[..=digits]);
    }
    out.extend_from_slice(b"Z\"");
}

/// `serde_json::to_string_pretty`'s layout (two spaces a level, `": "`
/// after keys, `[]` for an empty array), written a key or an element at a
/// time.
pub struct Pretty {
    pub out: Vec<u8>,
    depth: usize,
    /// No member written yet at the current level.
    first: bool,
}

impl Pretty {
    pub fn with_capacity(bytes: usize) -> Self {
        Pretty {
            out: Vec::with_capacity(bytes),
            depth: 0,
            first: true,
        }
    }

    /// A writer for a run of elements of the level this one is at, into
    /// `out` (emptied first), its bytes to go out after this one's:
    /// `after` says whether elements come before that run. Lets another
    /// thread write a piece of a long array.
    pub fn part(&self, after: bool, mut out: Vec<u8>) -> Self {
        out.clear();
        Pretty {
            out,
            depth: self.depth,
            first: self.first && !after,
        }
    }

    /// Sends what this writer holds to `w` and empties it, keeping its
    /// place: a long document goes out in pieces, never whole in memory.
    pub fn drain_to(&mut self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        w.write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    /// Goes on after a [`Pretty::part`] whose bytes went out: an element
    /// came if it wrote one.
    pub fn follow(&mut self, part: &Pretty) {
        self.first = part.first;
    }

    /// `{` or `[`.
    pub fn open(&mut self, bracket: u8) {
        self.out.push(bracket);
        self.depth += 1;
        self.first = true;
    }

    /// `}` or `]`, on a line of its own unless the level is empty.
    pub fn close(&mut self, bracket: u8) {
        self.depth -= 1;
        if !self.first {
            self.newline();
        }
        self.out.push(bracket);
        self.first = false;
    }

    /// Starts an object member: the value is written next.
    pub fn key(&mut self, key: &str) {
        // Keys are bwmon's own words: nothing to escape.
        debug_assert!(!key.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'));
        self.element();
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\": ");
    }

    /// Starts an array element the caller lays out itself, for the level
    /// `depth` this writer is at (a hot loop writes its constant runs of
    /// keys and punctuation whole): `true` for the level's first element,
    /// which takes no comma.
    pub fn raw_element(&mut self, depth: usize) -> bool {
        assert_eq!(self.depth, depth, "an element laid out for another level");
        std::mem::replace(&mut self.first, false)
    }

    /// Starts an array element: the value is written next.
    pub fn element(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.newline();
    }

    pub fn u64(&mut self, key: &str, v: u64) {
        self.key(key);
        put_u64(&mut self.out, v);
    }

    pub fn bool(&mut self, key: &str, v: bool) {
        self.key(key);
        put_bool(&mut self.out, v);
    }

    pub fn str(&mut self, key: &str, v: &str) {
        self.key(key);
        put_str(&mut self.out, v);
    }

    pub fn time_secs(&mut self, key: &str, v: Option<&DateTime<Utc>>) {
        self.key(key);
        match v {
            Some(t) => put_time_secs(&mut self.out, t),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    pub fn null(&mut self, key: &str) {
        self.key(key);
        self.out.extend_from_slice(b"null");
    }

    fn newline(&mut self) {
        const INDENT: &[u8] = b"\n                ";
        if let Some(line) = INDENT.get(..=2 * self.depth) {
            self.out.extend_from_slice(line);
        } else {
            self.out.push(b'\n');
            for _ in 0..self.depth {
                self.out.extend_from_slice(b"  ");
            }
        }
    }

    /// The text, UTF-8 by construction (only `&str`s and ASCII go in).
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::write_all_vectored;
    use std::io::{self, IoSlice, Write};

    /// Takes at most `most` bytes a call, across buffers, and is
    /// interrupted every third call.
    struct Stingy {
        got: Vec<u8>,
        most: usize,
        calls: usize,
    }

    impl Write for Stingy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(3) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let mut left = self.most;
            for b in bufs {
                let n = b.len().min(left);
                self.got.extend_from_slice(&b[..n]);
                left -= n;
            }
            Ok(self.most - left)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn vectored_writes_send_every_byte_in_order() {
        let bufs: [&[u8]; 4] = [b"", b"abc", b"defgh", b"ij"];
        for most in 1..=11 {
            let mut w = Stingy {
                got: Vec::new(),
                most,
                calls: 0,
            };
            write_all_vectored(&mut w, &bufs).expect("written");
            assert_eq!(w.got, b"abcdefghij", "{most} a call");
        }
        let mut full = Stingy {
            got: Vec::new(),
            most: 0,
            calls: 0,
        };
        let e = write_all_vectored(&mut full, &bufs).expect_err("nothing taken");
        assert_eq!(e.kind(), io::ErrorKind::WriteZero);
    }
}
