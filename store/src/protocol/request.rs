//! Incremental request parser: RESP multibulk (`*2\r\n$3\r\nGET\r\n...`) and
//! inline commands (`GET key\r\n`, what telnet sends).
//!
//! Arguments are returned as byte ranges into the caller's query buffer, so a
//! request is never copied. Parsing is resumable: a command that arrives in
//! pieces continues where it stopped, and a bulk's claimed length is only
//! checked against `proto-max-bulk-len`, never allocated up front.

/// Longest inline request, or `*`/`$` header line, accepted (Redis's PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX: usize = 64 * 1024;
/// Unauthenticated clients may send at most this many arguments...
const UNAUTH_MAX_ARGS: i64 = 10;
/// ...each at most this long.
const UNAUTH_MAX_BULK: i64 = 16384;

/// What the parser needs to know about the client and the server's limits.
#[derive(Clone, Copy)]
pub struct Limits {
    /// Largest bulk argument accepted (`proto-max-bulk-len`).
    pub max_bulk: i64,
    /// True when the client still has to AUTH (tighter limits apply).
    pub unauthenticated: bool,
}

/// A protocol violation; the server replies `-ERR Protocol error: <msg>` and
/// closes. Bytes, not text: a client's byte is echoed as it came.
#[derive(Debug, PartialEq, Eq)]
pub struct ProtocolError(pub Vec<u8>);

/// Where a complete command's arguments live.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum ArgSource {
    /// Ranges index the query buffer.
    QueryBuffer,
    /// Ranges index [`RequestParser::inline_buf`] (inline commands are unescaped).
    Inline,
}

/// Resumable parser state for one connection.
#[derive(Default)]
pub struct RequestParser {
    /// Arguments still to read in the current multibulk; 0 between commands.
    multibulk_left: usize,
    /// Length of the bulk being read, once its `$` header was parsed.
    bulk_len: Option<usize>,
    /// Where the command being parsed starts in the buffer.
    start: usize,
    /// How many of `args` lie outside the buffer (see [`detach_prefix`](Self::detach_prefix)).
    detached: usize,
    /// Argument ranges of the current command.
    args: Vec<(usize, usize)>,
    /// Unescaped bytes of an inline command's arguments.
    inline_buf: Vec<u8>,
    source: Option<ArgSource>,
}

impl RequestParser {
    /// Parses from `buf[*pos..]`. Returns `Ok(true)` when a whole command is
    /// ready (see [`args`](Self::args)); `Ok(false)` when more bytes are needed.
    /// `*pos` advances past whatever was consumed either way.
    pub fn parse(&mut self, buf: &[u8], pos: &mut usize, lim: Limits) -> Result<bool, ProtocolError> {
        loop {
            if self.multibulk_left == 0 {
                self.args.clear();
                self.detached = 0;
                self.source = None;
                if *pos >= buf.len() {
                    return Ok(false);
                }
                if buf[*pos] != b'*' {
                    match self.parse_inline(buf, pos)? {
                        Some(done) => return Ok(done),
                        None => continue, // an empty line: skip it
                    }
                }
                let Some((n, next)) = header_line(buf, *pos, "too big mbulk count string")? else {
                    return Ok(false);
                };
                self.start = *pos;
                if n.is_none_or(|n| n > i32::MAX as i64) {
                    return Err(proto("invalid multibulk length"));
                }
                let n = n.unwrap_or(0);
                if n > UNAUTH_MAX_ARGS && lim.unauthenticated {
                    return Err(proto("unauthenticated multibulk length"));
                }
                *pos = next;
                if n <= 0 {
                    continue; // `*0` and `*-1` are empty requests: skip them
                }
                self.multibulk_left = n as usize;
                // Reserve modestly: a client's claim is not a reason to allocate.
                self.args.reserve(self.multibulk_left.min(1024));
            }
            while self.multibulk_left > 0 {
                let len = match self.bulk_len {
                    Some(l) => l,
                    None => {
                        let Some(&c) = buf.get(*pos) else { return Ok(false) };
                        if c != b'$' {
                            let Some(_) = find_crlf(buf, *pos) else {
                                if buf.len() - *pos > INLINE_MAX {
                                    return Err(proto("too big bulk count string"));
                                }
                                return Ok(false);
                            };
                            let mut msg = b"expected '$', got '".to_vec();
                            msg.extend_from_slice(&[c, b'\'']);
                            return Err(ProtocolError(msg));
                        }
                        let Some((n, next)) = header_line(buf, *pos, "too big bulk count string")? else {
                            return Ok(false);
                        };
                        let n = match n {
                            Some(n) if n >= 0 && n <= lim.max_bulk => n,
                            _ => return Err(proto("invalid bulk length")),
                        };
                        if n > UNAUTH_MAX_BULK && lim.unauthenticated {
                            return Err(proto("unauthenticated bulk length"));
                        }
                        *pos = next;
                        self.bulk_len = Some(n as usize);
                        n as usize
                    }
                };
                if buf.len() - *pos < len + 2 {
                    return Ok(false);
                }
                self.args.push((*pos, *pos + len));
                *pos += len + 2;
                self.bulk_len = None;
                self.multibulk_left -= 1;
            }
            self.source = Some(ArgSource::QueryBuffer);
            return Ok(true);
        }
    }

