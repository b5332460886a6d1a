//! The Go version of a binary whose `.go.buildinfo` is gone (release
//! binaries run through `objcopy --remove-section .go.buildinfo`, or a
//! damaged section): inferred from what the runtime itself still needs, and
//! refused only when that evidence disagrees.
//!
//! The version string comes from `runtime.buildVersion`, a Go string
//! variable the linker fills with the toolchain name. It has no symbol in a
//! stripped binary, and a binary holds many `go1.x` strings (the `go`
//! command alone has hundreds), so we do not pick one from rodata: we find
//! the variable through the code that reads it. `runtime.schedinit` does
//! `if buildVersion == "" { buildVersion = "unknown" }` in every supported
//! version (golang/go src/runtime/proc.go), so the RIP-relative operands of
//! `schedinit` include the variable's address, whose (ptr, len) names the
//! string. Only without `schedinit` to decode (non-amd64, a damaged function
//! table) does every string header in the data segments that holds a
//! well-formed version count, and then all of them must agree.
//!
//! The string is then checked against facts of the binary that depend on the
//! toolchain, not on anything a user sets:
//! - the pclntab magic: `0xfffffff1` since Go 1.20, `0xfffffff0` for 1.18–1.19;
//! - `pcHeader.textStart`: set up to Go 1.25, zero since 1.26;
//! - the map implementation: `internal/runtime/maps.*` (swiss maps) exists
//!   only since Go 1.24; the classic `runtime.hashGrow`/`evacuate` only up
//!   to 1.25 (1.24 and 1.25 can link either, `GOEXPERIMENT=noswissmap`);
//! - the per-version offsets table, and DWARF when present: the table's
//!   `g.goid`/`g.gopc` for the claimed version must be what DWARF says.

use iced_x86::{Decoder, DecoderOptions};

use super::buildinfo::parse_version;
use super::elf::ElfImage;
use super::pclntab::{MAGIC_GO118, MAGIC_GO120, Pclntab};
use super::read;

/// How the version of a binary was decided (the report's `go_version_source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VersionSource {
    /// Recorded by the toolchain in `.go.buildinfo`.
    BuildInfo,
    /// `.go.buildinfo` missing or unreadable: `runtime.buildVersion`,
    /// confirmed by the binary's own structure (see `gobin::infer`).
    Inferred,
}

impl VersionSource {
    /// The report's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BuildInfo => "buildinfo",
            Self::Inferred => "inferred",
        }
    }
}

/// Longest plausible version string (`go1.27.3 X:nodwarf5,greenteagc`).
const MAX_VERSION: u64 = 128;
/// `runtime.schedinit` is a few KiB; decode no further than this.
const MAX_SCHEDINIT: usize = 64 * 1024;

/// Facts of the binary that bound its Go version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Evidence {
    pub pclntab_magic: u32,
    /// `pcHeader.textStart` (relocations applied).
    pub text_start: u64,
    /// Some `internal/runtime/maps.*` function is linked.
    pub swiss_maps: bool,
    /// The classic map's grow path (`runtime.hashGrow`/`evacuate`) is linked.
    pub classic_maps: bool,
}

/// The version named by `runtime.buildVersion`, and how it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Named {
    pub version: String,
    /// `true`: through `runtime.schedinit`'s reference to the variable.
    pub by_code: bool,
}

/// Why the version cannot be inferred.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum InferError {
    /// No `runtime.buildVersion` string found at all.
    NotFound,
    /// Several different version strings, none confirmed by code.
    Ambiguous(Vec<String>),
}

