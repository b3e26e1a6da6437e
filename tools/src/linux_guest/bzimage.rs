//! Reading a Linux `bzImage`: where its compressed kernel is and in which
//! format, and whether the decompressed `vmlinux` is an x86-64 ELF that
//! QEMU can boot by PVH.
//!
//! The x86 boot protocol header (at 0x1f1, signature `HdrS` at 0x202,
//! version ≥ 2.08) gives the payload's offset from the start of the
//! protected-mode code (`(setup_sects + 1) * 512`) and its length; the
//! first bytes of the payload — its magic — give the format. The kernel's
//! build appends the decompressed size as 4 little-endian bytes to xz and
//! zstd payloads; gzip's own trailer ends with that size too.

use anyhow::{Result, bail};

/// The compression of a bzImage payload this module can hand to a tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Xz,
    Zstd,
    Gzip,
}

impl Compression {
    const ALL: [Compression; 3] = [Compression::Xz, Compression::Zstd, Compression::Gzip];

    pub fn magic(self) -> &'static [u8] {
        match self {
            Compression::Xz => b"\xfd7zXZ\x00",
            Compression::Zstd => b"\x28\xb5\x2f\xfd",
            Compression::Gzip => b"\x1f\x8b\x08",
        }
    }

    /// The host program that decompresses it (`<program> -dc`) and the
    /// Debian package that provides the program.
    pub fn tool(self) -> (&'static str, &'static str) {
        match self {
            Compression::Xz => ("xz", "xz-utils"),
            Compression::Zstd => ("zstd", "zstd"),
            Compression::Gzip => ("gzip", "gzip"),
        }
    }

    /// The format whose magic starts `bytes`.
    pub fn detect(bytes: &[u8]) -> Option<Compression> {
        Compression::ALL.into_iter().find(|format| bytes.starts_with(format.magic()))
    }
}

/// Where the compressed kernel sits in a bzImage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload {
    pub compression: Compression,
    /// Byte offset of the compressed stream in the bzImage.
    pub offset: usize,
    /// Length of the compressed stream alone (without the kernel build's
    /// size trailer), what the decompressor should read.
    pub stream_length: usize,
    /// The decompressed size the payload records (its last 4 bytes).
    pub decompressed_size: u32,
}

impl Payload {
    /// The compressed stream's bytes within `bzimage`.
    pub fn stream<'a>(&self, bzimage: &'a [u8]) -> &'a [u8] {
        &bzimage[self.offset..self.offset + self.stream_length]
    }
}

const SETUP_SECTS: usize = 0x1f1;
const HEADER_SIGNATURE: usize = 0x202;
const PROTOCOL_VERSION: usize = 0x206;
const PAYLOAD_OFFSET: usize = 0x248;
const PAYLOAD_LENGTH: usize = 0x24c;
/// The first boot protocol version with `payload_offset`/`payload_length`.
const PAYLOAD_FIELDS_VERSION: u16 = 0x0208;

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Finds the compressed kernel in a bzImage (see the module notes).
pub fn find_payload(bzimage: &[u8]) -> Result<Payload> {
    if bzimage.len() < PAYLOAD_LENGTH + 4 || &bzimage[HEADER_SIGNATURE..HEADER_SIGNATURE + 4] != b"HdrS" {
        bail!("not a bzImage: no `HdrS` boot protocol header at {HEADER_SIGNATURE:#x}");
    }
    let version = u16_at(bzimage, PROTOCOL_VERSION);
    if version < PAYLOAD_FIELDS_VERSION {
        bail!("boot protocol {version:#06x} predates payload_offset (2.08); this bzImage is too old");
    }
    // setup_sects 0 means 4, for compatibility with ancient kernels.
    let setup_sectors = match bzimage[SETUP_SECTS] {
        0 => 4,
        sectors => usize::from(sectors),
    };
    let offset = (setup_sectors + 1) * 512 + u32_at(bzimage, PAYLOAD_OFFSET) as usize;
    let length = u32_at(bzimage, PAYLOAD_LENGTH) as usize;
    if length < 8 || offset.checked_add(length).is_none_or(|end| end > bzimage.len()) {
        bail!(
            "the header's payload ({length} bytes at {offset:#x}) does not fit in the {}-byte bzImage",
            bzimage.len()
        );
    }
    let payload = &bzimage[offset..offset + length];
    let Some(compression) = Compression::detect(payload) else {
        bail!(
            "unknown kernel compression: the payload at {offset:#x} starts {:02x?}; known: xz, zstd, gzip",
            &payload[..6.min(payload.len())]
        );
    };
    let stream_length = match compression {
        Compression::Gzip => length,
        Compression::Xz | Compression::Zstd => length - 4,
    };
    Ok(Payload { compression, offset, stream_length, decompressed_size: u32_at(payload, length - 4) })
}