    /// Bytes still needed to finish the bulk being read, if one is in progress
    /// (lets the reader size its next read for a large argument).
    pub fn pending_bulk(&self) -> Option<usize> {
        self.bulk_len
    }

    /// Heap bytes the parser holds (argument ranges, unescaped inline arguments).
    pub fn memory(&self) -> usize {
        self.args.capacity() * std::mem::size_of::<(usize, usize)>() + self.inline_buf.capacity()
    }

    /// The complete command's argument ranges and which buffer they index.
    pub fn args(&self) -> (&[(usize, usize)], ArgSource) {
        (&self.args, self.source.unwrap_or(ArgSource::QueryBuffer))
    }

    /// The unescaped inline arguments' storage.
    pub fn inline_buf(&self) -> &[u8] {
        &self.inline_buf
    }

    /// True between commands (nothing partially parsed).
    pub fn at_boundary(&self) -> bool {
        self.multibulk_left == 0
    }

    /// The first byte the caller must keep when compacting its buffer: the
    /// start of a partially parsed command (whose arguments are already
    /// recorded as ranges), else `pos`.
    pub fn keep_from(&self, pos: usize) -> usize {
        if self.multibulk_left > 0 { self.start } else { pos }
    }

    /// Adjusts stored ranges after the caller removed `n` bytes (at most
    /// [`keep_from`](Self::keep_from)) from the front of the query buffer.
    pub fn shift(&mut self, n: usize) {
        self.start -= n.min(self.start);
        if self.source != Some(ArgSource::Inline) {
            for r in &mut self.args[self.detached..] {
                r.0 -= n;
                r.1 -= n;
            }
        }
    }

    /// The caller moves the bytes of the command in progress from `from` up
    /// to the current position out of the buffer (to let a big bulk start a
    /// new allocation); the arguments parsed so far now index those moved
    /// bytes, until [`relocate_detached`](Self::relocate_detached).
    pub fn detach_prefix(&mut self, from: usize) {
        for r in &mut self.args {
            r.0 -= from;
            r.1 -= from;
        }
        self.detached = self.args.len();
        self.start = 0;
    }

    /// Arguments of the command in progress that lie in detached bytes.
    pub fn detached(&self) -> usize {
        self.detached
    }

    /// The detached bytes were put back into the buffer at `offset`.
    pub fn relocate_detached(&mut self, offset: usize) {
        for r in &mut self.args[..self.detached] {
            r.0 += offset;
            r.1 += offset;
        }
        self.detached = 0;
    }

    /// Parses one inline line: `Some(true)` a command, `Some(false)` incomplete,
    /// `None` an empty line that was skipped.
    fn parse_inline(&mut self, buf: &[u8], pos: &mut usize) -> Result<Option<bool>, ProtocolError> {
        let rest = &buf[*pos..];
        // Redis looks for the newline with strchr(), which stops at a NUL: a
        // NUL before the newline leaves the request incomplete (until it is
        // too big). This also keeps NULs out of `split_inline`.
        let Some(nl) = rest.iter().position(|&c| c == b'\n' || c == 0).filter(|&i| rest[i] == b'\n') else {
            if rest.len() > INLINE_MAX {
                return Err(proto("too big inline request"));
            }
            return Ok(Some(false));
        };
        let mut line = &rest[..nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        self.inline_buf.clear();
        self.args.clear();
        split_inline(line, &mut self.inline_buf, &mut self.args).map_err(|_| proto("unbalanced quotes in request"))?;
        *pos += nl + 1;
        if self.args.is_empty() {
            return Ok(None);
        }
        self.source = Some(ArgSource::Inline);
        Ok(Some(true))
    }
}

fn proto(msg: &str) -> ProtocolError {
    ProtocolError(msg.as_bytes().to_vec())
}

/// C's `isspace`: Rust's ASCII whitespace plus the vertical tab.
fn c_isspace(c: u8) -> bool {
    c.is_ascii_whitespace() || c == 0x0b
}

/// Position of the `\r` ending the line that starts at `from`, if the byte
/// after it has arrived too. Redis finds the `\r` with strchr(), which stops
/// at a NUL: a NUL before it leaves the line incomplete (until too big).
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let r = buf[from..].iter().position(|&c| c == b'\r' || c == 0)? + from;
    (buf[r] == b'\r' && r + 1 < buf.len()).then_some(r)
}

