//! The packed blobs Redis stores inside RDB strings: listpack (7.0's small
//! hashes, sorted sets and list nodes), intset (small integer sets) and the
//! older ziplist (read only, for dumps from Redis before 7.0).
//!
//! Readers check every length against the blob, so a corrupt dump yields an
//! error, never an out-of-bounds read.

use crate::util::{fmt_i64, parse_i64};

/// An element of a packed blob: bytes or an integer.
#[derive(Debug, PartialEq)]
pub enum Elem<'a> {
    /// A string element.
    Str(&'a [u8]),
    /// An integer element (its text is the decimal form).
    Int(i64),
}

impl Elem<'_> {
    /// The element's bytes (integers in decimal).
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            Elem::Str(s) => s.to_vec(),
            Elem::Int(i) => fmt_i64(*i, &mut [0; 20]).to_vec(),
        }
    }
}

/// Builds a listpack.
pub struct ListpackWriter {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ListpackWriter {
    /// An empty listpack (header reserved).
    pub fn new() -> ListpackWriter {
        ListpackWriter { buf: vec![0; 6], count: 0 }
    }

    /// Bytes so far (to cap node sizes).
    pub fn len(&self) -> usize {
        self.buf.len() + 1
    }

    /// Number of elements so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// True when no element was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends an element; strings that are canonical integers are stored as integers, as Redis does.
    pub fn push(&mut self, s: &[u8]) {
        let start = self.buf.len();
        match parse_i64(s).filter(|_| s.len() <= 20) {
            Some(v) => self.push_int(v),
            None => self.push_str(s),
        }
        let entry_len = self.buf.len() - start;
        push_backlen(&mut self.buf, entry_len);
        self.count += 1;
    }

