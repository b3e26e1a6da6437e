//! PCI configuration space through the legacy I/O ports 0xCF8/0xCFC
//! (configuration mechanism #1), which QEMU's `pc` machine provides;
//! `virtio-drivers` only ships memory-mapped access.

use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};
use x86_64::instructions::port::Port;

const ADDRESS_PORT: u16 = 0xCF8;
const DATA_PORT: u16 = 0xCFC;

/// Port-I/O access to PCI configuration space.
pub struct PortConfigAccess;

fn address(device_function: DeviceFunction, register_offset: u8) -> u32 {
    0x8000_0000
        | u32::from(device_function.bus) << 16
        | u32::from(device_function.device) << 11
        | u32::from(device_function.function) << 8
        | u32::from(register_offset & 0xFC)
}

impl ConfigurationAccess for PortConfigAccess {
    fn read_word(&self, device_function: DeviceFunction, register_offset: u8) -> u32 {
        super::cpu::without_interrupts(|| {
            // SAFETY: the address/data pair is the PCI configuration
            // mechanism; interrupts are off so no other access interleaves.
            unsafe {
                Port::<u32>::new(ADDRESS_PORT).write(address(device_function, register_offset));
                Port::<u32>::new(DATA_PORT).read()
            }
        })
    }

    fn write_word(&mut self, device_function: DeviceFunction, register_offset: u8, data: u32) {
        super::cpu::without_interrupts(|| {
            // SAFETY: as in `read_word`.
            unsafe {
                Port::<u32>::new(ADDRESS_PORT).write(address(device_function, register_offset));
                Port::<u32>::new(DATA_PORT).write(data);
            }
        })
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortConfigAccess
    }
}
