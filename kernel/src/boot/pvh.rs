//! Direct boot by QEMU's `-kernel` (the Xen PVH boot protocol): no firmware
//! stages, no bootloader. QEMU loads the ELF's segments at their physical
//! addresses and enters `pvh_start32`, named by the `XEN_ELFNOTE_PHYS32_ENTRY`
//! note below, in 32-bit protected mode with paging off and `ebx` = the
//! physical address of an `hvm_start_info` (memory map, command line,
//! modules, RSDP).
//!
//! The stub builds the boot page tables in the image's `.bss`, enters long
//! mode and calls [`pvh_main`] at the kernel's linked (higher-half) address.
//! The tables map, with 2 MiB pages: the first 4 GiB of physical memory at
//! 0 (only until [`pvh_main`] removes it) and at
//! [`layout::PHYSICAL_MEMORY`], and the kernel image at
//! [`layout::KERNEL_BASE`] + its physical address. RAM above 4 GiB is mapped
//! with 1 GiB pages where the CPU has them.
//!
//! Layout facts the stub relies on come from kernel/linker.ld: every
//! section's physical address is its virtual address minus
//! [`layout::KERNEL_BASE`].

use core::arch::global_asm;
use core::ops::Range;

use x86_64::registers::control::Cr3;

use super::{BootInfo, Protocol, Ranges};
use crate::arch::paging::PAGE_SIZE;
use crate::layout;

/// `hvm_start_info.magic` (xen/include/public/arch-x86/hvm/start_info.h).
const START_INFO_MAGIC: u32 = 0x336e_c578;
/// E820 type of usable RAM in the PVH memory map.
const E820_RAM: u32 = 1;
/// Boot stack: as large as the bootloader path's.
const BOOT_STACK_SIZE: usize = 256 * 1024;
const CMDLINE_MAX: usize = 4096;
/// Physical memory the stub's 2 MiB pages cover.
const STUB_MAPPED: u64 = 4 << 30;

global_asm!(
    r#"
    .set KERNEL_VIRTUAL_BASE, 0xffffffff80000000

    /* The PVH entry note: name "Xen", type 18 (XEN_ELFNOTE_PHYS32_ENTRY),
       an 8-byte physical entry address, every field 4-byte aligned.
       QEMU pads the name to the segment's alignment, so it must be 4. */
    .pushsection .note.tenfold.pvh, "a", @note
    .balign 4
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .balign 4
    .quad pvh_start32 - KERNEL_VIRTUAL_BASE
    .balign 4
    .popsection

    .pushsection .bss.pvh, "aw", @nobits
    .balign 4096
    .global pvh_pml4, pvh_pdpt_low, pvh_pdpt_high, pvh_pd, pvh_boot_stack_guard, pvh_boot_stack_top
pvh_pml4:      .skip 4096
pvh_pdpt_low:  .skip 4096
pvh_pdpt_high: .skip 4096
    /* Four page directories: 2048 entries of 2 MiB = the first 4 GiB. */
pvh_pd:        .skip 4 * 4096
    /* One unmapped page below the boot stack catches an overflow. */
pvh_boot_stack_guard: .skip 4096
    .skip {stack_size}
pvh_boot_stack_top:
    .popsection

    .pushsection .rodata.pvh_gdt, "a"
    .balign 16
pvh_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code, ring 0 */
    .quad 0x00cf92000000ffff    /* 0x10: data, ring 0 */
pvh_gdt_end:
    .balign 8
    .word 0
pvh_gdt_pointer32:
    .word pvh_gdt_end - pvh_gdt - 1
    .long pvh_gdt - KERNEL_VIRTUAL_BASE
    .balign 8
    .word 0, 0, 0
pvh_gdt_pointer64:
    .word pvh_gdt_end - pvh_gdt - 1
    .quad pvh_gdt
    .popsection

    .pushsection .text.pvh_start, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov %ebx, %edi

    /* PML4: [0] and [256] -> the low PDPT (identity and physical-memory
       window), [511] -> the high PDPT (kernel image). */
    mov $(pvh_pdpt_low - KERNEL_VIRTUAL_BASE + 0x3), %eax
    mov %eax, (pvh_pml4 - KERNEL_VIRTUAL_BASE)
    mov %eax, (pvh_pml4 - KERNEL_VIRTUAL_BASE + 256 * 8)
    mov $(pvh_pdpt_high - KERNEL_VIRTUAL_BASE + 0x3), %eax
    mov %eax, (pvh_pml4 - KERNEL_VIRTUAL_BASE + 511 * 8)

    /* Low PDPT [0..4] -> the four page directories. */
    mov $(pvh_pd - KERNEL_VIRTUAL_BASE + 0x3), %eax
    xor %ecx, %ecx
1:  mov %eax, (pvh_pdpt_low - KERNEL_VIRTUAL_BASE)(,%ecx,8)
    add $4096, %eax
    inc %ecx
    cmp $4, %ecx
    jb 1b

    /* High PDPT [510] (0xffffffff80000000) -> the first directory. */
    mov $(pvh_pd - KERNEL_VIRTUAL_BASE + 0x3), %eax
    mov %eax, (pvh_pdpt_high - KERNEL_VIRTUAL_BASE + 510 * 8)

    /* 2048 x 2 MiB pages: present, writable, page size. */
    mov $0x83, %eax
    xor %ecx, %ecx
2:  mov %eax, (pvh_pd - KERNEL_VIRTUAL_BASE)(,%ecx,8)
    add $0x200000, %eax
    inc %ecx
    cmp $2048, %ecx
    jb 2b

    /* PAE, global pages, SSE state (fxsave) and SSE exceptions. */
    mov %cr4, %eax
    or $((1 << 5) | (1 << 7) | (1 << 9) | (1 << 10)), %eax
    mov %eax, %cr4
    mov $(pvh_pml4 - KERNEL_VIRTUAL_BASE), %eax
    mov %eax, %cr3
    /* EFER: long mode, no-execute pages. */
    mov $0xC0000080, %ecx
    rdmsr
    or $((1 << 8) | (1 << 11)), %eax
    wrmsr
    /* Paging, write protection in ring 0, protected mode. */
    mov %cr0, %eax
    or $((1 << 31) | (1 << 16) | 1), %eax
    mov %eax, %cr0

    lgdt (pvh_gdt_pointer32 - KERNEL_VIRTUAL_BASE)
    ljmp $0x08, $(pvh_start64 - KERNEL_VIRTUAL_BASE)

    .code64
pvh_start64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    movabs $pvh_start64_high, %rax
    jmp *%rax
pvh_start64_high:
    lgdt pvh_gdt_pointer64(%rip)
    lea pvh_boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    /* The upper halves of registers are undefined after the mode switch. */
    mov %edi, %edi
    call {main}
    ud2
    .popsection
    "#,
    stack_size = const BOOT_STACK_SIZE,
    main = sym pvh_main,
    options(att_syntax)
);

