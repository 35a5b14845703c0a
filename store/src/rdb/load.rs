//! Reading an RDB stream into a keyspace.
//!
//! Accepts what Redis 7.0 writes (integer-encoded and LZF strings, listpack
//! hashes and sorted sets, intsets, quicklist-2 lists) and the older
//! encodings it still loads (plain lists/sets/hashes/sorted sets, ziplists,
//! quicklists of ziplists). Every length is checked against the data that
//! actually arrives, so a corrupt or truncated file is reported with the
//! byte offset where it went wrong and never allocates a claimed size.

use super::packed::{Elem, read_intset, read_listpack, read_ziplist};
use super::{CRC64, MAX_VERSION, container, enc, lzf, op};
use crate::keyspace::Keyspace;
use crate::sbytes::SBytes;
use crate::types::{Limits, hash::Hash, list::List, set::Set, zset::ZSet};
use crate::util::parse_f64;
use crate::value::Value;
use std::io::{self, Read};

/// A load failure: what and where.
#[derive(Debug)]
pub struct LoadError {
    /// Byte offset in the stream where the problem was found.
    pub offset: u64,
    /// What was wrong.
    pub msg: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at byte offset {})", self.msg, self.offset)
    }
}

/// How to load.
#[derive(Clone, Copy)]
pub struct LoadOptions {
    /// Verify the CRC-64 at the end (`rdbchecksum`).
    pub verify_checksum: bool,
    /// Skip keys whose expiry has passed (a master does; an AOF preamble must not).
    pub skip_expired: bool,
    /// Encoding limits for the loaded collections.
    pub limits: Limits,
}

/// What a load found.
#[derive(Debug, Default)]
pub struct LoadStats {
    /// RDB version of the file.
    pub version: u32,
    /// Keys added to the keyspace.
    pub keys_loaded: u64,
    /// Keys skipped because they had expired.
    pub keys_expired: u64,
    /// Bytes consumed, including the checksum.
    pub bytes: u64,
    /// `redis-ver` auxiliary field, if present.
    pub redis_ver: Option<String>,
    /// `ctime` auxiliary field, if present.
    pub ctime: Option<i64>,
    /// `aof-base` auxiliary field was 1.
    pub aof_base: bool,
}

struct Reader<R: Read> {
    r: R,
    pos: u64,
    digest: crc::Digest<'static, u64, crc::Table<16>>,
}

type Res<T> = Result<T, LoadError>;

impl<R: Read> Reader<R> {
    fn err<T>(&self, msg: impl Into<String>) -> Res<T> {
        Err(LoadError { offset: self.pos, msg: msg.into() })
    }

    fn io_err(&self, e: io::Error) -> LoadError {
        let msg = if e.kind() == io::ErrorKind::UnexpectedEof {
            "unexpected end of file (truncated RDB)".to_string()
        } else {
            format!("read error: {e}")
        };
        LoadError { offset: self.pos, msg }
    }

