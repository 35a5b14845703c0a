//! Reply encoder: appends RESP2 or RESP3 to a connection's output buffer.
//!
//! Commands describe replies by shape (map, set, double, null) and the
//! encoder picks the wire form for the connection's protocol, as Redis's
//! `addReply*` functions do.

use crate::util::{fmt_g17, fmt_i64};

/// A connection's output buffer and protocol version.
#[derive(Default)]
pub struct Reply {
    /// Encoded bytes not yet written to the socket.
    pub buf: Vec<u8>,
    /// True after `HELLO 3`.
    pub resp3: bool,
    /// Error replies written so far (for `total_error_replies`).
    pub errors: u64,
}

/// A placeholder for an aggregate whose length is known only afterwards.
pub struct Deferred(usize);

impl Reply {
    /// `+OK`
    #[inline]
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// A simple string (`+text`).
    pub fn simple(&mut self, s: &str) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An error; `msg` starts with its code (`ERR ...`, `WRONGTYPE ...`).
    /// Newlines in `msg` are replaced so they cannot break the protocol.
    pub fn error(&mut self, msg: &str) {
        self.error_bytes(msg.as_bytes());
    }

    /// An error made of text and a client's bytes, as C's `%.Ns` prints them:
    /// up to a NUL, at most `max` bytes, unchanged otherwise.
    pub fn error_with(&mut self, before: &str, arg: &[u8], max: usize, after: &str) {
        let end = arg.iter().position(|&c| c == 0).unwrap_or(arg.len()).min(max);
        let mut msg = before.as_bytes().to_vec();
        msg.extend_from_slice(&arg[..end]);
        msg.extend_from_slice(after.as_bytes());
        self.error_bytes(&msg);
    }

    /// An error reply of raw bytes (a client's bytes echoed as they came);
    /// CR and LF become spaces, as in Redis.
    pub fn error_bytes(&mut self, msg: &[u8]) {
        self.errors += 1;
        self.buf.push(b'-');
        self.buf.extend(msg.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer (`:n`).
    #[inline]
    pub fn int(&mut self, n: i64) {
        self.header(b':', n);
    }

    /// A bulk string.
    #[inline]
    pub fn bulk(&mut self, b: &[u8]) {
        self.header(b'$', b.len() as i64);
        self.buf.extend_from_slice(b);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer sent as a bulk string (e.g. `GET` of an int-encoded value).
    pub fn bulk_int(&mut self, n: i64) {
        let mut s = [0u8; 20];
        self.bulk(fmt_i64(n, &mut s));
    }

    /// The null reply where a bulk string was expected.
    #[inline]
    pub fn null(&mut self) {
        self.buf.extend_from_slice(if self.resp3 { b"_\r\n" } else { b"$-1\r\n" });
    }

    /// The null reply where an array was expected.
    pub fn null_array(&mut self) {
        self.buf.extend_from_slice(if self.resp3 { b"_\r\n" } else { b"*-1\r\n" });
    }

    /// An array header of `n` elements.
    #[inline]
    pub fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    /// A map header of `n` pairs (flattened to an array in RESP2).
    pub fn map(&mut self, n: usize) {
        if self.resp3 { self.header(b'%', n as i64) } else { self.header(b'*', 2 * n as i64) }
    }

    /// A set header (an array in RESP2).
    pub fn set(&mut self, n: usize) {
        self.header(if self.resp3 { b'~' } else { b'*' }, n as i64);
    }

    /// A double (`,` in RESP3, a `%.17g` bulk string in RESP2).
    pub fn double(&mut self, d: f64) {
        let text = fmt_g17(d);
        if self.resp3 {
            self.buf.push(b',');
            self.buf.extend_from_slice(text.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }

    /// A boolean (`#t`/`#f` in RESP3, `:1`/`:0` in RESP2).
    pub fn boolean(&mut self, b: bool) {
        if self.resp3 {
            self.buf.extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(b as i64);
        }
    }

    /// Text meant for humans (`INFO`): a verbatim string in RESP3, bulk in RESP2.
    pub fn verbatim(&mut self, text: &[u8]) {
        if self.resp3 {
            self.header(b'=', text.len() as i64 + 4);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(text);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    /// Starts an array whose length is set later with [`end_array`](Self::end_array).
    pub fn begin_array(&mut self) -> Deferred {
        Deferred(self.buf.len())
    }

    /// Writes the header of a deferred array now that its length is known.
    pub fn end_array(&mut self, d: Deferred, n: usize) {
        self.end_deferred(d, b'*', n as i64);
    }

    /// Writes the header of a deferred map of `n` pairs.
    pub fn end_map(&mut self, d: Deferred, n: usize) {
        if self.resp3 { self.end_deferred(d, b'%', n as i64) } else { self.end_deferred(d, b'*', 2 * n as i64) }
    }

    /// Writes the header of a deferred set.
    pub fn end_set(&mut self, d: Deferred, n: usize) {
        self.end_deferred(d, if self.resp3 { b'~' } else { b'*' }, n as i64);
    }

    /// Appends bytes that are already valid protocol.
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    fn end_deferred(&mut self, d: Deferred, kind: u8, n: i64) {
        let mut s = [0u8; 20];
        let num = fmt_i64(n, &mut s);
        let mut head = Vec::with_capacity(num.len() + 3);
        head.push(kind);
        head.extend_from_slice(num);
        head.extend_from_slice(b"\r\n");
        self.buf.splice(d.0..d.0, head);
    }

    #[inline]
    fn header(&mut self, kind: u8, n: i64) {
        let mut s = [0u8; 20];
        self.buf.push(kind);
        self.buf.extend_from_slice(fmt_i64(n, &mut s));
        self.buf.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_in_both_protocols() {
        let mut r = Reply::default();
        r.map(1);
        r.bulk(b"a");
        r.double(1.5);
        r.null();
        let d = r.begin_array();
        r.int(7);
        r.end_array(d, 1);
        assert_eq!(r.buf, b"*2\r\n$1\r\na\r\n$3\r\n1.5\r\n$-1\r\n*1\r\n:7\r\n");
        let mut r = Reply { resp3: true, ..Reply::default() };
        r.map(1);
        r.bulk(b"a");
        r.double(1.5);
        r.null();
        assert_eq!(r.buf, b"%1\r\n$1\r\na\r\n,1.5\r\n_\r\n");
    }
}
