//! QEMU's firmware configuration device (`fw_cfg`, I/O ports 0x510/0x511):
//! how the host passes the kernel command line without rebuilding the boot
//! image (`-fw_cfg name=opt/tenfold/cmdline,string=…`).

use x86_64::instructions::port::Port;

const SELECTOR_PORT: u16 = 0x510;
const DATA_PORT: u16 = 0x511;
const SIGNATURE_KEY: u16 = 0x0000;
const CPU_COUNT_KEY: u16 = 0x0005;
const FILE_DIRECTORY_KEY: u16 = 0x0019;
const FILE_NAME_LEN: usize = 56;

fn select(key: u16) {
    // SAFETY: writing the selector only chooses which item the data port reads.
    unsafe { Port::<u16>::new(SELECTOR_PORT).write(key) };
}

fn read_into(buffer: &mut [u8]) {
    let mut data = Port::<u8>::new(DATA_PORT);
    for byte in buffer {
        // SAFETY: reading the data port advances within the selected item;
        // past its end the device returns zeros.
        *byte = unsafe { data.read() };
    }
}

fn read_be<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    read_into(&mut bytes);
    bytes
}

/// Whether QEMU's fw_cfg device is present.
pub fn present() -> bool {
    select(SIGNATURE_KEY);
    read_be::<4>() == *b"QEMU"
}

/// The number of CPUs QEMU was started with, if fw_cfg is present.
pub fn cpu_count() -> Option<u16> {
    if !present() {
        return None;
    }
    select(CPU_COUNT_KEY);
    Some(u16::from_le_bytes(read_be()))
}

/// Reads the fw_cfg file `name` into `buffer`; returns the number of bytes
/// copied (the file is truncated to the buffer), or `None` if absent.
pub fn read_file(name: &str, buffer: &mut [u8]) -> Option<usize> {
    if !present() {
        return None;
    }
    select(FILE_DIRECTORY_KEY);
    let count = u32::from_be_bytes(read_be());
    let mut found = None;
    for _ in 0..count {
        let size = u32::from_be_bytes(read_be()) as usize;
        let key = u16::from_be_bytes(read_be());
        let _reserved: [u8; 2] = read_be();
        let entry_name: [u8; FILE_NAME_LEN] = read_be();
        let length = entry_name.iter().position(|&b| b == 0).unwrap_or(FILE_NAME_LEN);
        if &entry_name[..length] == name.as_bytes() {
            found = Some((key, size));
            break;
        }
    }
    let (key, size) = found?;
    let length = size.min(buffer.len());
    select(key);
    read_into(&mut buffer[..length]);
    Some(length)
}