const PT_NOTE: u32 = 4;
const EM_X86_64: u16 = 62;
/// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit PVH entry point QEMU looks for.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// The PVH entry point of a 64-bit little-endian x86-64 ELF (its Xen note
/// of type 18), or why there is none.
pub fn pvh_entry(elf: &[u8]) -> Result<u32> {
    if elf.len() < 64 || !elf.starts_with(b"\x7fELF") {
        bail!("not an ELF file");
    }
    if elf[4] != 2 || elf[5] != 1 || u16_at(elf, 0x12) != EM_X86_64 {
        bail!("not a 64-bit little-endian x86-64 ELF");
    }
    let (table, entry_size, count) =
        (u64_at(elf, 0x20) as usize, u16_at(elf, 0x36) as usize, u16_at(elf, 0x38));
    for index in 0..usize::from(count) {
        let header = table + index * entry_size;
        if entry_size < 56 || header + 56 > elf.len() {
            bail!("program header {index} lies outside the file");
        }
        if u32_at(elf, header) != PT_NOTE {
            continue;
        }
        let (start, size) = (u64_at(elf, header + 8) as usize, u64_at(elf, header + 32) as usize);
        let Some(notes) = start.checked_add(size).and_then(|end| elf.get(start..end)) else {
            bail!("note segment {index} lies outside the file");
        };
        if let Some(entry) = xen_note(notes, XEN_ELFNOTE_PHYS32_ENTRY) {
            return Ok(entry);
        }
    }
    bail!("no PVH entry note (Xen note type {XEN_ELFNOTE_PHYS32_ENTRY}): QEMU cannot boot it with -kernel")
}