/// Parses a `*N` or `$N` header at `at`: `Ok(None)` if incomplete, else the
/// number (`None` if not an integer) and the position after the line.
#[allow(clippy::type_complexity)]
fn header_line(buf: &[u8], at: usize, too_big: &str) -> Result<Option<(Option<i64>, usize)>, ProtocolError> {
    match find_crlf(buf, at) {
        None => {
            if buf.len() - at > INLINE_MAX {
                return Err(proto(too_big));
            }
            Ok(None)
        }
        Some(r) => Ok(Some((crate::util::parse_i64(&buf[at + 1..r]), r + 2))),
    }
}

/// Splits an inline line into arguments the way Redis's `sdssplitargs` does:
/// whitespace separated, with "double quotes" (supporting \n \r \t \b \a \\ \"
/// and \xHH) and 'single quotes' (supporting \'). A closing quote must be
/// followed by whitespace or the end of the line.
fn split_inline(line: &[u8], out: &mut Vec<u8>, args: &mut Vec<(usize, usize)>) -> Result<(), ()> {
    let mut i = 0;
    loop {
        while i < line.len() && c_isspace(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(());
        }
        let start = out.len();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            let c = line.get(i).copied();
            if in_dq {
                match c {
                    None => return Err(()),
                    Some(b'\\') if line.get(i + 1) == Some(&b'x') && hex2(line, i + 2).is_some() => {
                        out.push(hex2(line, i + 2).expect("checked"));
                        i += 3;
                    }
                    Some(b'\\') if i + 1 < line.len() => {
                        i += 1;
                        out.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        if line.get(i + 1).is_some_and(|&c| !c_isspace(c)) {
                            return Err(());
                        }
                        in_dq = false;
                        i += 1;
                        break;
                    }
                    Some(c) => out.push(c),
                }
            } else if in_sq {
                match c {
                    None => return Err(()),
                    Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                        i += 1;
                        out.push(b'\'');
                    }
                    Some(b'\'') => {
                        if line.get(i + 1).is_some_and(|&c| !c_isspace(c)) {
                            return Err(());
                        }
                        in_sq = false;
                        i += 1;
                        break;
                    }
                    Some(c) => out.push(c),
                }
            } else {
                match c {
                    None | Some(b' ' | b'\n' | b'\r' | b'\t' | 0) => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(c) => out.push(c),
                }
            }
            i += 1;
        }
        debug_assert!(!in_dq && !in_sq);
        args.push((start, out.len()));
    }
}

