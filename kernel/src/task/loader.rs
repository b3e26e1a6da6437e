//! The ELF loader: validates a program image completely before it allocates
//! anything, then copies its segments into a fresh address space. Every
//! check failure is a [`LoadError`]; nothing in an image can make the
//! kernel fault (the `elf` crate parses without panicking, all arithmetic
//! here is checked, all slicing is `get`).
//!
//! Accepted: 64-bit little-endian x86_64 `ET_EXEC` images with 1..=8
//! `PT_LOAD` segments, each in the image window of the user half
//! (`layout::USER_START..layout::IMAGE_END`), file bytes inside the image,
//! `filesz <= memsz`, alignment consistent, never writable and executable,
//! no two segments sharing a page; the entry point inside an executable
//! segment; no interpreter or dynamic section; image plus stack within the
//! quota.

use elf::ElfBytes;
use elf::abi::{EM_X86_64, ET_EXEC, PF_W, PF_X, PT_DYNAMIC, PT_INTERP, PT_LOAD, PT_TLS};
use elf::endian::AnyEndian;
use elf::file::Class;
use tenfold_abi::layout;

use crate::arch::paging::{self, MapError, PAGE_SIZE, UserAccess, UserSpace};
use crate::memory::frames;

/// Most loadable segments an image may have.
const MAX_SEGMENTS: usize = 8;

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The ELF header or program-header table is malformed.
    Malformed,
    NotElf64LittleEndian,
    NotExecutable,
    NotX86_64,
    NoLoadableSegments,
    TooManySegments,
    /// Dynamic linking, an interpreter or thread-local storage.
    NotStatic,
    /// A segment reaches outside the user image window or wraps.
    SegmentOutOfRange,
    /// A segment's file bytes lie outside the image, or filesz > memsz.
    SegmentFileRange,
    SegmentMisaligned,
    WritableAndExecutable,
    SegmentsOverlap,
    EntryNotExecutable,
    OverQuota,
    OutOfMemory,
}

/// A loaded program: its address space and entry point.
pub struct Loaded {
    pub space: UserSpace,
    pub entry: u64,
}

#[derive(Clone, Copy, Default)]
struct Segment {
    vaddr: u64,
    memsz: u64,
    offset: u64,
    filesz: u64,
    flags: u32,
}

impl Segment {
    fn first_page(&self) -> u64 {
        self.vaddr & !(PAGE_SIZE - 1)
    }

    /// One past the last page (checked in `validate`).
    fn end_page(&self) -> u64 {
        (self.vaddr + self.memsz).next_multiple_of(PAGE_SIZE)
    }

    fn pages(&self) -> u64 {
        (self.end_page() - self.first_page()) / PAGE_SIZE
    }
}

/// Checks `image` and returns its segments and entry point.
fn validate(image: &[u8]) -> Result<([Segment; MAX_SEGMENTS], usize, u64), LoadError> {
    let file = ElfBytes::<AnyEndian>::minimal_parse(image).map_err(|_| LoadError::Malformed)?;
    let header = &file.ehdr;
    if header.class != Class::ELF64 || header.endianness != AnyEndian::Little {
        return Err(LoadError::NotElf64LittleEndian);
    }
    if header.e_type != ET_EXEC {
        return Err(LoadError::NotExecutable);
    }
    if header.e_machine != EM_X86_64 {
        return Err(LoadError::NotX86_64);
    }
    let table = file.segments().ok_or(LoadError::NoLoadableSegments)?;
    let mut segments = [Segment::default(); MAX_SEGMENTS];
    let mut count = 0;
    for header in table.iter() {
        match header.p_type {
            PT_LOAD => {}
            PT_INTERP | PT_DYNAMIC | PT_TLS => return Err(LoadError::NotStatic),
            _ => continue,
        }
        if header.p_memsz == 0 {
            continue;
        }
        if count == MAX_SEGMENTS {
            return Err(LoadError::TooManySegments);
        }
        let segment = Segment {
            vaddr: header.p_vaddr,
            memsz: header.p_memsz,
            offset: header.p_offset,
            filesz: header.p_filesz,
            flags: header.p_flags,
        };
        let end = segment.vaddr.checked_add(segment.memsz).ok_or(LoadError::SegmentOutOfRange)?;
        if segment.vaddr < layout::USER_START || end > layout::IMAGE_END {
            return Err(LoadError::SegmentOutOfRange);
        }
        let file_end = segment.offset.checked_add(segment.filesz).ok_or(LoadError::SegmentFileRange)?;
        if segment.filesz > segment.memsz || file_end > image.len() as u64 {
            return Err(LoadError::SegmentFileRange);
        }
        let align = header.p_align;
        if align > 1 && (!align.is_power_of_two() || segment.vaddr % align != segment.offset % align) {
            return Err(LoadError::SegmentMisaligned);
        }
        if segment.flags & PF_W != 0 && segment.flags & PF_X != 0 {
            return Err(LoadError::WritableAndExecutable);
        }
        for other in &segments[..count] {
            if segment.first_page() < other.end_page() && other.first_page() < segment.end_page() {
                return Err(LoadError::SegmentsOverlap);
            }
        }
        segments[count] = segment;
        count += 1;
    }
    if count == 0 {
        return Err(LoadError::NoLoadableSegments);
    }
    let entry = header.e_entry;
    let in_code = segments[..count]
        .iter()
        .any(|s| s.flags & PF_X != 0 && entry >= s.vaddr && entry - s.vaddr < s.memsz);
    if !in_code {
        return Err(LoadError::EntryNotExecutable);
    }
    Ok((segments, count, entry))
}

