//! Writing a keyspace as an RDB v10 stream.
//!
//! Encodings follow what Redis 7.0 writes, so `redis-check-rdb` and
//! `redis-server` load the result and the dump is as small as Redis's:
//! integer-encoded and LZF-compressed strings, listpack hashes and sorted
//! sets while small, intsets, quicklist-2 lists of listpack nodes.

use super::packed::{ListpackWriter, write_intset};
use super::{CRC64, container, enc, lzf, op};
use crate::keyspace::Keyspace;
use crate::util::{fmt_d2string, fmt_i64, parse_i64};
use crate::value::Value;
use std::io::{self, Write};

/// Largest listpack node of a quicklist (Redis's `list-max-listpack-size -2`).
const LIST_NODE_BYTES: usize = 8 * 1024;
/// Progress is reported every this many keys.
pub const PROGRESS_EVERY: u64 = 1024;

/// What to write besides the data.
#[derive(Clone, Copy)]
pub struct SaveOptions {
    /// LZF-compress strings longer than 20 bytes (`rdbcompression`).
    pub compression: bool,
    /// Write the CRC-64 (`rdbchecksum`); zeros otherwise.
    pub checksum: bool,
    /// Mark the file as an AOF base (`aof-base` aux field).
    pub aof_base: bool,
    /// Microseconds to sleep after each key (`rdb-key-save-delay`, for tests).
    pub key_delay_us: i64,
}

/// An RDB encoder over any writer, keeping the running checksum.
pub struct RdbWriter<W: Write> {
    w: W,
    lzf: lzf::Compressor,
    scratch: Vec<u8>,
    digest: crc::Digest<'static, u64, crc::Table<16>>,
    opts: SaveOptions,
    written: u64,
}

impl<W: Write> RdbWriter<W> {
    /// Starts a stream (nothing written yet).
    pub fn new(w: W, opts: SaveOptions) -> RdbWriter<W> {
        RdbWriter { w, lzf: lzf::Compressor::default(), scratch: Vec::new(), digest: CRC64.digest(), opts, written: 0 }
    }

    /// Writes bytes as they are (they count towards the checksum); lets tests
    /// build dumps with encodings this writer never produces.
    #[cfg(test)]
    pub(crate) fn put_raw(&mut self, b: &[u8]) -> io::Result<()> {
        self.put(b)
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        if self.opts.checksum {
            self.digest.update(b);
        }
        self.written += b.len() as u64;
        self.w.write_all(b)
    }

    fn put_byte(&mut self, b: u8) -> io::Result<()> {
        self.put(&[b])
    }

    /// Writes a length in Redis's variable encoding.
    pub fn put_len(&mut self, n: u64) -> io::Result<()> {
        if n < 1 << 6 {
            self.put_byte(n as u8)
        } else if n < 1 << 14 {
            self.put(&[0x40 | (n >> 8) as u8, n as u8])
        } else if n <= u32::MAX as u64 {
            self.put_byte(0x80)?;
            self.put(&(n as u32).to_be_bytes())
        } else {
            self.put_byte(0x81)?;
            self.put(&n.to_be_bytes())
        }
    }

