//! Stack traces by frame-pointer walking (the kernel is built with
//! `-C force-frame-pointers=yes`). Each step is checked against the page
//! tables first, so a corrupt chain ends the trace instead of faulting again.
//! Addresses are printed raw; the host runner symbolises lines of the form
//! `#N 0x…` with the unstripped kernel ELF.

use core::fmt::Write;

use super::paging;

const MAX_FRAMES: usize = 32;

/// Writes the trace starting at `rip`, then the return addresses found by
/// following the frame-pointer chain from `rbp`.
pub fn write(out: &mut dyn Write, rip: u64, mut rbp: u64) -> core::fmt::Result {
    writeln!(out, "    stack trace (most recent call first):")?;
    writeln!(out, "      #0 {rip:#018x}")?;
    for depth in 1..MAX_FRAMES {
        if rbp == 0 || !rbp.is_multiple_of(8) || !paging::is_mapped(rbp) || !paging::is_mapped(rbp + 8) {
            break;
        }
        // SAFETY: both words were just found mapped; the frame layout is
        // [saved rbp, return address] under frame pointers.
        let (next_rbp, return_address) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        if return_address == 0 {
            break;
        }
        // Return addresses point after the call; step back into it so the
        // symboliser names the calling line.
        writeln!(out, "      #{depth} {:#018x}", return_address - 1)?;
        if next_rbp <= rbp {
            break;
        }
        rbp = next_rbp;
    }
    Ok(())
}