/// Finds the string `runtime.buildVersion` holds. `schedinit` is the code
/// of `runtime.schedinit` (from its entry at `entry`), when decodable.
pub(crate) fn build_version(
    img: &ElfImage,
    data: &[u8],
    schedinit: Option<(&[u8], u64)>,
) -> Result<Named, InferError> {
    if img.machine == object::elf::EM_X86_64
        && let Some((code, entry)) = schedinit
    {
        let code = code.get(..code.len().min(MAX_SCHEDINIT)).unwrap_or(code);
        let mut found: Vec<String> = Decoder::with_ip(64, code, entry, DecoderOptions::NONE)
            .into_iter()
            .filter(|i| !i.is_invalid() && i.is_ip_rel_memory_operand())
            .filter_map(|i| version_at(img, data, i.ip_rel_memory_address()))
            .collect();
        found.sort();
        found.dedup();
        return match found.as_slice() {
            [one] => Ok(Named {
                version: one.clone(),
                by_code: true,
            }),
            // The variable holds no toolchain name (`-X runtime.buildVersion=…`
            // or damage): any other `go1.x` string would be a guess.
            [] => Err(InferError::NotFound),
            // Two version strings read by schedinit: not a Go runtime we know.
            _ => Err(InferError::Ambiguous(found)),
        };
    }
    let mut all = scan_string_headers(img, data);
    all.sort();
    all.dedup();
    match all.len() {
        0 => Err(InferError::NotFound),
        1 => Ok(Named {
            version: all.swap_remove(0),
            by_code: false,
        }),
        _ => Err(InferError::Ambiguous(all)),
    }
}

/// The version string a Go string header at `addr` points to, if it is one.
fn version_at(img: &ElfImage, data: &[u8], addr: u64) -> Option<String> {
    let ptr = img.ptr(data, addr)?;
    let len = read::u64_at(img.slice(data, addr.checked_add(8)?, 8)?, 0)?;
    if !(4..=MAX_VERSION).contains(&len) {
        return None;
    }
    let bytes = img.slice(data, ptr, read::us(len)?)?;
    let s = std::str::from_utf8(bytes).ok()?;
    well_formed(s).then(|| s.to_string())
}