    fn push_int(&mut self, v: i64) {
        let b = &mut self.buf;
        if (0..=127).contains(&v) {
            b.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u16) & 0x1fff;
            b.push(0xC0 | (u >> 8) as u8);
            b.push(u as u8);
        } else if i16::try_from(v).is_ok() {
            b.push(0xF1);
            b.extend_from_slice(&(v as i16).to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            b.push(0xF2);
            b.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if i32::try_from(v).is_ok() {
            b.push(0xF3);
            b.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            b.push(0xF4);
            b.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn push_str(&mut self, s: &[u8]) {
        let b = &mut self.buf;
        let n = s.len();
        if n < 64 {
            b.push(0x80 | n as u8);
        } else if n < 4096 {
            b.push(0xE0 | (n >> 8) as u8);
            b.push(n as u8);
        } else {
            b.push(0xF0);
            b.extend_from_slice(&(n as u32).to_le_bytes());
        }
        b.extend_from_slice(s);
    }

    /// Finishes the listpack: terminator and header.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xFF);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let n = if self.count < 65535 { self.count as u16 } else { 65535 };
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

/// Appends the entry length, encoded to be read backwards (Redis's `lpEncodeBacklen`).
fn push_backlen(buf: &mut Vec<u8>, l: usize) {
    let l = l as u64;
    if l <= 127 {
        buf.push(l as u8);
    } else if l < 16383 {
        buf.extend_from_slice(&[(l >> 7) as u8, (l & 127) as u8 | 128]);
    } else if l < 2097151 {
        buf.extend_from_slice(&[(l >> 14) as u8, ((l >> 7) & 127) as u8 | 128, (l & 127) as u8 | 128]);
    } else if l < 268435455 {
        buf.extend_from_slice(&[
            (l >> 21) as u8,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]);
    } else {
        buf.extend_from_slice(&[
            (l >> 28) as u8,
            ((l >> 21) & 127) as u8 | 128,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]);
    }
}

fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

/// Parses a listpack into its elements.
pub fn read_listpack(b: &[u8]) -> Result<Vec<Elem<'_>>, String> {
    if b.len() < 7 {
        return Err("listpack too short".into());
    }
    let total = u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")) as usize;
    if total != b.len() {
        return Err(format!("listpack header says {total} bytes, blob has {}", b.len()));
    }
    let mut out = Vec::new();
    let mut p = 6;
    loop {
        let &c = b.get(p).ok_or("listpack without terminator")?;
        if c == 0xFF {
            break;
        }
        let take = |at: usize, n: usize| b.get(at..at + n).ok_or_else(|| "listpack entry out of bounds".to_string());
        let (elem, len) = if c & 0x80 == 0 {
            (Elem::Int(c as i64), 1)
        } else if c & 0xC0 == 0x80 {
            let n = (c & 0x3F) as usize;
            (Elem::Str(take(p + 1, n)?), 1 + n)
        } else if c & 0xE0 == 0xC0 {
            let u = (((c & 0x1F) as u16) << 8) | take(p + 1, 1)?[0] as u16;
            let v = if u >= 1 << 12 { u as i64 - (1 << 13) } else { u as i64 };
            (Elem::Int(v), 2)
        } else if c & 0xF0 == 0xE0 {
            let n = (((c & 0x0F) as usize) << 8) | take(p + 1, 1)?[0] as usize;
            (Elem::Str(take(p + 2, n)?), 2 + n)
        } else {
            match c {
                0xF0 => {
                    let n = u32::from_le_bytes(take(p + 1, 4)?.try_into().expect("4")) as usize;
                    (Elem::Str(take(p + 5, n)?), 5 + n)
                }
                0xF1 => (Elem::Int(i16::from_le_bytes(take(p + 1, 2)?.try_into().expect("2")) as i64), 3),
                0xF2 => {
                    let t = take(p + 1, 3)?;
                    let v = i32::from_le_bytes([0, t[0], t[1], t[2]]) >> 8;
                    (Elem::Int(v as i64), 4)
                }
                0xF3 => (Elem::Int(i32::from_le_bytes(take(p + 1, 4)?.try_into().expect("4")) as i64), 5),
                0xF4 => (Elem::Int(i64::from_le_bytes(take(p + 1, 8)?.try_into().expect("8"))), 9),
                _ => return Err(format!("bad listpack entry encoding 0x{c:02x}")),
            }
        };
        p += len + backlen_size(len);
        if p > b.len() {
            return Err("listpack entry out of bounds".into());
        }
        out.push(elem);
    }
    if p != b.len() - 1 {
        return Err("listpack has bytes after its terminator".into());
    }
    Ok(out)
}

/// Encodes sorted integers as an intset (smallest width that fits all).
pub fn write_intset(v: &[i64]) -> Vec<u8> {
    let width: u32 = if v.iter().all(|x| i16::try_from(*x).is_ok()) {
        2
    } else if v.iter().all(|x| i32::try_from(*x).is_ok()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + v.len() * width as usize);
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    for &x in v {
        out.extend_from_slice(&x.to_le_bytes()[..width as usize]);
    }
    out
}

/// Decodes an intset; its members must be strictly increasing.
pub fn read_intset(b: &[u8]) -> Result<Vec<i64>, String> {
    if b.len() < 8 {
        return Err("intset too short".into());
    }
    let width = u32::from_le_bytes(b[0..4].try_into().expect("4")) as usize;
    let n = u32::from_le_bytes(b[4..8].try_into().expect("4")) as usize;
    if !matches!(width, 2 | 4 | 8) || b.len() != 8 + n * width {
        return Err("intset header does not match its size".into());
    }
    let mut out = Vec::with_capacity(n);
    for ch in b[8..].chunks_exact(width) {
        let v = match width {
            2 => i16::from_le_bytes(ch.try_into().expect("2")) as i64,
            4 => i32::from_le_bytes(ch.try_into().expect("4")) as i64,
            _ => i64::from_le_bytes(ch.try_into().expect("8")),
        };
        if out.last().is_some_and(|&last| last >= v) {
            return Err("intset is not sorted".into());
        }
        out.push(v);
    }
    Ok(out)
}

/// Parses a ziplist (Redis before 7.0) into its elements.
pub fn read_ziplist(b: &[u8]) -> Result<Vec<Elem<'_>>, String> {
    if b.len() < 11 || u32::from_le_bytes(b[0..4].try_into().expect("4")) as usize != b.len() {
        return Err("ziplist header does not match its size".into());
    }
    let mut out = Vec::new();
    let mut p = 10;
    let take = |at: usize, n: usize| b.get(at..at + n).ok_or_else(|| "ziplist entry out of bounds".to_string());
    loop {
        let &first = b.get(p).ok_or("ziplist without terminator")?;
        if first == 0xFF {
            break;
        }
        p += if first < 254 { 1 } else { 5 };
        let &c = b.get(p).ok_or("ziplist entry out of bounds")?;
        let (elem, len) = match c >> 6 {
            0 => {
                let n = (c & 0x3F) as usize;
                (Elem::Str(take(p + 1, n)?), 1 + n)
            }
            1 => {
                let n = (((c & 0x3F) as usize) << 8) | take(p + 1, 1)?[0] as usize;
                (Elem::Str(take(p + 2, n)?), 2 + n)
            }
            2 => {
                let n = u32::from_be_bytes(take(p + 1, 4)?.try_into().expect("4")) as usize;
                (Elem::Str(take(p + 5, n)?), 5 + n)
            }
            _ => match c {
                0xC0 => (Elem::Int(i16::from_le_bytes(take(p + 1, 2)?.try_into().expect("2")) as i64), 3),
                0xD0 => (Elem::Int(i32::from_le_bytes(take(p + 1, 4)?.try_into().expect("4")) as i64), 5),
                0xE0 => (Elem::Int(i64::from_le_bytes(take(p + 1, 8)?.try_into().expect("8"))), 9),
                0xF0 => {
                    let t = take(p + 1, 3)?;
                    (Elem::Int((i32::from_le_bytes([0, t[0], t[1], t[2]]) >> 8) as i64), 4)
                }
                0xFE => (Elem::Int(take(p + 1, 1)?[0] as i8 as i64), 2),
                0xF1..=0xFD => (Elem::Int((c & 0x0F) as i64 - 1), 1),
                _ => return Err(format!("bad ziplist entry encoding 0x{c:02x}")),
            },
        };
        p += len;
        out.push(elem);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listpack_round_trip() {
        let long = vec![b'x'; 5000];
        let mid = vec![b'y'; 300];
        let items: Vec<&[u8]> = vec![
            b"0",
            b"127",
            b"128",
            b"-1",
            b"-4096",
            b"4095",
            b"30000",
            b"-8388608",
            b"8388607",
            b"2147483647",
            b"9223372036854775807",
            b"-9223372036854775808",
            b"012",
            b"",
            b"hello",
            &mid,
            &long,
        ];
        let mut w = ListpackWriter::new();
        for i in &items {
            w.push(i);
        }
        let lp = w.finish();
        let back: Vec<Vec<u8>> = read_listpack(&lp).unwrap().iter().map(Elem::to_vec).collect();
        assert_eq!(back, items.iter().map(|i| i.to_vec()).collect::<Vec<_>>());
    }

    #[test]
    fn intset_round_trip() {
        for v in [vec![1i64, 2, 3], vec![-70000, 5], vec![i64::MIN, 0, i64::MAX]] {
            assert_eq!(read_intset(&write_intset(&v)).unwrap(), v);
        }
        assert!(read_intset(&[2, 0, 0, 0, 9, 0, 0, 0]).is_err());
    }

    #[test]
    fn corrupt_listpack_is_an_error() {
        let mut w = ListpackWriter::new();
        w.push(b"hello world");
        let mut lp = w.finish();
        lp[6] = 0x8F; // claims 15 bytes
        assert!(read_listpack(&lp).is_err());
        assert!(read_listpack(&[7, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
