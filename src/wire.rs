//! Netlink's framing as bytes, for the two readers that walk messages by
//! hand (`tc::netlink`'s acks and dump ends, `nft::elements`' set elements):
//! the messages of one datagram, 4-byte alignment, and native-endian fields
//! that read as 0 past the end, so a short buffer is a failed check, never a
//! panic.

/// `struct nlmsghdr`.
pub const HEADER: usize = 16;

/// One message of a datagram: its header fields and what follows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub body: &'a [u8],
}

/// The messages of one datagram, in order, up to the first whose length
/// does not fit; `rest` is then what was left unread (empty for a datagram
/// read to its end).
pub struct Messages<'a> {
    pub rest: &'a [u8],
}

impl<'a> Messages<'a> {
    pub fn new(datagram: &'a [u8]) -> Self {
        Messages { rest: datagram }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Message<'a>;

    fn next(&mut self) -> Option<Message<'a>> {
        let b = self.rest;
        let len = u32_at(b, 0) as usize;
        if b.len() < HEADER || len < HEADER || len > b.len() {
            return None;
        }
        self.rest = &b[align(len).min(b.len())..];
        Some(Message {
            kind: u16_at(b, 4),
            flags: u16_at(b, 6),
            seq: u32_at(b, 8),
            body: &b[HEADER..len],
        })
    }
}

/// A length rounded up to netlink's 4-byte alignment (`NLMSG_ALIGN`).
pub fn align(len: usize) -> usize {
    (len + 3) & !3
}

pub fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_ne_bytes([s[0], s[1]]))
}

pub fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_end_reads_zero() {
        assert_eq!(align(0), 0);
        assert_eq!(align(5), 8);
        let b = 0x0102_0304u32.to_ne_bytes();
        assert_eq!(u32_at(&b, 0), 0x0102_0304);
        assert_eq!(u32_at(&b, 1), 0);
        assert_eq!(u16_at(&b, 3), 0);
    }

    #[test]
    fn messages_stop_at_the_first_that_does_not_fit() {
        let mut d = Vec::new();
        for (kind, body) in [(3u16, &[1u8, 2, 3][..]), (2, &[][..])] {
            let len = u32::try_from(HEADER + body.len()).expect("small");
            d.extend_from_slice(&len.to_ne_bytes());
            d.extend_from_slice(&kind.to_ne_bytes());
            d.extend_from_slice(&0x200u16.to_ne_bytes());
            d.extend_from_slice(&7u32.to_ne_bytes());
            d.extend_from_slice(&0u32.to_ne_bytes());
            d.extend_from_slice(body);
            d.resize(align(d.len()), 0);
        }
        let whole: Vec<_> = Messages::new(&d)
            .map(|m| (m.kind, m.flags, m.seq, m.body))
            .collect();
        assert_eq!(
            whole,
            [(3, 0x200, 7, &[1, 2, 3][..]), (2, 0x200, 7, &[][..])]
        );
        d.extend_from_slice(&[0xff; 20]);
        let mut m = Messages::new(&d);
        assert_eq!(m.by_ref().count(), 2);
        assert_eq!(m.rest.len(), 20, "the garbage is left unread");
    }
}