unsafe extern "C" {
    static mut pvh_pml4: [u64; 512];
    static mut pvh_pdpt_low: [u64; 512];
    static mut pvh_pd: [u64; 4 * 512];
    static pvh_boot_stack_guard: [u8; 4096];
    static pvh_boot_stack_top: u8;
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// `hvm_start_info` (version 1).
#[repr(C)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

/// `hvm_memmap_table_entry`.
#[repr(C)]
struct MemoryMapEntry {
    address: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// `hvm_modlist_entry`.
#[repr(C)]
struct ModuleEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

/// A page table of our own for the 2 MiB region holding the boot stack's
/// guard page, so that one page can be left unmapped.
#[repr(C, align(4096))]
struct PageTable([u64; 512]);
static mut GUARD_TABLE: PageTable = PageTable([0; 512]);

static mut CMDLINE: [u8; CMDLINE_MAX] = [0; CMDLINE_MAX];

/// A reference to a boot structure through the physical-memory window.
///
/// # Safety
/// `physical` must hold a `T` that nothing mutates while it is used.
unsafe fn physical_ref<T>(physical: u64) -> &'static T {
    // SAFETY: the caller vouches for the contents; the window maps the first
    // 4 GiB, where QEMU puts every boot structure.
    unsafe { &*((layout::PHYSICAL_MEMORY + physical) as *const T) }
}

fn physical_of(virt: *const u8) -> u64 {
    virt as u64 - layout::KERNEL_BASE
}

/// Rust side of the PVH entry: on the boot stack, in long mode, at the
/// kernel's linked address. Translates `hvm_start_info` into [`BootInfo`].
extern "C" fn pvh_main(start_info_physical: u64) -> ! {
    let entry_tsc = crate::arch::cpu::timestamp_counter();
    // SAFETY: QEMU passes a valid start-info page below 4 GiB in ebx; the
    // magic is checked before any other field is believed.
    let info: &StartInfo = unsafe { physical_ref(start_info_physical) };
    if info.magic != START_INFO_MAGIC || info.version < 1 {
        fail("hvm_start_info has a bad magic or version 0 (no memory map)");
    }
    let high_memory = map_high_memory(info);
    drop_identity_map_and_guard_stack();

    let kernel_image = physical_of(&raw const __kernel_start)..physical_of(&raw const __kernel_end);
    let mut modules = Ranges::new();
    if info.nr_modules > 0 && info.modlist_paddr != 0 {
        for index in 0..u64::from(info.nr_modules) {
            // SAFETY: the module list has `nr_modules` entries (start_info.h).
            let module: &ModuleEntry =
                unsafe { physical_ref(info.modlist_paddr + index * size_of::<ModuleEntry>() as u64) };
            modules.push(module.paddr..module.paddr + module.size);
        }
    }
    let mut usable = Ranges::new();
    for ram in ram_ranges(info) {
        usable.push(ram.start..ram.end.min(high_memory));
    }
    usable.remove(kernel_image);
    for module in modules.iter() {
        usable.remove(page_rounded(module));
    }

    let boot = BootInfo {
        protocol: Protocol::Pvh,
        entry_tsc,
        usable,
        physical_memory_offset: layout::PHYSICAL_MEMORY,
        cmdline: copy_cmdline(info.cmdline_paddr),
        rsdp: (info.rsdp_paddr != 0).then_some(info.rsdp_paddr),
        modules,
        boot_stack: (
            &raw const pvh_boot_stack_guard as u64 + PAGE_SIZE,
            &raw const pvh_boot_stack_top as u64,
        ),
    };
    crate::kernel_main(boot)
}

/// The usable RAM in QEMU's memory map.
fn ram_ranges(info: &StartInfo) -> impl Iterator<Item = Range<u64>> + '_ {
    (0..u64::from(info.memmap_entries)).filter_map(|index| {
        // SAFETY: the memory map has `memmap_entries` entries (start_info.h).
        let entry: &MemoryMapEntry =
            unsafe { physical_ref(info.memmap_paddr + index * size_of::<MemoryMapEntry>() as u64) };
        (entry.kind == E820_RAM).then(|| entry.address..entry.address.saturating_add(entry.size))
    })
}