/// Validates `image` and loads it, with a stack, into a new address space
/// holding at most `quota_frames` frames (pages and page tables).
pub fn load(image: &[u8], quota_frames: u64) -> Result<Loaded, LoadError> {
    let (segments, count, entry) = validate(image)?;
    let stack_pages = layout::STACK_SIZE / PAGE_SIZE;
    let pages: u64 = segments[..count].iter().map(Segment::pages).sum::<u64>() + stack_pages;
    // Pages plus at least the level-4 table: a first cut before allocating.
    if pages + 1 > quota_frames {
        return Err(LoadError::OverQuota);
    }
    let mut space = UserSpace::new(&mut frames::allocate).map_err(|_| LoadError::OutOfMemory)?;
    let result = (|| {
        for segment in &segments[..count] {
            load_segment(&mut space, image, segment)?;
        }
        let access = UserAccess { write: true, execute: false };
        let bottom = layout::STACK_TOP - layout::STACK_SIZE;
        // The page below `bottom` stays unmapped: the stack's guard.
        for page in 0..stack_pages {
            map_fresh(&mut space, bottom + page * PAGE_SIZE, access)?;
        }
        if space.frames() > quota_frames {
            return Err(LoadError::OverQuota);
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(Loaded { space, entry }),
        Err(error) => {
            space.destroy(&mut frames::free);
            Err(error)
        }
    }
}

/// Maps a zeroed frame at `virt`; returns its physical address.
fn map_fresh(space: &mut UserSpace, virt: u64, access: UserAccess) -> Result<u64, LoadError> {
    let frame = frames::allocate().ok_or(LoadError::OutOfMemory)?;
    paging::zero_frame(frame);
    match space.map(virt, frame, access, &mut frames::allocate) {
        Ok(()) => Ok(frame),
        Err(error) => {
            frames::free(frame);
            Err(match error {
                MapError::OutOfFrames => LoadError::OutOfMemory,
                MapError::AlreadyMapped => LoadError::SegmentsOverlap,
            })
        }
    }
}

fn load_segment(space: &mut UserSpace, image: &[u8], segment: &Segment) -> Result<(), LoadError> {
    let access = UserAccess { write: segment.flags & PF_W != 0, execute: segment.flags & PF_X != 0 };
    let file_start = segment.vaddr;
    let file_end = segment.vaddr + segment.filesz;
    let mut page = segment.first_page();
    while page < segment.end_page() {
        let frame = map_fresh(space, page, access)?;
        // The part of this page that comes from the file.
        let from = page.max(file_start);
        let to = (page + PAGE_SIZE).min(file_end);
        if from < to {
            let source = (segment.offset + (from - segment.vaddr)) as usize;
            let bytes =
                image.get(source..source + (to - from) as usize).ok_or(LoadError::SegmentFileRange)?;
            let destination = paging::physical_to_virtual(frame) + (from - page);
            // SAFETY: a frame just allocated for this space, written through
            // the physical-memory mapping within its 4 KiB.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), destination as *mut u8, bytes.len()) };
        }
        page += PAGE_SIZE;
    }
    Ok(())
}

/// Loads `count` mutated copies of `image` (seeded, reproducible) and
/// counts how each ended: refused with which error, or loaded and freed.
/// The mutations aim at what the loader checks: header fields, program
/// headers (set to boundary values), truncation and random bytes. Returns
/// the report line; free frames must be the same before and after.
pub fn mutation_check(image: &[u8], count: u32, seed: u64) -> alloc::string::String {
    use core::fmt::Write;

    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    const INTERESTING: [u64; 12] = [
        0,
        1,
        0xfff,
        0x1000,
        0x40_0000,
        0x7fff_ffff_f000,
        0x8000_0000_0000,
        0xffff_8000_0000_0000,
        0xffff_ffff_8020_0000,
        u64::MAX,
        u64::MAX - 0xfff,
        1 << 40,
    ];
    let frames_before = frames::stats().free_frames();
    let mut mutant = alloc::vec::Vec::with_capacity(image.len());
    let mut refused = [0u32; 16];
    let mut loaded = 0u32;
    let read_u64 = |bytes: &[u8], at: usize| {
        bytes.get(at..at + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    let phoff = read_u64(image, 0x20) as usize;
    for _ in 0..count {
        mutant.clear();
        mutant.extend_from_slice(image);
        let phdr = phoff + 56 * (next() % 3) as usize;
        match next() % 8 {
            // A bit in the ELF header.
            0 => {
                let bit = (next() % (64 * 8)) as usize;
                mutant[bit / 8] ^= 1 << (bit % 8);
            }
            // A bit in the program headers.
            1 => {
                let at = phoff + (next() % (3 * 56)) as usize;
                if let Some(byte) = mutant.get_mut(at) {
                    *byte ^= 1 << (next() % 8);
                }
            }
            // A program-header address or size set to a boundary value.
            2 | 3 => {
                let field = phdr + 8 + 8 * (next() % 6) as usize;
                let value = INTERESTING[(next() % INTERESTING.len() as u64) as usize]
                    .wrapping_add(if next() % 2 == 0 { 0 } else { next() % 0x2000 });
                if let Some(bytes) = mutant.get_mut(field..field + 8) {
                    bytes.copy_from_slice(&value.to_le_bytes());
                }
            }
            // Segment type or flags.
            4 => {
                let field = phdr + 4 * (next() % 2) as usize;
                let value = [1u32, 2, 3, 7, 5, 6, 7, next() as u32][(next() % 8) as usize];
                if let Some(bytes) = mutant.get_mut(field..field + 4) {
                    bytes.copy_from_slice(&value.to_le_bytes());
                }
            }
            // Entry, program-header offset, entry size or count.
            5 => {
                let (at, width) = [(0x18, 8), (0x20, 8), (0x36, 2), (0x38, 2)][(next() % 4) as usize];
                let value = INTERESTING[(next() % INTERESTING.len() as u64) as usize] ^ (next() % 3);
                if let Some(bytes) = mutant.get_mut(at..at + width) {
                    bytes.copy_from_slice(&value.to_le_bytes()[..width]);
                }
            }
            // Truncated.
            6 => {
                let length = (next() % image.len() as u64) as usize;
                mutant.truncate(length);
            }
            // Random bytes anywhere.
            _ => {
                for _ in 0..1 + next() % 16 {
                    let at = (next() % image.len() as u64) as usize;
                    mutant[at] = next() as u8;
                }
            }
        }
        match load(&mutant, super::DEFAULT_QUOTA_FRAMES) {
            Ok(program) => {
                program.space.destroy(&mut frames::free);
                loaded += 1;
            }
            Err(error) => refused[error as usize] += 1,
        }
    }
    let frames_after = frames::stats().free_frames();
    let mut report = alloc::string::String::new();
    let _ = write!(
        report,
        "elfcheck: {count} mutants: {} refused, {loaded} loaded and freed; free frames {frames_before} -> {frames_after}; refusals:",
        count - loaded
    );
    for (index, &times) in refused.iter().enumerate() {
        if times > 0 {
            let _ = write!(report, " {index}:{times}");
        }
    }
    report
}