    fn exact_into(&mut self, buf: &mut [u8]) -> Res<()> {
        self.r.read_exact(buf).map_err(|e| self.io_err(e))?;
        self.digest.update(buf);
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn byte(&mut self) -> Res<u8> {
        let mut b = [0u8];
        self.exact_into(&mut b)?;
        Ok(b[0])
    }

    /// Reads `n` bytes, growing the buffer only as data arrives.
    fn bytes(&mut self, n: u64) -> Res<Vec<u8>> {
        let mut v = Vec::with_capacity(n.min(1 << 20) as usize);
        let got = (&mut self.r).take(n).read_to_end(&mut v).map_err(|e| self.io_err(e))?;
        self.digest.update(&v);
        self.pos += got as u64;
        if (got as u64) < n {
            return self.err("unexpected end of file (truncated RDB)");
        }
        Ok(v)
    }

    /// Reads a length, or a special-encoding marker (`Err(kind)` in the inner result).
    fn len_or_enc(&mut self) -> Res<Result<u64, u8>> {
        let b = self.byte()?;
        Ok(match b >> 6 {
            0 => Ok((b & 0x3F) as u64),
            1 => Ok((((b & 0x3F) as u64) << 8) | self.byte()? as u64),
            2 => match b {
                0x80 => {
                    let mut x = [0u8; 4];
                    self.exact_into(&mut x)?;
                    Ok(u32::from_be_bytes(x) as u64)
                }
                0x81 => {
                    let mut x = [0u8; 8];
                    self.exact_into(&mut x)?;
                    Ok(u64::from_be_bytes(x))
                }
                _ => return self.err(format!("unknown length encoding 0x{b:02x}")),
            },
            _ => Err(b & 0x3F),
        })
    }

    fn len(&mut self) -> Res<u64> {
        match self.len_or_enc()? {
            Ok(n) => Ok(n),
            Err(_) => self.err("expected a length, found a string encoding"),
        }
    }

    fn string(&mut self) -> Res<Vec<u8>> {
        match self.len_or_enc()? {
            Ok(n) => self.bytes(n),
            Err(enc::INT8) => Ok((self.byte()? as i8).to_string().into_bytes()),
            Err(enc::INT16) => {
                let mut x = [0u8; 2];
                self.exact_into(&mut x)?;
                Ok(i16::from_le_bytes(x).to_string().into_bytes())
            }
            Err(enc::INT32) => {
                let mut x = [0u8; 4];
                self.exact_into(&mut x)?;
                Ok(i32::from_le_bytes(x).to_string().into_bytes())
            }
            Err(enc::LZF) => {
                let clen = self.len()?;
                let ulen = self.len()?;
                let at = self.pos;
                let data = self.bytes(clen)?;
                // A corrupt length cannot make us allocate more than 256x the compressed data.
                if ulen > clen.saturating_mul(256).max(64) {
                    return Err(LoadError { offset: at, msg: "LZF string claims an impossible length".into() });
                }
                lzf::decompress(&data, ulen as usize)
                    .ok_or(LoadError { offset: at, msg: "invalid LZF compressed string".into() })
            }
            Err(e) => self.err(format!("unknown string encoding {e}")),
        }
    }

    fn double_text(&mut self) -> Res<f64> {
        let n = self.byte()?;
        match n {
            253 => self.err("NaN score"),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let b = self.bytes(n as u64)?;
                match parse_f64(&b) {
                    Some(v) => Ok(v),
                    None => self.err("invalid score"),
                }
            }
        }
    }

    fn double_bin(&mut self) -> Res<f64> {
        let mut x = [0u8; 8];
        self.exact_into(&mut x)?;
        let v = f64::from_le_bytes(x);
        if v.is_nan() {
            return self.err("NaN score");
        }
        Ok(v)
    }
}

