//! The Go toolchain version, from the `.go.buildinfo` blob
//! (golang/go src/debug/buildinfo/buildinfo.go).
//!
//! The blob starts with a 14-byte magic, then pointer size and flags. Since
//! Go 1.18 (flag bit 1) the version string follows inline at offset 32 as a
//! varint-prefixed string; before, offset 16 holds a pointer to a Go string
//! header. Both are handled: parsing older layouts is what lets us tell the
//! user *which* too-old version they have.

use super::elf::ElfImage;
use super::read;

const MAGIC: &[u8] = b"\xff Go buildinf:";
const FLAG_BIG_ENDIAN: u8 = 1;
const FLAG_INLINE: u8 = 2;
/// Longer "version" strings are garbage, not a toolchain name.
const MAX_VERSION_LEN: usize = 256;

/// The recorded version string, e.g. `go1.27.3`, or `None` when the binary
/// has no readable build info.
pub(crate) fn find_version(img: &ElfImage, data: &[u8]) -> Option<String> {
    let by_section = img
        .section_data(data, ".go.buildinfo")
        .and_then(|blob| parse_blob(img, data, blob));
    if by_section.is_some() {
        return by_section;
    }
    // Section headers can be stripped; the blob is 16-byte aligned in a
    // writable segment, as debug/buildinfo searches for it.
    for seg in img.segments.iter().filter(|s| s.writable) {
        let Some(bytes) = img.tail(data, seg.vaddr) else {
            continue;
        };
        let mut off = 0usize;
        while let Some(window) = bytes.get(off..) {
            if window.len() < 32 {
                break;
            }
            let found = window
                .starts_with(MAGIC)
                .then(|| parse_blob(img, data, window))
                .flatten();
            if found.is_some() {
                return found;
            }
            off = off.checked_add(16)?;
        }
    }
    None
}

fn parse_blob(img: &ElfImage, data: &[u8], blob: &[u8]) -> Option<String> {
    if !blob.starts_with(MAGIC) {
        return None;
    }
    let ptr_size = read::u8_at(blob, 14)?;
    let flags = read::u8_at(blob, 15)?;
    let raw = if flags & FLAG_INLINE != 0 {
        let mut pos = 32;
        let len = read::us(read::uvarint(blob, &mut pos)?)?;
        if len > MAX_VERSION_LEN {
            return None;
        }
        read::bytes(blob, pos, len)?.to_vec()
    } else {
        if flags & FLAG_BIG_ENDIAN != 0 || ptr_size != 8 {
            return None;
        }
        let hdr = read::u64_at(blob, 16)?;
        let str_ptr = img.ptr(data, hdr)?;
        let len = read::us(img.ptr(data, hdr.checked_add(8)?)?)?;
        if len > MAX_VERSION_LEN {
            return None;
        }
        img.slice(data, str_ptr, len)?.to_vec()
    };
    let s = String::from_utf8(raw).ok()?;
    (!s.is_empty()).then_some(s)
}

/// `(major, minor, patch)` of a Go version string: `go1.27.3`, `go1.22rc1`
/// (→ 1.22.0), `go1.25.0 X:greenteagc`, `devel go1.26-abcdef …`.
pub(crate) fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let start = s.find("go1.")?;
    let prefix = s.get(..start)?;
    if !(prefix.is_empty() || prefix.trim_start().starts_with("devel")) {
        return None;
    }
    let rest = s.get(start + 2..)?;
    let mut nums = [0u32; 3];
    let mut parts = rest.split('.');
    for (i, slot) in nums.iter_mut().enumerate() {
        let Some(part) = parts.next() else { break };
        let digits = part.get(
            ..part
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(part.len()),
        )?;
        if digits.is_empty() {
            if i < 2 {
                return None;
            }
            break;
        }
        *slot = digits.parse().ok()?;
        if digits.len() != part.len() {
            break; // "22rc1", "3 X:..": the rest is not part of the number
        }
    }
    Some((nums[0], nums[1], nums[2]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions() {
        assert_eq!(parse_version("go1.27.3"), Some((1, 27, 3)));
        assert_eq!(parse_version("go1.21.13"), Some((1, 21, 13)));
        assert_eq!(parse_version("go1.22"), Some((1, 22, 0)));
        assert_eq!(parse_version("go1.22rc1"), Some((1, 22, 0)));
        assert_eq!(parse_version("go1.25.0 X:greenteagc"), Some((1, 25, 0)));
        assert_eq!(
            parse_version("devel go1.26-abcdef Mon Jan 1"),
            Some((1, 26, 0))
        );
        assert_eq!(parse_version("go1."), None);
        assert_eq!(parse_version("gccgo"), None);
        assert_eq!(parse_version("xgo1.2"), None);
        assert_eq!(parse_version("go1.99999999999"), None);
    }
}
