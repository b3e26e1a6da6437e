//! The initrd: the user programs in one cpio archive (the "newc" format
//! Linux initramfs uses), written with the `cpio` crate. The kernel reads it
//! from its PVH boot module with `cpio_reader` (kernel/src/task/initrd.rs).

use std::io::{Cursor, Write};

use anyhow::{Context, Result};

/// A newc archive holding `files` (name, contents) as regular files.
pub fn pack(files: &[(&str, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut archive = Cursor::new(Vec::new());
    for (index, (name, contents)) in files.iter().enumerate() {
        let size = u32::try_from(contents.len()).context("a file in the initrd exceeds 4 GiB")?;
        let mut writer = cpio::newc::Builder::new(name)
            .ino(index as u32 + 1)
            .mode(0o100_755)
            .nlink(1)
            .write(&mut archive, size);
        writer.write_all(contents)?;
        writer.finish()?;
    }
    let archive = cpio::newc::trailer(archive)?;
    Ok(archive.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_files_read_back_in_order() {
        let files = [("hello", b"\x7fELF hello".to_vec()), ("empty", Vec::new()), ("odd", vec![1, 2, 3])];
        let archive = pack(&files).unwrap();
        assert_eq!(&archive[..6], b"070701");
        let mut reader = Cursor::new(archive);
        for (name, contents) in &files {
            let entry = cpio::NewcReader::new(&mut reader).unwrap();
            assert_eq!(entry.entry().name(), *name);
            assert_eq!(entry.entry().file_size() as usize, contents.len());
            let mut read = Vec::new();
            let mut entry = entry;
            std::io::Read::read_to_end(&mut entry, &mut read).unwrap();
            assert_eq!(&read, contents);
            entry.finish().unwrap();
        }
        assert!(cpio::NewcReader::new(&mut reader).unwrap().entry().is_trailer());
    }
}