/// A toolchain name as the linker writes it: `go1.N[.P][rcN|betaN]`,
/// optionally followed by ` X:experiments`, or a `devel go1.N-…` build.
pub(crate) fn well_formed(s: &str) -> bool {
    if s.starts_with("devel ") {
        return parse_version(s).is_some_and(|v| v.0 == 1);
    }
    let Some(rest) = s.strip_prefix("go1.") else {
        return false;
    };
    let (num, _experiments) = match rest.split_once(" X:") {
        Some((n, x)) => (n, Some(x)),
        None => (rest, None),
    };
    let num = num
        .split_once("rc")
        .or_else(|| num.split_once("beta"))
        .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .map_or(num, |(v, _)| v);
    let mut parts = num.split('.');
    let ok_part = |p: Option<&str>| {
        p.is_some_and(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let minor = parts.next();
    let patch = parts.next();
    ok_part(minor) && (patch.is_none() || ok_part(patch)) && parts.next().is_none()
}

/// Every 8-aligned (ptr, len) pair in the writable segments that points to
/// a well-formed version string.
fn scan_string_headers(img: &ElfImage, data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for seg in img.segments.iter().filter(|s| s.writable) {
        let Some(bytes) = img.tail(data, seg.vaddr) else {
            continue;
        };
        let skew = (8 - (seg.vaddr % 8) as usize) % 8;
        let Some(aligned) = bytes.get(skew..) else {
            continue;
        };
        let words = aligned.len() / 8;
        for i in 0..words.saturating_sub(1) {
            // Cheap filter first: the length word must be small.
            let Some(len) = read::u64_at(aligned, i * 8 + 8) else {
                break;
            };
            if !(4..=MAX_VERSION).contains(&len) {
                continue;
            }
            let Some(addr) = seg.vaddr.checked_add((skew + i * 8) as u64) else {
                break;
            };
            if let Some(v) = version_at(img, data, addr) {
                out.push(v);
            }
            // Bound the work on hostile input: a real binary has a handful.
            if out.len() > 4096 {
                return out;
            }
        }
    }
    out
}

/// Reads the evidence from the binary. `has_function` answers whether a
/// function with a name starting with the given prefix is linked.
pub(crate) fn evidence(
    img: &ElfImage,
    data: &[u8],
    pcln: &Pclntab,
    has_prefix: &dyn Fn(&[u8]) -> bool,
) -> Evidence {
    Evidence {
        pclntab_magic: img.u32(data, pcln.vaddr).unwrap_or(0),
        // Through `ptr`: an externally linked PIE leaves it to a relocation.
        text_start: img
            .ptr(data, pcln.vaddr.saturating_add(24))
            .unwrap_or(pcln.header_text_start),
        swiss_maps: has_prefix(b"internal/runtime/maps."),
        classic_maps: has_prefix(b"runtime.hashGrow") || has_prefix(b"runtime.evacuate"),
    }
}

/// Checks a claimed `go1.minor` against the evidence; the first
/// contradiction, in words, if any.
pub(crate) fn contradiction(minor: u32, e: &Evidence) -> Option<String> {
    match e.pclntab_magic {
        MAGIC_GO120 if minor < 20 => {
            return Some("its function table has the Go ≥ 1.20 format (magic 0xfffffff1)".into());
        }
        MAGIC_GO118 if minor >= 20 => {
            return Some("its function table has the Go 1.18–1.19 format (magic 0xfffffff0)".into());
        }
        _ => {}
    }
    if minor >= 26 && e.text_start != 0 {
        return Some(format!(
            "its function table records a text start ({:#x}), which Go ≥ 1.26 no longer writes",
            e.text_start
        ));
    }
    if (20..26).contains(&minor) && e.text_start == 0 {
        return Some("its function table has no text start, which Go 1.20–1.25 always write".into());
    }
    if minor < 24 && e.swiss_maps {
        return Some("it links swiss maps (internal/runtime/maps), which only Go ≥ 1.24 has".into());
    }
    if minor >= 26 && e.classic_maps {
        return Some(
            "it links the classic map implementation (runtime.hashGrow), which Go ≥ 1.26 no longer has".into(),
        );
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn version_strings() {
        for good in [
            "go1.27.3",
            "go1.21.13",
            "go1.22",
            "go1.22rc1",
            "go1.21beta2",
            "go1.25.0 X:greenteagc",
            "devel go1.26-abcdef Mon Jan 1 +0000",
        ] {
            assert!(well_formed(good), "{good}");
        }
        for bad in [
            "go1.", "go1.x", "go1.21.", "go1.21.3.4", "go1.21 or later", "go1.21rc", "go2.0", "gccgo",
            "go1.123456", "the go1.21.3",
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }

    fn ev(magic: u32, text_start: u64, swiss: bool, classic: bool) -> Evidence {
        Evidence {
            pclntab_magic: magic,
            text_start,
            swiss_maps: swiss,
            classic_maps: classic,
        }
    }

    #[test]
    fn evidence_bounds_the_version() {
        // What real builds look like (see the fixture tests).
        let go121 = ev(MAGIC_GO120, 0x401000, false, true);
        let go124 = ev(MAGIC_GO120, 0x401000, true, false);
        let go124_noswiss = ev(MAGIC_GO120, 0x401000, false, true);
        let go127 = ev(MAGIC_GO120, 0, true, false);
        for minor in 21..=23 {
            assert_eq!(contradiction(minor, &go121), None, "1.{minor}");
        }
        assert_eq!(contradiction(24, &go124), None);
        assert_eq!(contradiction(25, &go124), None);
        assert_eq!(contradiction(25, &go124_noswiss), None);
        assert_eq!(contradiction(26, &go127), None);
        assert_eq!(contradiction(27, &go127), None);
        // Each fact rules out versions.
        assert!(contradiction(23, &go124).unwrap().contains("swiss maps"));
        assert!(contradiction(26, &go124).unwrap().contains("text start"));
        assert!(contradiction(25, &go127).unwrap().contains("no text start"));
        assert!(contradiction(26, &ev(MAGIC_GO120, 0, false, true)).unwrap().contains("classic"));
        assert!(contradiction(19, &go121).unwrap().contains("1.20"));
        assert!(contradiction(21, &ev(MAGIC_GO118, 0x401000, false, true)).unwrap().contains("1.18"));
    }
}