/// The first 4 bytes of the descriptor of the `Xen` note of `kind`.
fn xen_note(mut notes: &[u8], kind: u32) -> Option<u32> {
    while notes.len() >= 12 {
        let (name_size, desc_size, note_kind) =
            (u32_at(notes, 0) as usize, u32_at(notes, 4) as usize, u32_at(notes, 8));
        let name_end = 12 + name_size.next_multiple_of(4);
        let desc_end = name_end.checked_add(desc_size.next_multiple_of(4))?;
        if desc_end > notes.len() {
            return None;
        }
        if note_kind == kind && &notes[12..12 + name_size] == b"Xen\0" && desc_size >= 4 {
            return Some(u32_at(notes, name_end));
        }
        notes = &notes[desc_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bzImage-shaped buffer: `setup_sects` sectors of setup, a boot
    /// protocol 2.15 header, and `payload` at `payload_offset` into the
    /// protected-mode code.
    fn bzimage(setup_sects: u8, payload_offset: u32, payload: &[u8]) -> Vec<u8> {
        let setup_sectors = if setup_sects == 0 { 4 } else { usize::from(setup_sects) };
        let start = (setup_sectors + 1) * 512 + payload_offset as usize;
        let mut image = vec![0u8; start + payload.len() + 100];
        image[SETUP_SECTS] = setup_sects;
        image[HEADER_SIGNATURE..HEADER_SIGNATURE + 4].copy_from_slice(b"HdrS");
        image[PROTOCOL_VERSION..PROTOCOL_VERSION + 2].copy_from_slice(&0x020fu16.to_le_bytes());
        image[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&payload_offset.to_le_bytes());
        image[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        image[start..start + payload.len()].copy_from_slice(payload);
        image
    }

    fn payload(magic: &[u8], body: &[u8], size: u32) -> Vec<u8> {
        [magic, body, &size.to_le_bytes()].concat()
    }

    #[test]
    fn an_xz_payload_is_found_without_its_size_trailer() {
        let data = payload(Compression::Xz.magic(), b"compressed kernel", 65_906_612);
        let image = bzimage(39, 0x2cc, &data);
        let found = find_payload(&image).unwrap();
        assert_eq!(found.compression, Compression::Xz);
        assert_eq!(found.offset, 40 * 512 + 0x2cc);
        assert_eq!(found.stream_length, data.len() - 4);
        assert_eq!(found.decompressed_size, 65_906_612);
        assert_eq!(found.stream(&image), &data[..data.len() - 4]);
    }

    #[test]
    fn zstd_and_gzip_are_recognised_and_gzip_keeps_its_trailer() {
        let zstd = find_payload(&bzimage(30, 0x100, &payload(Compression::Zstd.magic(), b"z", 7))).unwrap();
        assert_eq!((zstd.compression, zstd.stream_length), (Compression::Zstd, 4 + 1));
        let data = payload(Compression::Gzip.magic(), b"gzip body", 1234);
        let gzip = find_payload(&bzimage(0, 0x10, &data)).unwrap();
        // setup_sects 0 means 4.
        assert_eq!((gzip.compression, gzip.offset), (Compression::Gzip, 5 * 512 + 0x10));
        assert_eq!((gzip.stream_length, gzip.decompressed_size), (data.len(), 1234));
    }

    #[test]
    fn malformed_images_are_refused_with_the_reason() {
        let unknown = find_payload(&bzimage(10, 0, &payload(b"BZh91AY", b"", 1))).unwrap_err();
        assert!(unknown.to_string().contains("unknown kernel compression"), "{unknown}");
        let mut no_header = bzimage(10, 0, &payload(Compression::Xz.magic(), b"", 1));
        no_header[HEADER_SIGNATURE] = b'X';
        assert!(find_payload(&no_header).unwrap_err().to_string().contains("HdrS"));
        let mut too_long = bzimage(10, 0, &payload(Compression::Xz.magic(), b"", 1));
        too_long[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(find_payload(&too_long).unwrap_err().to_string().contains("does not fit"));
        assert!(find_payload(b"short").is_err());
    }

    /// A minimal ELF64 header with one PT_NOTE program header over `notes`.
    fn elf_with_notes(notes: &[u8]) -> Vec<u8> {
        let mut elf = vec![0u8; 64 + 56];
        elf[..4].copy_from_slice(b"\x7fELF");
        (elf[4], elf[5]) = (2, 1);
        elf[0x12..0x14].copy_from_slice(&EM_X86_64.to_le_bytes());
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        elf[64..68].copy_from_slice(&PT_NOTE.to_le_bytes());
        elf[72..80].copy_from_slice(&120u64.to_le_bytes());
        elf[96..104].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        elf.extend_from_slice(notes);
        elf
    }

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut note =
            [(name.len() as u32).to_le_bytes(), (desc.len() as u32).to_le_bytes(), kind.to_le_bytes()]
                .concat();
        note.extend_from_slice(name);
        note.resize(note.len().next_multiple_of(4), 0);
        note.extend_from_slice(desc);
        note.resize(note.len().next_multiple_of(4), 0);
        note
    }

    #[test]
    fn the_pvh_entry_is_read_from_the_xen_note_of_type_18() {
        let notes = [
            note(b"GNU\0", 3, b"build id bytes"),
            note(b"Xen\0", 6, b"linux\0"),
            note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &0x0100_0280u32.to_le_bytes()),
        ]
        .concat();
        assert_eq!(pvh_entry(&elf_with_notes(&notes)).unwrap(), 0x0100_0280);
        let without = elf_with_notes(&note(b"Xen\0", 6, b"linux\0"));
        assert!(pvh_entry(&without).unwrap_err().to_string().contains("no PVH entry note"));
        assert!(pvh_entry(b"\x7fELF but far too short").is_err());
        let mut i386 = elf_with_notes(&notes);
        i386[4] = 1;
        assert!(pvh_entry(&i386).unwrap_err().to_string().contains("64-bit"));
    }
}
