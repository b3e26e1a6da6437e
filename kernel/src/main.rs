//! Tenfold kernel entry: brings the machine up in a fixed order and hands over
//! to what the kernel command line asks for (serve, self-test, or a deliberate
//! crash for the failing-path tests).
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod console;
mod drivers;
mod lab;
mod logger;
mod memory;
mod net;
mod panic;
mod params;
mod sched;
mod selftest;
mod shell;
mod stack;
mod sync;
mod time;

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::{BootInfo, entry_point};

/// Virtual layout (higher half), fixed so that addresses in fault reports and
/// gdb sessions are the same on every boot.
pub mod layout {
    /// All of physical memory, mapped by the bootloader.
    pub const PHYSICAL_MEMORY: u64 = 0xffff_8000_0000_0000;
    /// Kernel heap, grown on demand (see `memory::heap`).
    pub const HEAP: u64 = 0xffff_9000_0000_0000;
    /// Where the bootloader may place what we leave dynamic (boot info, stack).
    pub const BOOTLOADER_DYNAMIC: u64 = 0xffff_a000_0000_0000;
    /// The kernel image (a PIE loaded at a fixed base).
    pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;
}

const BOOT_STACK_SIZE: u64 = 256 * 1024;

static BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.kernel_stack_size = BOOT_STACK_SIZE;
    config.mappings.physical_memory = Some(Mapping::FixedAddress(layout::PHYSICAL_MEMORY));
    config.mappings.kernel_base = Mapping::FixedAddress(layout::KERNEL_BASE);
    config.mappings.dynamic_range_start = Some(layout::BOOTLOADER_DYNAMIC);
    config
};

entry_point!(kernel_main, config = &BOOTLOADER_CONFIG);

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    let entry_tsc = arch::cpu::timestamp_counter();
    console::init();
    logger::init();
    time::init(entry_tsc);
    arch::init();
    let params = params::load();
    logger::set_level(params.log_level);
    memory::init(boot_info, &params);
    arch::init_interrupt_controllers(time::tsc_hz(), &mut memory::frames::allocate);
    let boot_stack =
        (boot_info.kernel_stack_bottom, boot_info.kernel_stack_bottom + boot_info.kernel_stack_len);
    sched::init(boot_stack, params.preemption);
    if let Some(cpus) = arch::fw_cfg::cpu_count().filter(|&cpus| cpus > 1) {
        log::warn!("{cpus} CPUs present; threads run on CPU 0 only (the other CPUs are not started yet)");
    }
    arch::cpu::enable_interrupts();

    let memory = memory::stats();
    log::info!(
        "Tenfold {} booted in {} ms ({} MiB usable, {} frames free, heap {} KiB of max {} MiB)",
        env!("CARGO_PKG_VERSION"),
        time::Millis(time::since_entry()),
        memory.frames.usable_bytes() >> 20,
        memory.frames.free_frames(),
        memory.heap.mapped_bytes >> 10,
        memory.heap.max_bytes >> 20,
    );

    if let Some(crash) = params.crash {
        selftest::crash(crash);
    }
    if let Some(filter) = params.test {
        selftest::run(filter);
    }
    if let Some((kind, name)) = params.lab {
        lab::run(kind, name);
    }

    net::start(&params);
    if let Err(error) = shell::start() {
        log::error!("cannot start the serial shell: {error:?}");
    }
    log::info!("kernel ready ({} ms since entry)", time::Millis(time::since_entry()));
    sched::exit()
}