fn page_rounded(range: Range<u64>) -> Range<u64> {
    (range.start & !(PAGE_SIZE - 1))..range.end.next_multiple_of(PAGE_SIZE)
}

/// The end of mapped physical memory: 4 GiB from the stub, extended with
/// 1 GiB pages over the RAM the memory map reports above it where the CPU
/// supports them (else that RAM is left out, with a warning later).
fn map_high_memory(info: &StartInfo) -> u64 {
    let top = ram_ranges(info).map(|ram| ram.end).max().unwrap_or(0);
    // One PDPT covers 512 GiB.
    let top = top.min(512 << 30);
    if top <= STUB_MAPPED || !gigabyte_pages() {
        return STUB_MAPPED;
    }
    let gigabytes = top.div_ceil(1 << 30);
    for gigabyte in 4..gigabytes {
        // SAFETY: the low PDPT is ours (the stub's), its entries 4.. are
        // unused, and no reference to it exists; 1 GiB, present, writable,
        // page size, no-execute.
        unsafe { pvh_pdpt_low[gigabyte as usize] = (gigabyte << 30) | 0x83 | (1 << 63) };
    }
    gigabytes << 30
}

fn gigabyte_pages() -> bool {
    // CPUID 0x8000_0001 EDX bit 26: 1 GiB pages.
    let extended = core::arch::x86_64::__cpuid(0x8000_0000);
    extended.eax >= 0x8000_0001 && core::arch::x86_64::__cpuid(0x8000_0001).edx & (1 << 26) != 0
}

/// Removes the identity mapping of low memory (a null or small pointer must
/// fault), and unmaps the page below the boot stack so that an overflow
/// faults instead of running into the page tables below it.
fn drop_identity_map_and_guard_stack() {
    let guard = &raw const pvh_boot_stack_guard as u64;
    let guard_physical = guard - layout::KERNEL_BASE;
    let region = (guard_physical >> 21) as usize;
    // SAFETY: the stub's tables are ours alone and the CPU uses them; the new
    // table maps the same 2 MiB region with 4 KiB pages, the same frames and
    // flags (present, writable), except the guard page. CR3 is reloaded after
    // the edits, which flushes the TLB.
    unsafe {
        let table = &raw mut GUARD_TABLE.0;
        let base = (region as u64) << 21;
        for page in 0..512u64 {
            let physical = base + page * PAGE_SIZE;
            (*table)[page as usize] = if physical == guard_physical { 0 } else { physical | 0x3 };
        }
        let table_physical = table as u64 - layout::KERNEL_BASE;
        pvh_pd[region] = table_physical | 0x3;
        pvh_pml4[0] = 0;
        let (frame, flags) = Cr3::read();
        Cr3::write(frame, flags);
    }
}

/// Copies the command line out of low memory (the frame allocator may hand
/// that page out later). `None` when QEMU passed none.
fn copy_cmdline(physical: u64) -> Option<&'static [u8]> {
    if physical == 0 {
        return None;
    }
    let mut length = 0;
    let buffer = &raw mut CMDLINE;
    // SAFETY: CMDLINE is written only here, once, before anything reads it.
    let buffer = unsafe { &mut *buffer };
    while length < CMDLINE_MAX - 1 {
        // SAFETY: QEMU passes a NUL-terminated string below 4 GiB.
        let byte = unsafe { *physical_ref::<u8>(physical + length as u64) };
        if byte == 0 {
            break;
        }
        buffer[length] = byte;
        length += 1;
    }
    Some(&buffer[..length])
}

/// An unusable start-info: say so on COM1 and stop (nothing else is up yet).
fn fail(message: &str) -> ! {
    crate::console::init();
    crate::console::emergency(|out| {
        let _ = writeln!(out, "PVH boot failed: {message}");
    });
    crate::arch::cpu::halt_forever()
}
