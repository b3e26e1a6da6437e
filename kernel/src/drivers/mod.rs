//! Device drivers. The console's UART lives in `console`; here are the PCI
//! bus and the virtio network card.

pub mod pci;
pub mod virtio_hal;
pub mod virtio_net;