fn hex2(line: &[u8], at: usize) -> Option<u8> {
    let h = |c: u8| (c as char).to_digit(16);
    Some((h(*line.get(at)?)? * 16 + h(*line.get(at + 1)?)?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: Limits = Limits { max_bulk: 512 * 1024 * 1024, unauthenticated: false };

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut p = RequestParser::default();
        let mut pos = 0;
        let mut out = vec![];
        while p.parse(input, &mut pos, LIM)? {
            let (ranges, src) = p.args();
            let buf = if src == ArgSource::Inline { p.inline_buf() } else { input };
            out.push(ranges.iter().map(|&(a, b)| buf[a..b].to_vec()).collect());
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_inline() {
        let cmds =
            parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nSET \"a b\" 'c\\'d' \"\\x41\\n\"\r\n\r\n*0\r\nPING\n").unwrap();
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0], vec![b"GET".to_vec(), b"k".to_vec()]);
        assert_eq!(cmds[1], vec![b"SET".to_vec(), b"a b".to_vec(), b"c'd".to_vec(), b"A\n".to_vec()]);
        assert_eq!(cmds[2], vec![b"PING".to_vec()]);
    }

    #[test]
    fn resumes_byte_by_byte() {
        let input = b"*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n$10\r\n0123456789\r\n";
        let mut p = RequestParser::default();
        let mut pos = 0;
        for end in 1..input.len() {
            assert!(!p.parse(&input[..end], &mut pos, LIM).unwrap());
        }
        assert!(p.parse(input, &mut pos, LIM).unwrap());
        assert_eq!(p.args().0.len(), 3);
    }

    #[test]
    fn compacting_mid_command_keeps_parsed_arguments() {
        let input = b"PING\r\n*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n$5\r\nworld\r\n".to_vec();
        let mut p = RequestParser::default();
        let mut pos = 0;
        assert!(p.parse(&input[..30], &mut pos, LIM).unwrap()); // PING
        assert!(!p.parse(&input[..30], &mut pos, LIM).unwrap()); // SET, partly
        // Compact the way the event loop does, then feed the rest.
        let keep = p.keep_from(pos);
        let mut buf = input[keep..].to_vec();
        p.shift(keep);
        pos -= keep;
        assert!(p.parse(&buf, &mut pos, LIM).unwrap());
        let (ranges, _) = p.args();
        let args: Vec<&[u8]> = ranges.iter().map(|&(a, b)| &buf[a..b]).collect();
        assert_eq!(args, vec![&b"SET"[..], b"hello", b"world"]);
        buf.clear();
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = crate::util::Rng::new(42);
        let alphabet = b"*$:+-\r\n0123456789-\"' abcSETGET\x00\xff";
        for _ in 0..20_000 {
            let len = rng.below(64) as usize;
            let input: Vec<u8> = (0..len).map(|_| alphabet[rng.below(alphabet.len() as u64) as usize]).collect();
            let mut p = RequestParser::default();
            let mut pos = 0;
            let lim = Limits { max_bulk: 1 << 20, unauthenticated: rng.below(2) == 0 };
            // Feed in two pieces to exercise resumption; stop at the first error.
            let cut = if len > 0 { rng.below(len as u64) as usize } else { 0 };
            for end in [cut, len] {
                while let Ok(true) = p.parse(&input[..end], &mut pos, lim) {
                    let (ranges, src) = p.args();
                    let buf = if src == ArgSource::Inline { p.inline_buf() } else { &input[..end] };
                    assert!(ranges.iter().all(|&(a, b)| a <= b && b <= buf.len()));
                }
                assert!(pos <= end);
            }
        }
    }

    #[test]
    fn errors_match_redis() {
        let e = |b: &[u8]| String::from_utf8_lossy(&parse_all(b).unwrap_err().0).into_owned();
        assert_eq!(e(b"*x\r\n"), "invalid multibulk length");
        assert_eq!(e(b"*3000000000\r\n"), "invalid multibulk length");
        assert_eq!(e(b"*1\r\n:1\r\n"), "expected '$', got ':'");
        assert_eq!(e(b"*1\r\n$-5\r\n"), "invalid bulk length");
        assert_eq!(e(b"*1\r\n$999999999999\r\n"), "invalid bulk length");
        assert_eq!(e(b"SET \"a\"b\r\n"), "unbalanced quotes in request");
        assert_eq!(e(&vec![b'a'; INLINE_MAX + 1]), "too big inline request");
        // A NUL before the newline: incomplete, as in Redis, then too big.
        assert!(parse_all(b"\x00\x01\xff\r\nECHO a\x00b\r\n").unwrap().is_empty());
        let mut nul = b"ECHO a\x00b\r\n".to_vec();
        nul.resize(INLINE_MAX + 10, b'x');
        assert_eq!(e(&nul), "too big inline request");
        let mut unauth = RequestParser::default();
        let lim = Limits { max_bulk: 1 << 29, unauthenticated: true };
        assert_eq!(unauth.parse(b"*11\r\n", &mut 0, lim).unwrap_err().0, b"unauthenticated multibulk length");
        // Redis's bytes: a raw byte echoed, \v as whitespace, a NUL in a header waits.
        assert_eq!(parse_all(b"*1\r\n\xf4\r\n").unwrap_err().0, b"expected '$', got '\xf4'");
        assert_eq!(parse_all(b"\x0bPING\r\n").unwrap(), vec![vec![b"PING".to_vec()]]);
        assert!(parse_all(b"*1\x00\r\n$4\r\nPING\r\n").unwrap().is_empty());
        assert!(parse_all(b"*1\r\n$4\x00\r\nPING\r\n").unwrap().is_empty());
    }
}
