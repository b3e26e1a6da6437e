//! Names for addresses in a task's program: the fault report says in which
//! function of the program a ring-3 fault happened, from the ELF's symbol
//! table (programs are linked static and not stripped of it), demangled.
//! Reads the image in the initrd; allocates nothing, so it is safe in the
//! fault path.

use core::fmt::Write;

use elf::ElfBytes;
use elf::abi::STT_FUNC;
use elf::endian::LittleEndian;

/// Writes `    in function+0xoffset` for `address`, if a function symbol of
/// `image` covers it; nothing otherwise (an address outside the code, a
/// malformed table).
pub fn describe(out: &mut dyn Write, image: &[u8], address: u64) {
    if let Some((name, offset)) = function_at(image, address) {
        let _ = writeln!(out, "    in {:#}+{offset:#x}", rustc_demangle::demangle(name));
    }
}

/// The function symbol covering `address`, and the offset into it.
fn function_at(image: &[u8], address: u64) -> Option<(&str, u64)> {
    let file = ElfBytes::<LittleEndian>::minimal_parse(image).ok()?;
    let (symbols, names) = file.symbol_table().ok()??;
    symbols
        .iter()
        .filter(|symbol| symbol.st_symtype() == STT_FUNC && symbol.st_value <= address)
        .find(|symbol| address < symbol.st_value.saturating_add(symbol.st_size.max(1)))
        .and_then(|symbol| Some((names.get(symbol.st_name as usize).ok()?, address - symbol.st_value)))
}