/// Reads an RDB stream into `ks` (which should be empty).
pub fn load_rdb<R: Read>(r: R, ks: &mut Keyspace, opts: LoadOptions) -> Result<LoadStats, LoadError> {
    let mut rd = Reader { r, pos: 0, digest: CRC64.digest() };
    let mut magic = [0u8; 9];
    rd.exact_into(&mut magic)?;
    if &magic[..5] != b"REDIS" {
        return Err(LoadError { offset: 0, msg: "wrong signature trying to load DB from file".into() });
    }
    let version: u32 = std::str::from_utf8(&magic[5..]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    if !(1..=MAX_VERSION).contains(&version) {
        return Err(LoadError {
            offset: 5,
            msg: format!("can't handle RDB format version {}", String::from_utf8_lossy(&magic[5..])),
        });
    }
    let mut st = LoadStats { version, ..Default::default() };
    let mut db = 0usize;
    let mut expire: Option<i64> = None;
    loop {
        let t = rd.byte()?;
        match t {
            op::EXPIRETIME_MS => {
                let mut x = [0u8; 8];
                rd.exact_into(&mut x)?;
                expire = Some(i64::from_le_bytes(x));
                continue;
            }
            op::EXPIRETIME => {
                let mut x = [0u8; 4];
                rd.exact_into(&mut x)?;
                expire = Some(i32::from_le_bytes(x) as i64 * 1000);
                continue;
            }
            op::IDLE => {
                rd.len()?;
                continue;
            }
            op::FREQ => {
                rd.byte()?;
                continue;
            }
            op::SELECTDB => {
                let n = rd.len()?;
                if n as usize >= ks.dbs.len() {
                    return rd.err(format!(
                        "data file was created with a server configured to handle more than {} databases",
                        ks.dbs.len()
                    ));
                }
                db = n as usize;
                continue;
            }
            op::RESIZEDB => {
                rd.len()?;
                rd.len()?;
                continue;
            }
            op::AUX => {
                let k = rd.string()?;
                let v = rd.string()?;
                match &k[..] {
                    b"redis-ver" => st.redis_ver = Some(String::from_utf8_lossy(&v).into_owned()),
                    b"ctime" => st.ctime = std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()),
                    b"aof-base" => st.aof_base = v == b"1",
                    _ => {}
                }
                continue;
            }
            op::FUNCTION2 => {
                rd.string()?;
                crate::warning!("RDB file contains a function library; cowstore has no functions, skipping it");
                continue;
            }
            op::MODULE_AUX => return rd.err("module data in RDB is not supported"),
            op::EOF => {
                let computed = rd.digest.clone().finalize();
                if version >= 5 {
                    let mut x = [0u8; 8];
                    let at = rd.pos;
                    rd.r.read_exact(&mut x).map_err(|e| rd.io_err(e))?;
                    rd.pos += 8;
                    let stored = u64::from_le_bytes(x);
                    if opts.verify_checksum && stored != 0 && stored != computed {
                        return Err(LoadError {
                            offset: at,
                            msg: format!("wrong RDB checksum expected: ({stored:016x}) got: ({computed:016x})"),
                        });
                    }
                }
                st.bytes = rd.pos;
                return Ok(st);
            }
            _ => {}
        }
        let key_at = rd.pos - 1;
        let key = rd.string()?;
        let val = read_value(&mut rd, t, &opts.limits)?;
        let exp = expire.take();
        let Some(val) = val else {
            crate::warning!("RDB has an empty collection at key '{}'; skipping it", String::from_utf8_lossy(&key));
            continue;
        };
        if opts.skip_expired && exp.is_some_and(|w| w < ks.now) {
            st.keys_expired += 1;
            continue;
        }
        let d = &mut ks.dbs[db];
        if d.dict.contains_key(&key) {
            return Err(LoadError {
                offset: key_at,
                msg: format!("duplicate key '{}'", String::from_utf8_lossy(&key)),
            });
        }
        let k = SBytes::new(&key);
        if let Some(w) = exp {
            d.expires.insert_new(k.clone(), w);
        }
        d.dict.insert_new(k, val);
        st.keys_loaded += 1;
    }
}

