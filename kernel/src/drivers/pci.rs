//! PCI enumeration on bus 0 of QEMU's `pc` machine (port-I/O configuration
//! access; SeaBIOS has already assigned BARs and interrupt lines).

use alloc::vec::Vec;

use virtio_drivers::transport::pci::bus::{Command, DeviceFunction, DeviceFunctionInfo, PciRoot};

use crate::arch::pci_config::PortConfigAccess;

/// A function found on the bus.
pub struct Found {
    pub function: DeviceFunction,
    pub info: DeviceFunctionInfo,
    /// The legacy interrupt line (= I/O APIC GSI on `pc`), if any.
    pub interrupt_line: Option<u8>,
}

/// The PCI root on port-I/O configuration access.
pub fn root() -> PciRoot<PortConfigAccess> {
    PciRoot::new(PortConfigAccess)
}

/// Every function on bus 0.
pub fn enumerate(root: &PciRoot<PortConfigAccess>) -> Vec<Found> {
    use virtio_drivers::transport::pci::bus::ConfigurationAccess;
    root.enumerate_bus(0)
        .map(|(function, info)| {
            let line = PortConfigAccess.read_word(function, 0x3C) & 0xFF;
            let pin = (PortConfigAccess.read_word(function, 0x3C) >> 8) & 0xFF;
            let interrupt_line = (pin != 0 && line != 0xFF).then_some(line as u8);
            Found { function, info, interrupt_line }
        })
        .collect()
}

/// Lets the function decode its memory BARs and master the bus (DMA).
pub fn enable(root: &mut PciRoot<PortConfigAccess>, function: DeviceFunction) {
    let (_, command) = root.get_status_command(function);
    root.set_command(function, command | Command::MEMORY_SPACE | Command::IO_SPACE | Command::BUS_MASTER);
}
