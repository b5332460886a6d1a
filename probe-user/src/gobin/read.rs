//! Bounds-checked little-endian readers over byte slices.
//!
//! Every parser in `gobin` runs on untrusted bytes, so nothing here indexes
//! or does arithmetic that could panic: a read past the end is `None`.

pub(crate) fn bytes(b: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    b.get(off..off.checked_add(len)?)
}

pub(crate) fn u8_at(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = bytes(b, off, 4)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

pub(crate) fn i32_at(b: &[u8], off: usize) -> Option<i32> {
    u32_at(b, off).map(|v| v as i32)
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s = bytes(b, off, 8)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

/// Go's unsigned varint (`encoding/binary.Uvarint`); `None` when truncated or
/// longer than 64 bits.
pub(crate) fn uvarint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = u8_at(b, *pos)?;
        *pos = pos.checked_add(1)?;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return None;
        }
        v |= bits << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// A NUL-terminated string starting at `off`, bounded by `b` and `max` bytes.
pub(crate) fn cstr(b: &[u8], off: usize, max: usize) -> Option<&[u8]> {
    let tail = b.get(off..)?;
    let tail = tail.get(..max.min(tail.len()))?;
    let n = tail.iter().position(|&c| c == 0)?;
    tail.get(..n)
}

/// Converts a file or table offset to `usize`, failing instead of truncating.
pub(crate) fn us(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_bounds() {
        let mut p = 0;
        assert_eq!(uvarint(&[0xac, 0x02], &mut p), Some(300));
        assert_eq!(p, 2);
        let mut p = 0;
        assert_eq!(uvarint(&[0x80], &mut p), None);
        let mut p = 0;
        assert_eq!(uvarint(&[0xff; 11], &mut p), None);
        assert_eq!(u32_at(&[1, 2, 3], 0), None);
        assert_eq!(u32_at(&[1, 0, 0, 0], usize::MAX), None);
        assert_eq!(bytes(&[1, 2], usize::MAX, 2), None);
        assert_eq!(cstr(b"ab\0c", 0, 16), Some(&b"ab"[..]));
        assert_eq!(cstr(b"abc", 0, 16), None);
        assert_eq!(cstr(b"abc\0", 0, 2), None);
    }
}
