//! Copies between the kernel and a task's memory: the only way the kernel
//! touches user pages. Each copy first checks, in the task's own page
//! tables, that every page of the range is in the user half and mapped
//! user-accessible — and writable for a copy to the task — then copies with
//! SMAP lifted for just that copy (`arch::user::with_user_access`). A range
//! that fails the check is `BadAddress`; the copy itself cannot fault.

use tenfold_abi::{Error, layout};

use crate::arch::paging::{PAGE_SIZE, UserSpace};
use crate::arch::user::with_user_access;

/// Checks that `address..address + length` is user memory of `space` with
/// the access needed.
fn check(space: &UserSpace, address: u64, length: u64, write: bool) -> Result<(), Error> {
    if length == 0 {
        return Ok(());
    }
    let end = address.checked_add(length).ok_or(Error::BadAddress)?;
    if address < layout::USER_START || end > layout::USER_END {
        return Err(Error::BadAddress);
    }
    let mut page = address & !(PAGE_SIZE - 1);
    while page < end {
        match space.access(page) {
            Some(access) if access.write || !write => {}
            _ => return Err(Error::BadAddress),
        }
        page += PAGE_SIZE;
    }
    Ok(())
}

/// Checks that `address..address + length` is memory the task may have
/// written into, without writing (for a call that must know a later copy
/// will succeed before it does something it cannot undo).
pub fn check_writable(space: &UserSpace, address: u64, length: u64) -> Result<(), Error> {
    check(space, address, length, true)
}

/// The copies below run with the task's address space active: it is the
/// caller's own (the system call of the running task).
fn assert_active(space: &UserSpace) {
    let active = x86_64::registers::control::Cr3::read().0.start_address().as_u64();
    assert_eq!(active, space.level_4(), "user copy outside the task's address space");
}

/// Fills `into` from task memory at `address`.
pub fn copy_from_user(space: &UserSpace, address: u64, into: &mut [u8]) -> Result<(), Error> {
    check(space, address, into.len() as u64, false)?;
    assert_active(space);
    with_user_access(|| {
        // SAFETY: `check` found every page of the range mapped user-readable
        // in the active address space; `into` is kernel memory.
        unsafe { core::ptr::copy_nonoverlapping(address as *const u8, into.as_mut_ptr(), into.len()) }
    });
    Ok(())
}

/// Writes `data` to task memory at `address`.
pub fn copy_to_user(space: &UserSpace, address: u64, data: &[u8]) -> Result<(), Error> {
    check(space, address, data.len() as u64, true)?;
    assert_active(space);
    with_user_access(|| {
        // SAFETY: `check` found every page of the range mapped user-writable
        // in the active address space; `data` is kernel memory.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), address as *mut u8, data.len()) }
    });
    Ok(())
}
