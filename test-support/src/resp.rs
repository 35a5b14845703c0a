//! RESP on the wire, kept close to its bytes so replies compare exactly:
//! encoding a request, reading one reply (RESP2 and RESP3), a raw connection,
//! and constructors for the replies tests expect.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Encodes arguments as a RESP multibulk request.
pub fn resp_request(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A parsed RESP2/RESP3 reply, kept close to the wire form for comparisons.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resp {
    /// `+...`, `-...`, `:...`, `,...`, `#...`, `_` and other one-line replies, with their type byte.
    Line(u8, Vec<u8>),
    /// `$n` / `=n` / `!n` bulk with its type byte.
    Bulk(u8, Vec<u8>),
    /// `$-1`
    NullBulk,
    /// `*-1`
    NullArray,
    /// `*n`, `%n`, `~n`, `>n` aggregates with their type byte.
    Agg(u8, Vec<Resp>),
}

impl Resp {
    /// The text of a one-line reply (without its type byte) or of a bulk.
    pub fn text(&self) -> Option<String> {
        match self {
            Resp::Line(_, b) | Resp::Bulk(_, b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// A RESP2 bulk string reply `$n\r\n...`.
pub fn bulk(s: &str) -> Resp {
    Resp::Bulk(b'$', s.as_bytes().to_vec())
}

/// An integer reply `:n`.
pub fn int(n: i64) -> Resp {
    Resp::Line(b':', n.to_string().into_bytes())
}

/// A one-line reply of type `kind` (`+`, `-`, `,`, ...).
pub fn line(kind: u8, s: &str) -> Resp {
    Resp::Line(kind, s.as_bytes().to_vec())
}

/// Reads one complete reply from a buffered stream.
pub fn read_resp(r: &mut impl BufRead) -> std::io::Result<Resp> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.len() < 3 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
    }
    let kind = line[0];
    let body = line[1..line.len() - 2].to_vec();
    let num = || String::from_utf8_lossy(&body).parse::<i64>().unwrap_or(-1);
    Ok(match kind {
        b'$' | b'=' | b'!' => {
            let n = num();
            if n < 0 {
                return Ok(Resp::NullBulk);
            }
            let mut data = vec![0u8; n as usize + 2];
            r.read_exact(&mut data)?;
            data.truncate(n as usize);
            Resp::Bulk(kind, data)
        }
        b'*' | b'%' | b'~' | b'>' => {
            let n = num();
            if n < 0 {
                return Ok(Resp::NullArray);
            }
            let items = if kind == b'%' { 2 * n } else { n };
            let mut v = Vec::new();
            for _ in 0..items {
                v.push(read_resp(r)?);
            }
            Resp::Agg(kind, v)
        }
        _ => Resp::Line(kind, body),
    })
}

/// A raw RESP connection, for exact replies (RESP3 included) and wire shapes.
pub struct Raw {
    /// The socket, for writing.
    pub w: TcpStream,
    /// The same socket, buffered for reading replies.
    pub r: BufReader<TcpStream>,
}

impl Raw {
    /// Connects to 127.0.0.1:`port`; reading a reply fails after `timeout`.
    pub fn connect(port: u16, timeout: Duration) -> std::io::Result<Raw> {
        let w = TcpStream::connect(("127.0.0.1", port))?;
        w.set_read_timeout(Some(timeout))?;
        Ok(Raw { r: BufReader::new(w.try_clone()?), w })
    }

    /// Connects to 127.0.0.1:`port` (replies time out after 10 s); panics on failure.
    pub fn new(port: u16) -> Raw {
        Raw::connect(port, Duration::from_secs(10)).unwrap_or_else(|e| panic!("connect to port {port}: {e}"))
    }

    /// Sends one command of binary arguments and reads its reply.
    pub fn request(&mut self, args: &[Vec<u8>]) -> std::io::Result<Resp> {
        self.w.write_all(&resp_request(args))?;
        read_resp(&mut self.r)
    }

    /// Sends one command of binary arguments and reads its reply; panics on failure.
    pub fn call_bytes(&mut self, args: &[Vec<u8>]) -> Resp {
        self.request(args).unwrap_or_else(|e| panic!("no reply to {args:?}: {e}"))
    }

    /// Sends one command and reads its reply; panics on failure.
    pub fn call(&mut self, args: &[&str]) -> Resp {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        self.call_bytes(&args)
    }

    /// The reply's text: a simple string, error, bulk or verbatim string.
    pub fn text(&mut self, args: &[&str]) -> String {
        let reply = self.call(args);
        reply.text().unwrap_or_else(|| panic!("{args:?}: unexpected {reply:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_encode_and_replies_parse() {
        assert_eq!(resp_request(&[b"GET".to_vec(), b"k".to_vec()]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        let wire = b"*3\r\n$1\r\na\r\n:7\r\n$-1\r\n%1\r\n+k\r\n,1.5\r\n*-1\r\n";
        let mut r = &wire[..];
        assert_eq!(read_resp(&mut r).unwrap(), Resp::Agg(b'*', vec![bulk("a"), int(7), Resp::NullBulk]));
        assert_eq!(read_resp(&mut r).unwrap(), Resp::Agg(b'%', vec![line(b'+', "k"), line(b',', "1.5")]));
        assert_eq!(read_resp(&mut r).unwrap(), Resp::NullArray);
        assert!(read_resp(&mut r).is_err(), "end of input is an error");
        assert_eq!(bulk("x").text().as_deref(), Some("x"));
        assert_eq!(Resp::NullBulk.text(), None);
    }
}
