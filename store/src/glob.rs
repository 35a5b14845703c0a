//! Glob-style matching exactly as Redis 7.0's `stringmatchlen` (KEYS, SCAN
//! MATCH, CONFIG GET): `*`, `?`, `[abc]`, `[^a-z]`, and `\` to escape,
//! including its edge cases:
//! - an unclosed `[` takes the rest of the pattern as its class (`a[b`
//!   matches `ab`), and so does a range ending in `]` (`[a-]`);
//! - inside a class an escaped byte is compared case-sensitively even with
//!   `nocase`, and range ends compare as signed C chars;
//! - a non-empty pattern never matches the empty string (not even `*`);
//! - star groups nest at most 1000 deep (a deeper one fails to match).
//!
//! A star that cannot match the rest from any later position ends the whole
//! search (Redis's `skipLongerMatches`), so matching stays polynomial.

/// True when `s` matches `pattern`; `nocase` folds ASCII case.
pub fn matches(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, s, nocase, &mut skip_longer, 0)
}

/// The pattern byte at `i`, or 0 past the end (Redis reads the C string's NUL there).
fn at(p: &[u8], i: usize) -> u8 {
    p.get(i).copied().unwrap_or(0)
}

fn lower(c: i32) -> i32 {
    if (b'A' as i32..=b'Z' as i32).contains(&c) { c + 32 } else { c }
}

fn match_impl(pattern: &[u8], string: &[u8], nocase: bool, skip_longer: &mut bool, nesting: u32) -> bool {
    if nesting > 1000 {
        return false;
    }
    let (mut p, mut s) = (0usize, 0usize);
    let eq = |a: u8, b: u8| if nocase { a.eq_ignore_ascii_case(&b) } else { a == b };
    while p < pattern.len() && s < string.len() {
        match pattern[p] {
            b'*' => {
                while p < pattern.len() && at(pattern, p + 1) == b'*' {
                    p += 1;
                }
                if p + 1 == pattern.len() {
                    return true;
                }
                while s < string.len() {
                    if match_impl(&pattern[p + 1..], &string[s..], nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let negate = at(pattern, p) == b'^';
                if negate {
                    p += 1;
                }
                let c = string[s];
                let mut matched = false;
                loop {
                    let left = pattern.len().saturating_sub(p);
                    let pc = at(pattern, p);
                    if pc == b'\\' && left >= 2 {
                        p += 1;
                        matched |= pattern[p] == c;
                    } else if pc == b']' {
                        break;
                    } else if left == 0 {
                        // Unclosed: the class ran to the end of the pattern.
                        p -= 1;
                        break;
                    } else if left >= 3 && pattern[p + 1] == b'-' {
                        // C chars are signed: bytes >= 0x80 sort below 0.
                        let (mut lo, mut hi, mut ch) = (pc as i8 as i32, pattern[p + 2] as i8 as i32, c as i8 as i32);
                        if lo > hi {
                            std::mem::swap(&mut lo, &mut hi);
                        }
                        if nocase {
                            (lo, hi, ch) = (lower(lo), lower(hi), lower(ch));
                        }
                        p += 2;
                        matched |= ch >= lo && ch <= hi;
                    } else {
                        matched |= eq(pc, c);
                    }
                    p += 1;
                }
                if matched == negate {
                    return false;
                }
                s += 1;
            }
            c => {
                let c = if c == b'\\' && pattern.len() - p >= 2 {
                    p += 1;
                    pattern[p]
                } else {
                    c
                };
                if !eq(c, string[s]) {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == string.len() {
            while at(pattern, p) == b'*' {
                p += 1;
            }
            break;
        }
    }
    p >= pattern.len() && s == string.len()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn redis_glob_rules() {
        assert!(matches(b"*", b"anything", false));
        assert!(matches(b"h?llo", b"hello", false));
        assert!(matches(b"h*llo", b"heeeello", false));
        assert!(matches(b"h[ae]llo", b"hallo", false));
        assert!(!matches(b"h[^e]llo", b"hello", false));
        assert!(matches(b"h[a-b]llo", b"hbllo", false));
        assert!(matches(b"key:\\*", b"key:*", false));
        assert!(!matches(b"key:\\*", b"key:a", false));
        assert!(matches(b"HELLO", b"hello", true));
        assert!(!matches(b"a*a*a*a*a*a*a*a*b", &[b'a'; 100], false));
        assert!(matches(b"*a*b", b"xxaxxb", false));
        assert!(!matches(b"abc", b"ab", false));
        // Redis's edge cases.
        assert!(matches(b"a[b", b"ab", false));
        assert!(!matches(b"a[b", b"a[b", false));
        assert!(matches(b"[a-]", b"b", false) == matches(b"[a-]x", b"b", false));
        assert!(!matches(b"*", b"", false));
        assert!(matches(b"", b"", false));
        assert!(!matches(b"[\\A]", b"a", true));
        let deep: Vec<u8> = b"*a".repeat(1001);
        assert!(!matches(&deep, &b"a".repeat(1001), false));
        assert!(matches(&b"*a".repeat(999), &b"a".repeat(999), false));
    }
}
