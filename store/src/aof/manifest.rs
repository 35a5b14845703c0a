//! The multi-part AOF manifest (Redis 7): which files make up the AOF, in
//! which order. `appendonlydir/appendonly.aof.manifest` holds lines like
//!
//! ```text
//! file appendonly.aof.1.base.rdb seq 1 type b
//! file appendonly.aof.1.incr.aof seq 1 type i
//! ```
//!
//! `b` is the base (an RDB image or a command log), `i` the incremental
//! command logs replayed after it in sequence order, `h` files made obsolete
//! by a rewrite and about to be deleted.

use crate::fsutil;
use std::io::Write;
use std::path::Path;

/// Kind of an AOF file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// The base image.
    Base,
    /// Obsolete, to be deleted.
    History,
    /// An incremental command log.
    Incr,
}

impl FileType {
    fn code(self) -> char {
        match self {
            FileType::Base => 'b',
            FileType::History => 'h',
            FileType::Incr => 'i',
        }
    }
}

/// One file of the AOF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AofFile {
    /// File name inside the AOF directory.
    pub name: String,
    /// Sequence number.
    pub seq: u64,
    /// Kind.
    pub kind: FileType,
}

/// The parsed manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The base file, if any.
    pub base: Option<AofFile>,
    /// Incremental files in replay order.
    pub incrs: Vec<AofFile>,
    /// Obsolete files not yet deleted.
    pub history: Vec<AofFile>,
}

impl Manifest {
    /// Parses manifest text; errors name the line.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut m = Manifest::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words = split(line).ok_or_else(|| format!("invalid quoting at manifest line {}", n + 1))?;
            let (mut name, mut seq, mut kind) = (None, None, None);
            for kv in words.chunks(2) {
                let [k, v] = kv else { return Err(format!("odd number of fields at manifest line {}", n + 1)) };
                match k.as_str() {
                    "file" => name = Some(v.clone()),
                    "seq" => seq = v.parse::<u64>().ok(),
                    "type" => {
                        kind = match v.as_str() {
                            "b" => Some(FileType::Base),
                            "h" => Some(FileType::History),
                            "i" => Some(FileType::Incr),
                            _ => None,
                        }
                    }
                    _ => {} // unknown fields are ignored, as Redis does
                }
            }
            let (Some(name), Some(seq), Some(kind)) = (name, seq, kind) else {
                return Err(format!("invalid manifest line {}: {line}", n + 1));
            };
            if name.contains('/') {
                return Err(format!("manifest line {} names a path, not a file: {name}", n + 1));
            }
            let f = AofFile { name, seq, kind };
            match kind {
                FileType::Base if m.base.is_some() => return Err(format!("more than one base file (line {})", n + 1)),
                FileType::Base => m.base = Some(f),
                FileType::History => m.history.push(f),
                FileType::Incr => {
                    if m.incrs.last().is_some_and(|l| l.seq >= f.seq) {
                        return Err(format!("incr files out of order at manifest line {}", n + 1));
                    }
                    m.incrs.push(f)
                }
            }
        }
        Ok(m)
    }

    /// The manifest's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in self.base.iter().chain(&self.history).chain(&self.incrs) {
            out.push_str(&format!("file {} seq {} type {}\n", quote(&f.name), f.seq, f.kind.code()));
        }
        out
    }

    /// Writes the manifest durably (temp file, fsync, rename, fsync dir).
    pub fn persist(&self, dir: &Path, name: &str) -> std::io::Result<()> {
        let text = self.render();
        fsutil::replace_durably(&dir.join(name), &dir.join(format!("temp-{name}")), |w| w.write_all(text.as_bytes()))
    }

    /// The highest incr sequence number (0 if none).
    pub fn last_incr_seq(&self) -> u64 {
        self.incrs.last().map_or(0, |f| f.seq)
    }
}

/// Quotes a name the way Redis's `sdscatrepr` would when it needs it.
fn quote(s: &str) -> String {
    if s.bytes().all(|c| c.is_ascii_graphic() && c != b'"' && c != b'\'' && c != b'\\') {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.bytes() {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push('"');
    out
}

/// Splits a manifest line with Redis's inline quoting rules.
fn split(line: &str) -> Option<Vec<String>> {
    let mut p = crate::protocol::request::RequestParser::default();
    let mut input = line.as_bytes().to_vec();
    input.push(b'\n');
    let lim = crate::protocol::request::Limits { max_bulk: 0, unauthenticated: false };
    match p.parse(&input, &mut 0, lim) {
        Ok(true) => {
            let (ranges, _) = p.args();
            Some(ranges.iter().map(|&(a, b)| String::from_utf8_lossy(&p.inline_buf()[a..b]).into_owned()).collect())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let text = "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\nfile appendonly.aof.2.incr.aof seq 2 type i\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.render(), text);
        assert_eq!(m.last_incr_seq(), 2);
        let spaced =
            Manifest { base: Some(AofFile { name: "a b".into(), seq: 1, kind: FileType::Base }), ..Default::default() };
        assert_eq!(Manifest::parse(&spaced.render()).unwrap(), spaced);
        assert!(Manifest::parse("file x seq 1 type z\n").is_err());
        assert!(Manifest::parse("file x seq 2 type i\nfile y seq 1 type i\n").is_err());
        assert!(Manifest::parse("file ../x seq 1 type b\n").is_err());
    }
}
