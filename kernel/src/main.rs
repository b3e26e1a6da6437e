//! Tenfold kernel entry: brings the machine up in a fixed order and hands over
//! to what the kernel command line asks for (serve, self-test, or a deliberate
//! crash for the failing-path tests).
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod boot;
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
mod task;
mod time;

use boot::BootInfo;

/// Virtual layout (higher half), fixed so that addresses in fault reports and
/// gdb sessions are the same on every boot.
pub mod layout {
    /// All of physical memory (both boot paths map it here).
    pub const PHYSICAL_MEMORY: u64 = 0xffff_8000_0000_0000;
    /// Kernel heap, grown on demand (see `memory::heap`).
    pub const HEAP: u64 = 0xffff_9000_0000_0000;
    /// Where the bootloader may place what we leave dynamic (boot info, stack).
    pub const BOOTLOADER_DYNAMIC: u64 = 0xffff_a000_0000_0000;
    /// Virtual minus physical address of the kernel image (kernel/linker.ld).
    pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;
}

/// The kernel proper, entered from either boot path (`boot::pvh`,
/// `boot::bootloader`) with what that path found.
pub fn kernel_main(boot: BootInfo) -> ! {
    console::init();
    logger::init();
    time::init(boot.entry_tsc);
    arch::init();
    let params = params::load(boot.cmdline);
    logger::set_level(params.log_level);
    log::info!("booted by {}", boot.protocol.name());
    memory::init(&boot, &params);
    task::initrd::init(&boot);
    let (smep, smap) = arch::user::init(0, task::syscalls::dispatch);
    log::info!(
        "ring 3: syscall entry, NX, SMEP {}, SMAP {}",
        if smep { "on" } else { "off (CPU lacks it)" },
        if smap { "on" } else { "off (CPU lacks it)" }
    );
    arch::init_interrupt_controllers(time::tsc_hz(), &mut memory::frames::allocate);
    sched::init(boot.boot_stack, params.preemption);
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
