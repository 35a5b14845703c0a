//! Number parsing and formatting with Redis's exact rules, time, and a small RNG.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    now_us() / 1000
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Parses a signed 64-bit integer the way Redis's `string2ll` does: optional
/// `-`, no `+`, no leading zeros, no spaces, no overflow.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 { None } else { Some((v as i64).wrapping_neg()) }
    } else {
        i64::try_from(v).ok()
    }
}

/// Parses a double the way Redis's `getDoubleFromObject` does: the whole
/// string, no leading space, `inf`/`-inf` accepted, NaN and overflow refused.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(s).ok()?;
    if text.is_empty() || text.as_bytes()[0].is_ascii_whitespace() {
        return None;
    }
    let v: f64 = text.parse().ok()?;
    if v.is_nan() {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    if v.is_infinite() && !lower.contains("inf") {
        return None; // overflow (strtod's ERANGE)
    }
    if v == 0.0 && lower.bytes().take_while(|c| *c != b'e').any(|c| (b'1'..=b'9').contains(&c)) {
        return None; // underflow (strtod's ERANGE)
    }
    Some(v)
}

/// Appends the decimal form of `v`.
pub fn push_i64(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(fmt_i64(v, &mut buf));
}

/// Formats `v` into `buf`, returning the used tail.
#[inline]
pub fn fmt_i64(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Formats a double as C's `%.17g` (how Redis 7.0 replies with scores).
pub fn fmt_g17(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    const P: i32 = 17;
    let sci = format!("{:.*e}", (P - 1) as usize, d);
    let (mant, exp) = sci.split_once('e').expect("exponent form");
    let x: i32 = exp.parse().expect("exponent");
    if (-4..P).contains(&x) {
        let fixed = format!("{:.*}", (P - 1 - x) as usize, d);
        trim_fraction(&fixed).to_string()
    } else {
        let m = trim_fraction(mant);
        format!("{m}e{}{:02}", if x < 0 { '-' } else { '+' }, x.unsigned_abs())
    }
}

/// Formats a double as Redis's `d2string` (listpack/RDB text of a score):
/// integers without a fraction, else `%.17g`.
pub fn fmt_d2string(d: f64) -> String {
    // Redis 7.0's d2string prints integral values within ±LLONG_MAX/2 as integers.
    if d.is_finite() && d.fract() == 0.0 && d.abs() < (i64::MAX / 2) as f64 && d != 0.0 {
        return (d as i64).to_string();
    }
    fmt_g17(d)
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s }
}

unsafe extern "C" {
    fn cowstore_ld_add(
        base: *const u8,
        base_len: usize,
        incr: *const u8,
        incr_len: usize,
        out: *mut u8,
        out_len: usize,
    ) -> i32;
}

/// Why a `long double` increment failed.
#[derive(Debug, PartialEq)]
pub enum FloatIncrError {
    /// The stored value is not a float.
    BadBase,
    /// The increment is not a float.
    BadIncrement,
    /// The sum is NaN or infinite.
    NotFinite,
}

/// Adds `incr` to `base` (absent = 0) in `long double` and returns the text
/// Redis would store (`%.17Lf` without trailing zeros).
pub fn long_double_add(base: Option<&[u8]>, incr: &[u8]) -> Result<Vec<u8>, FloatIncrError> {
    let mut out = vec![0u8; 5200];
    let (bp, bl) = base.map_or((std::ptr::null(), 0), |b| (b.as_ptr(), b.len()));
    // SAFETY: pointers and lengths describe live buffers; out is writable for out.len().
    let n = unsafe { cowstore_ld_add(bp, bl, incr.as_ptr(), incr.len(), out.as_mut_ptr(), out.len()) };
    match n {
        -1 => Err(FloatIncrError::BadBase),
        -2 => Err(FloatIncrError::BadIncrement),
        n if n < 0 => Err(FloatIncrError::NotFinite),
        n => {
            out.truncate(n as usize);
            Ok(out)
        }
    }
}

/// A small fast PRNG (wyrand) for sampling keys; not for secrets.
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Seeds from the clock and pid.
    pub fn from_entropy() -> Rng {
        Rng::new(now_us() as u64 ^ ((std::process::id() as u64) << 32))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.0 as u128).wrapping_mul((self.0 ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        for bad in [&b"9223372036854775808"[..], b"01", b"-0", b"+1", b" 1", b"1 ", b"", b"-", b"1.0"] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let mut b = [0; 20];
        assert_eq!(fmt_i64(i64::MIN, &mut b), b"-9223372036854775808");
    }

    #[test]
    fn doubles_print_like_printf_g17() {
        assert_eq!(fmt_g17(0.1), "0.10000000000000001");
        assert_eq!(fmt_g17(1e20), "1e+20");
        assert_eq!(fmt_g17(1.5), "1.5");
        assert_eq!(fmt_g17(3.0), "3");
        assert_eq!(fmt_g17(1e-5), "1.0000000000000001e-05");
        assert_eq!(fmt_g17(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(fmt_g17(0.30000000000000004), "0.30000000000000004");
    }

    #[test]
    fn doubles_parse_like_strtod() {
        assert_eq!(parse_f64(b"inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1e999"), None);
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
    }

    #[test]
    fn long_double_sums_match_redis() {
        assert_eq!(long_double_add(Some(b"10.5"), b"0.1").unwrap(), b"10.6");
        assert_eq!(long_double_add(Some(b"0.1"), b"0.2").unwrap(), b"0.3");
        assert_eq!(long_double_add(Some(b"1"), b"5e3").unwrap(), b"5001");
        assert_eq!(long_double_add(None, b"x"), Err(FloatIncrError::BadIncrement));
        assert_eq!(long_double_add(Some(b"abc"), b"1"), Err(FloatIncrError::BadBase));
    }
}
