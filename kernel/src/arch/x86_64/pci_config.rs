//! PCI configuration space through the legacy I/O ports 0xCF8/0xCFC
//! (configuration mechanism #1), which QEMU's `pc` machine provides;
//! `virtio-drivers` only ships memory-mapped access.

use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};
use x86_64::instructions::port::Port;

use super::IrqLock;

const ADDRESS_PORT: u16 = 0xCF8;
const DATA_PORT: u16 = 0xCFC;

/// The address/data port pair. One access is two port operations (select,
/// then read or write) that must not interleave with another access, from
/// another thread or an interrupt handler: whoever holds the pair owns it.
struct ConfigPorts {
    address: Port<u32>,
    data: Port<u32>,
}

static PORTS: IrqLock<ConfigPorts> =
    IrqLock::new(ConfigPorts { address: Port::new(ADDRESS_PORT), data: Port::new(DATA_PORT) });

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
        let mut ports = PORTS.lock();
        // SAFETY: 0xCF8/0xCFC are the PCI configuration mechanism on QEMU
        // `pc`; the locked pair means no other access interleaves, and
        // reading configuration space has no side effects on memory.
        unsafe {
            ports.address.write(address(device_function, register_offset));
            ports.data.read()
        }
    }

    fn write_word(&mut self, device_function: DeviceFunction, register_offset: u8, data: u32) {
        let mut ports = PORTS.lock();
        // SAFETY: as in `read_word`; the caller (the virtio transport) owns
        // the device whose register it writes.
        unsafe {
            ports.address.write(address(device_function, register_offset));
            ports.data.write(data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortConfigAccess
    }
}
