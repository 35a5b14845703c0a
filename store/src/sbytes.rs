//! `SBytes`: an immutable byte string in 16 bytes, stored inline when short.
//!
//! Keys and collection members are the bulk of a keyspace's allocations. A
//! `Box<[u8]>` costs 16 bytes plus a heap block of at least 8 (usually 16)
//! bytes; `SBytes` keeps strings of up to [`INLINE_MAX`] bytes inside its own 16
//! bytes (`"key:1234567"` needs no allocation at all) and falls back to one
//! exact-size heap block for longer ones.

use std::alloc::{Layout, alloc, dealloc};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::ptr::NonNull;

/// Longest string kept inline.
pub const INLINE_MAX: usize = 12;

/// An immutable byte string: inline up to 12 bytes, else one heap block.
#[repr(C, align(8))]
pub struct SBytes {
    len: u32,
    /// Inline bytes 0..4; bytes 4..12 share storage with the heap pointer.
    head: [u8; 4],
    tail: Tail,
}

#[repr(C)]
#[derive(Clone, Copy)]
union Tail {
    inline: [u8; 8],
    heap: NonNull<u8>,
}

// SAFETY: SBytes owns its heap block exclusively and never mutates through a
// shared reference, exactly like `Box<[u8]>`.
unsafe impl Send for SBytes {}
unsafe impl Sync for SBytes {}

const _: () = assert!(std::mem::size_of::<SBytes>() == 16);

impl SBytes {
    /// Copies `b` into a new `SBytes`. Panics only if `b` is 4 GiB or longer,
    /// which the protocol limits (`proto-max-bulk-len`) rule out.
    pub fn new(b: &[u8]) -> SBytes {
        let len = u32::try_from(b.len()).expect("SBytes longer than 4 GiB");
        let mut s = SBytes { len, head: [0; 4], tail: Tail { inline: [0; 8] } };
        if b.len() <= INLINE_MAX {
            // SAFETY: head and tail are laid out contiguously (repr(C), offsets 4..16).
            unsafe {
                let dst = (&raw mut s.head).cast::<u8>();
                std::ptr::copy_nonoverlapping(b.as_ptr(), dst, b.len());
            }
        } else {
            let layout = Layout::array::<u8>(b.len()).expect("layout");
            // SAFETY: layout is non-zero sized (len > INLINE_MAX).
            let p = unsafe { alloc(layout) };
            let p = NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
            // SAFETY: p points to b.len() writable bytes.
            unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), p.as_ptr(), b.len()) };
            s.tail = Tail { heap: p };
        }
        s
    }

    /// The empty string.
    pub const fn empty() -> SBytes {
        SBytes { len: 0, head: [0; 4], tail: Tail { inline: [0; 8] } }
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when the string has no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes this value owns beyond its own 16 (for memory accounting).
    pub fn heap_size(&self) -> usize {
        if self.len() > INLINE_MAX { self.len() } else { 0 }
    }

    /// The bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        let len = self.len as usize;
        // SAFETY: inline strings live in head+tail (contiguous); heap strings in
        // the block this value owns, of exactly `len` bytes.
        unsafe {
            if len <= INLINE_MAX {
                std::slice::from_raw_parts((&raw const self.head).cast::<u8>(), len)
            } else {
                std::slice::from_raw_parts(self.tail.heap.as_ptr(), len)
            }
        }
    }
}

impl Drop for SBytes {
    fn drop(&mut self) {
        if self.len() > INLINE_MAX {
            // SAFETY: allocated in `new` with this exact layout.
            unsafe { dealloc(self.tail.heap.as_ptr(), Layout::array::<u8>(self.len()).expect("layout")) }
        }
    }
}

impl Clone for SBytes {
    fn clone(&self) -> SBytes {
        SBytes::new(self.as_bytes())
    }
}

impl Deref for SBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for SBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::borrow::Borrow<[u8]> for SBytes {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for SBytes {
    fn eq(&self, o: &SBytes) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}
impl Eq for SBytes {}

impl PartialOrd for SBytes {
    fn partial_cmp(&self, o: &SBytes) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for SBytes {
    fn cmp(&self, o: &SBytes) -> std::cmp::Ordering {
        self.as_bytes().cmp(o.as_bytes())
    }
}

impl Hash for SBytes {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_bytes().hash(h)
    }
}

impl From<&[u8]> for SBytes {
    fn from(b: &[u8]) -> SBytes {
        SBytes::new(b)
    }
}

impl fmt::Debug for SBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_round_trip() {
        for n in [0usize, 1, 4, 5, 11, 12, 13, 100, 70000] {
            let v: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            let s = SBytes::new(&v);
            assert_eq!(s.as_bytes(), &v[..]);
            assert_eq!(s.clone().as_bytes(), &v[..]);
            assert_eq!(s.heap_size(), if n > INLINE_MAX { n } else { 0 });
        }
    }
}
