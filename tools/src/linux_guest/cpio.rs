//! A writer for the `newc` cpio format (the one the Linux kernel unpacks
//! as an initramfs): directories, regular files, symbolic links and
//! character devices, owned by root, with mtime 0 so the same inputs give
//! the same bytes.
//!
//! Each entry is a 110-byte ASCII header (`070701` and thirteen 8-digit hex
//! fields), the NUL-terminated name padded to 4 bytes, then the data padded
//! to 4 bytes; the archive ends with an entry named `TRAILER!!!`.

const MAGIC: &[u8] = b"070701";
const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: usize = 110;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// A newc archive being built in memory. Paths are relative (`bin/sh`, not
/// `/bin/sh`); parents must be added before their children.
#[derive(Default)]
pub struct CpioWriter {
    bytes: Vec<u8>,
    next_inode: u32,
}

/// One entry's header fields that vary.
struct Entry<'a> {
    path: &'a str,
    mode: u32,
    links: u32,
    rdev: (u32, u32),
    data: &'a [u8],
}

impl CpioWriter {
    pub fn new() -> CpioWriter {
        CpioWriter { bytes: Vec::new(), next_inode: 1 }
    }

    pub fn directory(&mut self, path: &str, permissions: u32) {
        self.entry(Entry { path, mode: S_IFDIR | permissions, links: 2, rdev: (0, 0), data: &[] });
    }

    pub fn file(&mut self, path: &str, permissions: u32, data: &[u8]) {
        self.entry(Entry { path, mode: S_IFREG | permissions, links: 1, rdev: (0, 0), data });
    }

    /// A symbolic link at `path` pointing to `target` (stored as its data).
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entry(Entry { path, mode: S_IFLNK | 0o777, links: 1, rdev: (0, 0), data: target.as_bytes() });
    }

    pub fn char_device(&mut self, path: &str, permissions: u32, major: u32, minor: u32) {
        self.entry(Entry { path, mode: S_IFCHR | permissions, links: 1, rdev: (major, minor), data: &[] });
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.next_inode = 0;
        self.entry(Entry { path: TRAILER, mode: 0, links: 1, rdev: (0, 0), data: &[] });
        self.bytes
    }

    fn entry(&mut self, entry: Entry) {
        let inode = self.next_inode;
        if inode != 0 {
            self.next_inode += 1;
        }
        let name_size = entry.path.len() + 1;
        let fields = [
            inode,
            entry.mode,
            0, // uid
            0, // gid
            entry.links,
            0, // mtime
            u32::try_from(entry.data.len()).expect("initramfs files are far below 4 GiB"),
            0, // device major of the archive's file system
            0, // device minor
            entry.rdev.0,
            entry.rdev.1,
            u32::try_from(name_size).expect("path length fits in u32"),
            0, // checksum (only for the 070702 format)
        ];
        let header_start = self.bytes.len();
        self.bytes.extend_from_slice(MAGIC);
        for field in fields {
            self.bytes.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        debug_assert_eq!(self.bytes.len() - header_start, HEADER_LEN);
        self.bytes.extend_from_slice(entry.path.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(entry.data);
        self.pad();
    }

    fn pad(&mut self) {
        let padded = self.bytes.len().next_multiple_of(4);
        self.bytes.resize(padded, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, mode, rdev, data) of an entry.
    type ReadEntry = (String, u32, (u32, u32), Vec<u8>);

    /// Every entry, read back by the rules of the format.
    fn read_back(archive: &[u8]) -> Vec<ReadEntry> {
        let field = |header: &[u8], index: usize| {
            let text = std::str::from_utf8(&header[6 + index * 8..6 + (index + 1) * 8]).unwrap();
            u32::from_str_radix(text, 16).unwrap()
        };
        let mut entries = Vec::new();
        let mut at = 0;
        loop {
            assert_eq!(at % 4, 0, "entry not 4-byte aligned");
            let header = &archive[at..at + HEADER_LEN];
            assert_eq!(&header[..6], MAGIC);
            let (mode, size, name_size) = (field(header, 1), field(header, 6), field(header, 11));
            let name_start = at + HEADER_LEN;
            let name = &archive[name_start..name_start + name_size as usize - 1];
            assert_eq!(archive[name_start + name_size as usize - 1], 0, "name not NUL-terminated");
            let data_start = (name_start + name_size as usize).next_multiple_of(4);
            let data = archive[data_start..data_start + size as usize].to_vec();
            let name = String::from_utf8(name.to_vec()).unwrap();
            at = (data_start + size as usize).next_multiple_of(4);
            if name == TRAILER {
                assert_eq!(at, archive.len(), "bytes after the trailer");
                return entries;
            }
            entries.push((name, mode, (field(header, 9), field(header, 10)), data));
        }
    }

    #[test]
    fn entries_read_back_with_types_modes_and_data() {
        let mut cpio = CpioWriter::new();
        cpio.directory("bin", 0o755);
        cpio.file("bin/busybox", 0o755, b"\x7fELF and then some");
        cpio.symlink("bin/sh", "busybox");
        cpio.char_device("dev/console", 0o600, 5, 1);
        cpio.file("init", 0o755, b"#!/bin/sh\n");
        let archive = cpio.finish();
        let entries = read_back(&archive);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["bin", "bin/busybox", "bin/sh", "dev/console", "init"]);
        assert_eq!(entries[0].1, 0o040_755);
        assert_eq!((entries[1].1, entries[1].3.as_slice()), (0o100_755, &b"\x7fELF and then some"[..]));
        assert_eq!((entries[2].1, entries[2].3.as_slice()), (0o120_777, &b"busybox"[..]));
        assert_eq!((entries[3].1, entries[3].2), (0o020_600, (5, 1)));
        assert_eq!(entries[4].3, b"#!/bin/sh\n");
    }

    #[test]
    fn every_name_and_data_length_stays_aligned() {
        // Names and data of every length modulo 4 around the 110-byte header.
        let mut cpio = CpioWriter::new();
        for length in 1..=8 {
            let name = "n".repeat(length);
            cpio.file(&name, 0o644, &vec![0xAB; length]);
        }
        let entries = read_back(&cpio.finish());
        assert_eq!(entries.len(), 8);
        for (index, entry) in entries.iter().enumerate() {
            assert_eq!(entry.0.len(), index + 1);
            assert_eq!(entry.3, vec![0xAB; index + 1]);
        }
    }

    #[test]
    fn inodes_are_distinct_and_the_output_is_deterministic() {
        let build = || {
            let mut cpio = CpioWriter::new();
            cpio.file("a", 0o644, b"1");
            cpio.file("b", 0o644, b"2");
            cpio.finish()
        };
        let archive = build();
        assert_eq!(archive, build());
        let inode = |at: usize| &archive[at + 6..at + 14];
        let second = (HEADER_LEN + 2).next_multiple_of(4) + 4;
        assert_ne!(inode(0), inode(second));
        assert_eq!(inode(0), b"00000001");
    }
}