/// Reads a value of type `t`; `None` for an empty collection.
fn read_value<R: Read>(rd: &mut Reader<R>, t: u8, lim: &Limits) -> Res<Option<Value>> {
    let at = rd.pos;
    let bad = |msg: String| LoadError { offset: at, msg };
    let val = match t {
        op::STRING => return Ok(Some(Value::string(&rd.string()?))),
        op::LIST => {
            let n = rd.len()?;
            let mut l = List::new();
            for _ in 0..n {
                l.push_back(&rd.string()?);
            }
            Value::List(Box::new(l))
        }
        op::SET => {
            let n = rd.len()?;
            let mut s = Set::new();
            for _ in 0..n {
                s.insert(&rd.string()?, lim);
            }
            Value::Set(Box::new(s))
        }
        op::ZSET | op::ZSET_2 => {
            let n = rd.len()?;
            let mut z = ZSet::new();
            for _ in 0..n {
                let m = rd.string()?;
                let score = if t == op::ZSET { rd.double_text()? } else { rd.double_bin()? };
                z.insert(&m, score, lim);
            }
            Value::ZSet(Box::new(z))
        }
        op::HASH => {
            let n = rd.len()?;
            let mut h = Hash::new();
            for _ in 0..n {
                let f = rd.string()?;
                let v = rd.string()?;
                h.insert(&f, &v, lim);
            }
            Value::Hash(Box::new(h))
        }
        op::SET_INTSET => {
            let blob = rd.string()?;
            let mut s = Set::new();
            for v in read_intset(&blob).map_err(bad)? {
                s.insert(v.to_string().as_bytes(), lim);
            }
            Value::Set(Box::new(s))
        }
        op::SET_LISTPACK => {
            let blob = rd.string()?;
            let mut s = Set::new();
            for e in read_listpack(&blob).map_err(bad)? {
                s.insert(&e.to_vec(), lim);
            }
            Value::Set(Box::new(s))
        }
        op::LIST_ZIPLIST => {
            let blob = rd.string()?;
            let mut l = List::new();
            for e in read_ziplist(&blob).map_err(bad)? {
                l.push_back(&e.to_vec());
            }
            Value::List(Box::new(l))
        }
        op::LIST_QUICKLIST | op::LIST_QUICKLIST_2 => {
            let nodes = rd.len()?;
            let mut l = List::new();
            for _ in 0..nodes {
                let cont = if t == op::LIST_QUICKLIST_2 { rd.len()? } else { container::PACKED };
                let node_at = rd.pos;
                let blob = rd.string()?;
                let nbad = |msg: String| LoadError { offset: node_at, msg };
                match (t, cont) {
                    (_, container::PLAIN) => l.push_back(&blob),
                    (op::LIST_QUICKLIST_2, container::PACKED) => {
                        for e in read_listpack(&blob).map_err(nbad)? {
                            l.push_back(&e.to_vec());
                        }
                    }
                    (op::LIST_QUICKLIST, _) => {
                        for e in read_ziplist(&blob).map_err(nbad)? {
                            l.push_back(&e.to_vec());
                        }
                    }
                    _ => return Err(nbad(format!("unknown quicklist container {cont}"))),
                }
            }
            Value::List(Box::new(l))
        }
        op::HASH_LISTPACK | op::HASH_ZIPLIST => {
            let blob = rd.string()?;
            let elems = if t == op::HASH_LISTPACK { read_listpack(&blob) } else { read_ziplist(&blob) }.map_err(bad)?;
            if elems.len() % 2 != 0 {
                return Err(bad("hash blob has an odd number of elements".into()));
            }
            let mut h = Hash::new();
            for p in elems.chunks(2) {
                if !h.insert(&p[0].to_vec(), &p[1].to_vec(), lim) {
                    return Err(bad("hash blob has a duplicate field".into()));
                }
            }
            Value::Hash(Box::new(h))
        }
        op::ZSET_LISTPACK | op::ZSET_ZIPLIST => {
            let blob = rd.string()?;
            let elems = if t == op::ZSET_LISTPACK { read_listpack(&blob) } else { read_ziplist(&blob) }.map_err(bad)?;
            if elems.len() % 2 != 0 {
                return Err(bad("sorted set blob has an odd number of elements".into()));
            }
            let mut z = ZSet::new();
            for p in elems.chunks(2) {
                let score = match &p[1] {
                    Elem::Int(i) => *i as f64,
                    Elem::Str(s) => parse_f64(s).ok_or_else(|| bad("invalid score in sorted set blob".into()))?,
                };
                z.insert(&p[0].to_vec(), score, lim);
            }
            Value::ZSet(Box::new(z))
        }
        op::HASH_ZIPMAP => return Err(bad("zipmap-encoded hashes (Redis before 2.6) are not supported".into())),
        15 | 19 | 21 => return Err(bad("streams are not supported by cowstore".into())),
        6 | 7 => return Err(bad("module types are not supported by cowstore".into())),
        _ => return Err(bad(format!("unknown RDB value type {t}"))),
    };
    let empty = match &val {
        Value::List(l) => l.is_empty(),
        Value::Hash(h) => h.is_empty(),
        Value::Set(s) => s.is_empty(),
        Value::ZSet(z) => z.is_empty(),
        _ => false,
    };
    Ok((!empty).then_some(val))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::save::{RdbWriter, SaveOptions};

    /// Builds a dump by hand with the pre-7.0 plain encodings (types 1, 2, 3,
    /// 4 and an old seconds expiry) that Redis 7.0 still loads.
    fn old_style_dump() -> Vec<u8> {
        let mut w = RdbWriter::new(
            Vec::new(),
            SaveOptions { compression: false, checksum: true, aof_base: false, key_delay_us: 0 },
        );
        w.header().unwrap();
        let raw = |w: &mut RdbWriter<Vec<u8>>, t: u8, key: &[u8]| {
            w.put_raw(&[t]).unwrap();
            w.put_string(key).unwrap();
        };
        raw(&mut w, op::LIST, b"oldlist");
        w.put_len(2).unwrap();
        w.put_string(b"a").unwrap();
        w.put_string(b"12").unwrap();
        raw(&mut w, op::SET, b"oldset");
        w.put_len(2).unwrap();
        w.put_string(b"x").unwrap();
        w.put_string(b"y").unwrap();
        raw(&mut w, op::ZSET, b"oldzset");
        w.put_len(2).unwrap();
        w.put_string(b"m1").unwrap();
        w.put_raw(&[3]).unwrap();
        w.put_raw(b"1.5").unwrap();
        w.put_string(b"m2").unwrap();
        w.put_raw(&[254]).unwrap(); // +inf
        w.put_raw(&[op::EXPIRETIME]).unwrap();
        w.put_raw(&2_000_000_000i32.to_le_bytes()).unwrap();
        raw(&mut w, op::HASH, b"oldhash");
        w.put_len(1).unwrap();
        w.put_string(b"f").unwrap();
        w.put_string(b"v").unwrap();
        w.finish().unwrap().0
    }

    #[test]
    fn loads_old_plain_types() {
        let mut ks = Keyspace::new(16);
        let opts = LoadOptions { verify_checksum: true, skip_expired: true, limits: Limits::default() };
        let st = load_rdb(&old_style_dump()[..], &mut ks, opts).unwrap();
        assert_eq!(st.keys_loaded, 4);
        let d = &ks.dbs[0];
        let Some(Value::List(l)) = d.dict.get(b"oldlist") else { panic!("list") };
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![&b"a"[..], b"12"]);
        let Some(Value::ZSet(z)) = d.dict.get(b"oldzset") else { panic!("zset") };
        assert_eq!(z.iter().map(|(_, s)| s).collect::<Vec<_>>(), vec![1.5, f64::INFINITY]);
        assert_eq!(d.expires.get(b"oldhash"), Some(&2_000_000_000_000));
        let Some(Value::Set(s)) = d.dict.get(b"oldset") else { panic!("set") };
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn truncation_anywhere_is_an_error_never_a_panic() {
        let dump = old_style_dump();
        for cut in 0..dump.len() {
            let mut ks = Keyspace::new(16);
            let opts = LoadOptions { verify_checksum: true, skip_expired: true, limits: Limits::default() };
            assert!(load_rdb(&dump[..cut], &mut ks, opts).is_err(), "cut at {cut}");
        }
        for i in 9..dump.len() {
            let mut bad = dump.clone();
            bad[i] ^= 0x5a;
            let mut ks = Keyspace::new(16);
            let opts = LoadOptions { verify_checksum: true, skip_expired: true, limits: Limits::default() };
            assert!(load_rdb(&bad[..], &mut ks, opts).is_err(), "flip at {i}");
        }
    }
}
