//! Go type names from the link-time address of an `abi.Type` (e.g. the
//! `*maptype` a map routine receives in RAX).
//!
//! `abi.Type` (golang/go src/internal/abi/type.go, unchanged 1.21–1.27 on
//! 64-bit): `TFlag` at 20, `Str` (a `NameOff`, int32) at 40. The name is at
//! `moduledata.types + Str`: one flag byte, a uvarint length, the bytes.
//! The linker stores most names as `*T` and sets `TFlagExtraStar` on `T`, so
//! the pointer and the pointee share one string.

use super::elf::ElfImage;
use super::moduledata::ModuleData;
use super::read;

const TYPE_LEN: usize = 48;
const OFF_TFLAG: usize = 20;
const OFF_STR: usize = 40;
const TFLAG_EXTRA_STAR: u8 = 1 << 1;
const MAX_TYPE_NAME: usize = 64 * 1024;

pub(crate) fn type_name(img: &ElfImage, data: &[u8], md: &ModuleData, addr: u64) -> Option<String> {
    // The runtime itself only resolves names for types inside the module's
    // type region; anything else is not a type of this binary.
    if addr < md.types || addr >= md.etypes {
        return None;
    }
    let t = img.slice(data, addr, TYPE_LEN)?;
    let tflag = read::u8_at(t, OFF_TFLAG)?;
    let str_off = u64::try_from(read::i32_at(t, OFF_STR)?)
        .ok()
        .filter(|&o| o != 0)?;
    let name_addr = md.types.checked_add(str_off)?;
    if name_addr >= md.etypes {
        return None;
    }
    let bytes = img.tail(data, name_addr)?;
    let mut pos = 1; // skip the name's flag byte
    let len = read::us(read::uvarint(bytes, &mut pos)?)?;
    if len > MAX_TYPE_NAME {
        return None;
    }
    let name = String::from_utf8_lossy(read::bytes(bytes, pos, len)?).into_owned();
    if tflag & TFLAG_EXTRA_STAR != 0 {
        return Some(name.strip_prefix('*').map(str::to_owned).unwrap_or(name));
    }
    Some(name)
}
