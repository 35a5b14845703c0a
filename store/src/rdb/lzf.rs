//! LZF, the compression Redis applies to RDB strings (`rdbcompression yes`).
//!
//! The format is a sequence of runs, each starting with a control byte `c`:
//! - `c < 32`: `c + 1` literal bytes follow;
//! - otherwise a back-reference: length `(c >> 5) + 2` (when `c >> 5 == 7`
//!   the next byte adds to the length), offset `((c & 31) << 8) + next byte + 1`
//!   back from the current output position.
//!
//! The compressor finds 3-byte matches through a hash table of recent
//! positions, like liblzf; its output need not be identical to Redis's, only
//! valid, since readers only decompress.

const HASH_LOG: u32 = 16;
const MAX_LITERAL: usize = 32;
const MAX_OFFSET: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// An LZF compressor with a reusable match table.
///
/// The table is never cleared between inputs: an entry left by an earlier
/// input is only used if it points before the current position and the bytes
/// there really match, so stale entries cost nothing but a failed compare
/// (liblzf relies on the same property). Reusing it avoids zeroing 64 KB per
/// string, which would dominate the cost of saving millions of short values.
pub struct Compressor {
    table: Vec<u32>,
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor { table: vec![0; 1 << HASH_LOG] }
    }
}

impl Compressor {
    /// Compresses `input` into `out` (cleared first); returns false unless the
    /// result is smaller than `max_out` bytes.
    pub fn compress(&mut self, input: &[u8], max_out: usize, out: &mut Vec<u8>) -> bool {
        out.clear();
        let n = input.len();
        if n < 4 {
            return false;
        }
        let table = &mut self.table;
        let hash = |p: usize| -> usize {
            let v = u32::from(input[p]) << 16 | u32::from(input[p + 1]) << 8 | u32::from(input[p + 2]);
            (v.wrapping_mul(2654435761) >> (32 - HASH_LOG)) as usize
        };
        let mut lit_start = 0usize; // first byte of the pending literal run
        let mut ip = 0usize;
        while ip + 2 < n {
            let h = hash(ip);
            let cand = table[h] as usize;
            table[h] = (ip + 1) as u32; // stored +1 so 0 means empty
            if cand > 0 && cand - 1 < ip {
                let r = cand - 1;
                let off = ip - r;
                if off <= MAX_OFFSET && input[r..r + 3] == input[ip..ip + 3] {
                    let max_len = (n - ip).min(MAX_REF);
                    let mut len = 3;
                    while len < max_len && input[r + len] == input[ip + len] {
                        len += 1;
                    }
                    flush_literals(out, &input[lit_start..ip]);
                    let l = len - 2;
                    let o = off - 1;
                    if l < 7 {
                        out.push(((l << 5) | (o >> 8)) as u8);
                    } else {
                        out.push(((7 << 5) | (o >> 8)) as u8);
                        out.push((l - 7) as u8);
                    }
                    out.push(o as u8);
                    if out.len() >= max_out {
                        return false;
                    }
                    // Index the last two positions of the match (liblzf's
                    // VERY_FAST mode), then continue after it.
                    let end = ip + len;
                    for p in end.saturating_sub(2).max(ip + 1)..end {
                        if p + 2 < n {
                            table[hash(p)] = (p + 1) as u32;
                        }
                    }
                    ip = end;
                    lit_start = ip;
                    continue;
                }
            }
            ip += 1;
        }
        flush_literals(out, &input[lit_start..]);
        out.len() < max_out
    }
}

fn flush_literals(out: &mut Vec<u8>, mut lits: &[u8]) {
    while !lits.is_empty() {
        let k = lits.len().min(MAX_LITERAL);
        out.push((k - 1) as u8);
        out.extend_from_slice(&lits[..k]);
        lits = &lits[k..];
    }
}

/// Decompresses into exactly `out_len` bytes; `None` if the data is corrupt.
pub fn decompress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(out_len);
    let mut ip = 0;
    while ip < input.len() {
        let c = input[ip] as usize;
        ip += 1;
        if c < 32 {
            let k = c + 1;
            let lit = input.get(ip..ip + k)?;
            if out.len() + k > out_len {
                return None;
            }
            out.extend_from_slice(lit);
            ip += k;
        } else {
            let mut len = c >> 5;
            if len == 7 {
                len += *input.get(ip)? as usize;
                ip += 1;
            }
            len += 2;
            let back = ((c & 31) << 8) + *input.get(ip)? as usize + 1;
            ip += 1;
            if back > out.len() || out.len() + len > out_len {
                return None;
            }
            let start = out.len() - back;
            for i in 0..len {
                let b = out[start + i];
                out.push(b);
            }
        }
    }
    (out.len() == out_len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut samples: Vec<Vec<u8>> = vec![
            b"value:123".repeat(20),
            vec![0u8; 10000],
            (0..5000u32).map(|i| (i * 7 % 251) as u8).collect(),
            b"abcabcabcabcabcabcabcxyz".to_vec(),
        ];
        let mut v = b"value:5".to_vec();
        v.resize(100, 0);
        samples.push(v);
        let mut z = Compressor::default();
        let mut c = Vec::new();
        for s in samples.iter().chain(samples.iter().rev()) {
            assert!(z.compress(s, s.len(), &mut c), "compressible");
            assert_eq!(decompress(&c, s.len()).unwrap(), *s);
        }
        assert!(!z.compress(b"abcdefgh", 8, &mut c));
    }

    #[test]
    fn rejects_corrupt_input() {
        assert!(decompress(&[0xE0, 0xFF, 0x00], 20).is_none());
        assert!(decompress(&[5, b'a'], 6).is_none());
    }
}