    /// Writes an integer in the 8/16/32-bit special encoding, if it fits.
    fn put_int_encoded(&mut self, v: i64) -> io::Result<bool> {
        if let Ok(x) = i8::try_from(v) {
            self.put(&[0xC0 | enc::INT8, x as u8])?;
        } else if let Ok(x) = i16::try_from(v) {
            self.put_byte(0xC0 | enc::INT16)?;
            self.put(&x.to_le_bytes())?;
        } else if let Ok(x) = i32::try_from(v) {
            self.put_byte(0xC0 | enc::INT32)?;
            self.put(&x.to_le_bytes())?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// Writes a string: as an integer when it is a short canonical one,
    /// LZF-compressed when long and compressible, else raw.
    pub fn put_string(&mut self, s: &[u8]) -> io::Result<()> {
        if s.len() <= 11
            && let Some(v) = parse_i64(s)
            && self.put_int_encoded(v)?
        {
            return Ok(());
        }
        if self.opts.compression && s.len() > 20 {
            let mut c = std::mem::take(&mut self.scratch);
            if self.lzf.compress(s, s.len() - 4, &mut c) {
                self.put_byte(0xC0 | enc::LZF)?;
                self.put_len(c.len() as u64)?;
                self.put_len(s.len() as u64)?;
                let r = self.put(&c);
                self.scratch = c;
                return r;
            }
            self.scratch = c;
        }
        self.put_len(s.len() as u64)?;
        self.put(s)
    }

    /// Writes an integer-valued string.
    pub fn put_int_string(&mut self, v: i64) -> io::Result<()> {
        if !self.put_int_encoded(v)? {
            let mut b = [0; 20];
            let s = fmt_i64(v, &mut b);
            self.put_len(s.len() as u64)?;
            self.put(s)?;
        }
        Ok(())
    }

    /// Writes the header and auxiliary fields.
    pub fn header(&mut self) -> io::Result<()> {
        self.put(format!("REDIS{:04}", super::VERSION).as_bytes())?;
        self.aux(b"redis-ver", crate::REDIS_VERSION.as_bytes())?;
        self.aux_int(b"redis-bits", 64)?;
        self.aux_int(b"ctime", crate::util::now_ms() / 1000)?;
        self.aux_int(b"used-mem", crate::memory::allocated() as i64)?;
        self.aux_int(b"aof-base", self.opts.aof_base as i64)
    }

    fn aux(&mut self, k: &[u8], v: &[u8]) -> io::Result<()> {
        self.put_byte(op::AUX)?;
        self.put_string(k)?;
        self.put_string(v)
    }

    fn aux_int(&mut self, k: &[u8], v: i64) -> io::Result<()> {
        self.put_byte(op::AUX)?;
        self.put_string(k)?;
        self.put_int_string(v)
    }

    /// Writes one key with its optional expiry.
    pub fn key(&mut self, key: &[u8], val: &Value, expire_ms: Option<i64>) -> io::Result<()> {
        if let Some(ms) = expire_ms {
            self.put_byte(op::EXPIRETIME_MS)?;
            self.put(&ms.to_le_bytes())?;
        }
        match val {
            Value::Int(i) => {
                self.put_byte(op::STRING)?;
                self.put_string(key)?;
                self.put_int_string(*i)
            }
            Value::Embed { len, buf } => {
                self.put_byte(op::STRING)?;
                self.put_string(key)?;
                self.put_string(&buf[..*len as usize])
            }
            Value::Raw(b) => {
                self.put_byte(op::STRING)?;
                self.put_string(key)?;
                self.put_string(b)
            }
            Value::List(l) => {
                self.put_byte(op::LIST_QUICKLIST_2)?;
                self.put_string(key)?;
                let mut nodes = Vec::new();
                let mut lp = ListpackWriter::new();
                for e in l.iter() {
                    if !lp.is_empty() && lp.len() + e.len() > LIST_NODE_BYTES {
                        nodes.push(std::mem::take(&mut lp).finish());
                    }
                    lp.push(e);
                }
                if !lp.is_empty() {
                    nodes.push(lp.finish());
                }
                self.put_len(nodes.len() as u64)?;
                for n in nodes {
                    self.put_len(container::PACKED)?;
                    self.put_string(&n)?;
                }
                Ok(())
            }
            Value::Hash(h) => {
                if h.encoding() == "listpack" {
                    self.put_byte(op::HASH_LISTPACK)?;
                    self.put_string(key)?;
                    let mut lp = ListpackWriter::new();
                    for (f, v) in h.iter() {
                        lp.push(f);
                        lp.push(v);
                    }
                    self.put_string(&lp.finish())
                } else {
                    self.put_byte(op::HASH)?;
                    self.put_string(key)?;
                    self.put_len(h.len() as u64)?;
                    for (f, v) in h.iter() {
                        self.put_string(f)?;
                        self.put_string(v)?;
                    }
                    Ok(())
                }
            }
            Value::Set(s) => {
                if let Some(ints) = s.as_intset() {
                    self.put_byte(op::SET_INTSET)?;
                    self.put_string(key)?;
                    self.put_string(&write_intset(ints))
                } else {
                    self.put_byte(op::SET)?;
                    self.put_string(key)?;
                    self.put_len(s.len() as u64)?;
                    let mut res = Ok(());
                    s.for_each(|m| {
                        if res.is_ok() {
                            res = self.put_string(m);
                        }
                    });
                    res
                }
            }
            Value::ZSet(z) => {
                if z.encoding() == "listpack" {
                    self.put_byte(op::ZSET_LISTPACK)?;
                    self.put_string(key)?;
                    let mut lp = ListpackWriter::new();
                    for (m, score) in z.iter() {
                        lp.push(m);
                        lp.push(fmt_d2string(score).as_bytes());
                    }
                    self.put_string(&lp.finish())
                } else {
                    self.put_byte(op::ZSET_2)?;
                    self.put_string(key)?;
                    self.put_len(z.len() as u64)?;
                    for (m, score) in z.iter() {
                        self.put_string(m)?;
                        self.put(&score.to_le_bytes())?;
                    }
                    Ok(())
                }
            }
        }
    }

    /// Writes every database of the keyspace; `progress` gets the running key count.
    pub fn keyspace(&mut self, ks: &Keyspace, progress: &mut dyn FnMut(u64)) -> io::Result<()> {
        let mut done = 0u64;
        for (i, db) in ks.dbs.iter().enumerate() {
            if db.dict.is_empty() {
                continue;
            }
            self.put_byte(op::SELECTDB)?;
            self.put_len(i as u64)?;
            self.put_byte(op::RESIZEDB)?;
            self.put_len(db.dict.len() as u64)?;
            self.put_len(db.expires.len() as u64)?;
            let check_expires = !db.expires.is_empty();
            for node in db.dict.iter() {
                let exp = if check_expires { db.expires.get(&node.key).copied() } else { None };
                self.key(&node.key, &node.val, exp)?;
                if self.opts.key_delay_us > 0 {
                    std::thread::sleep(std::time::Duration::from_micros(self.opts.key_delay_us as u64));
                }
                done += 1;
                if done.is_multiple_of(PROGRESS_EVERY) {
                    progress(done);
                }
            }
        }
        progress(done);
        Ok(())
    }

    /// Writes EOF and the checksum; returns the inner writer and total bytes.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.put_byte(op::EOF)?;
        let crc = if self.opts.checksum { self.digest.clone().finalize() } else { 0 };
        self.w.write_all(&crc.to_le_bytes())?;
        self.written += 8;
        Ok((self.w, self.written))
    }
}

/// Serialises a whole keyspace (header, data, EOF, checksum) into `w`.
pub fn write_rdb<W: Write>(
    w: W,
    ks: &Keyspace,
    opts: SaveOptions,
    progress: &mut dyn FnMut(u64),
) -> io::Result<(W, u64)> {
    let mut r = RdbWriter::new(w, opts);
    r.header()?;
    r.keyspace(ks, progress)?;
    r.finish()
}
