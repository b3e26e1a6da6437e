//! The system calls (numbers and errors in `tenfold-abi`). Every argument
//! is checked before anything happens; a bad one is an error code, never a
//! fault. Runs on the calling thread's kernel stack with interrupts on, so
//! a call may sleep or be preempted like any kernel code.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use tenfold_abi::{ABI_VERSION, Error, MAP_WRITE, MAX_SLEEP_NS, MAX_WRITE, Sys, layout};

use super::usercopy::{copy_from_user, copy_to_user};
use super::{Task, mailbox, socket, spawn};
use crate::arch::paging::{MapError, PAGE_SIZE, UserAccess};
use crate::arch::{TrapFrame, cpu, traps, user};
use crate::memory::frames;
use crate::{console, sched, time};

/// System calls made, and refused with an error, since boot.
static CALLS: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// (calls, refused) since boot.
pub fn counters() -> (u64, u64) {
    (CALLS.load(Ordering::Relaxed), REFUSED.load(Ordering::Relaxed))
}

/// The `syscall` handler (installed in `arch::user::init`).
pub fn dispatch(frame: &mut TrapFrame) -> *mut TrapFrame {
    CALLS.fetch_add(1, Ordering::Relaxed);
    let Some(task) = sched::current_task() else {
        // `syscall` from a kernel thread cannot happen (only ring 3 uses it).
        panic!("a system call from a thread without a task");
    };
    cpu::enable_interrupts();
    let args = [frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9];
    let result = match Sys::from_number(frame.rax) {
        Some(call) => handle(task, call, args),
        None => Err(Error::NoSuchCall),
    };
    x86_64::instructions::interrupts::disable();
    frame.rax = match result {
        Ok(value) => value,
        Err(error) => {
            REFUSED.fetch_add(1, Ordering::Relaxed);
            error as i64 as u64
        }
    };
    // Back to ring 3 only at a canonical user address (see arch::user).
    if !user::user_rip_ok(frame.rip) {
        log::error!(
            "task `{}`: system call returns to {:#x}, outside the user half; killed",
            task.name(),
            frame.rip
        );
        return traps::kill_running_task(frame);
    }
    frame
}

fn handle(task: &Task, call: Sys, args: [u64; 6]) -> Result<u64, Error> {
    match call {
        Sys::Exit => {
            let code = args[0] as i64;
            log::info!("task `{}` (tid {}) exited with code {code}", task.name(), sched::current().tid());
            task.mark_exited(code);
            sched::exit()
        }
        Sys::Yield => {
            sched::yield_now();
            Ok(0)
        }
        Sys::Sleep => {
            if args[0] > MAX_SLEEP_NS {
                return Err(Error::BadArgument);
            }
            sched::sleep(Duration::from_nanos(args[0]));
            Ok(0)
        }
        Sys::Clock => Ok(time::now_ns()),
        Sys::Write => write(task, args[0], args[1]),
        Sys::Map => map(task, args[0], args[1]),
        Sys::Unmap => unmap(task, args[0], args[1]),
        Sys::Argument => {
            let argument = task.argument().as_bytes();
            let length = argument.len().min(usize::try_from(args[1]).unwrap_or(usize::MAX));
            let space = task.inner().space.as_ref().ok_or(Error::BadAddress)?;
            copy_to_user(space, args[0], &argument[..length])?;
            Ok(argument.len() as u64)
        }
        Sys::AbiVersion => Ok(u64::from(ABI_VERSION)),
        Sys::MailboxCreate => mailbox::create(task, args[0]),
        Sys::MailboxSend => mailbox::send(task, args[0], args[1], args[2], args[3], args[4]),
        Sys::MailboxReceive => mailbox::receive(task, args),
        Sys::MailboxClose => mailbox::close(task, args[0]),
        Sys::MailboxSendPages => mailbox::send_pages(task, args[0], args[1], args[2], args[3], args[4]),
        Sys::SocketListen => socket::listen(task, args[0], args[1], args[2]),
        Sys::SocketAccept => socket::accept(task, args[0], args[1]),
        Sys::SocketRead => socket::read(task, args[0], args[1], args[2], args[3]),
        Sys::SocketWrite => socket::write(task, args[0], args[1], args[2], args[3]),
        Sys::SocketShutdown => socket::shutdown(task, args[0]),
        Sys::SocketClose => socket::close(task, args[0]),
        Sys::SocketWait => socket::wait(task, args[0], args[1], args[2]),
        Sys::Spawn => spawn::spawn(task, args),
        Sys::Kill => spawn::kill(args[0]),
    }
}

fn write(task: &Task, address: u64, length: u64) -> Result<u64, Error> {
    if length > MAX_WRITE {
        return Err(Error::BadLength);
    }
    let mut buffer = [0u8; MAX_WRITE as usize];
    let buffer = &mut buffer[..length as usize];
    let space = task.inner().space.as_ref().ok_or(Error::BadAddress)?;
    copy_from_user(space, address, buffer)?;
    console::write_untrusted(buffer);
    Ok(length)
}

fn map(task: &Task, length: u64, flags: u64) -> Result<u64, Error> {
    if flags & !MAP_WRITE != 0 {
        return Err(Error::BadArgument);
    }
    if length == 0 || length > task.quota_frames() * PAGE_SIZE {
        return Err(Error::BadLength);
    }
    let access = UserAccess { write: flags & MAP_WRITE != 0, execute: false };
    let zeroed_frame = |_| {
        let frame = frames::allocate().ok_or(Error::OutOfMemory)?;
        crate::arch::paging::zero_frame(frame);
        Ok(frame)
    };
    map_region(task, length.div_ceil(PAGE_SIZE), access, zeroed_frame, frames::free)
}

/// Maps `pages` pages as one new region at the next address of the task's
/// map window, the frame of page `n` from `frame(n)`, within the quota and
/// the region limit. On failure nothing stays mapped: every frame taken so
/// far goes to `give_back`.
pub(super) fn map_region(
    task: &Task,
    pages: u64,
    access: UserAccess,
    mut frame: impl FnMut(u64) -> Result<u64, Error>,
    mut give_back: impl FnMut(u64),
) -> Result<u64, Error> {
    // Page tables may add a few frames; the check after mapping is exact.
    if task.frames() + pages > task.quota_frames() {
        return Err(Error::OutOfQuota);
    }
    let inner = task.inner();
    if inner.regions.len() == super::MAX_REGIONS {
        return Err(Error::OutOfQuota);
    }
    let start = inner.map_next;
    let end = start
        .checked_add(pages * PAGE_SIZE)
        .filter(|&end| end <= layout::MAP_END)
        .ok_or(Error::OutOfMemory)?;
    let space = inner.space.as_mut().ok_or(Error::BadAddress)?;
    let mut failure = None;
    let mut mapped = start;
    while mapped < end {
        let next = match frame((mapped - start) / PAGE_SIZE) {
            Ok(next) => next,
            Err(error) => {
                failure = Some(error);
                break;
            }
        };
        if let Err(error) = space.map(mapped, next, access, &mut frames::allocate) {
            give_back(next);
            failure = Some(match error {
                MapError::OutOfFrames => Error::OutOfMemory,
                MapError::AlreadyMapped => Error::BadAddress,
            });
            break;
        }
        mapped += PAGE_SIZE;
        if space.frames() > task.quota_frames() {
            failure = Some(Error::OutOfQuota);
            break;
        }
    }
    if let Some(error) = failure {
        let mut page = start;
        while page < mapped {
            if let Some(frame) = space.unmap(page) {
                give_back(frame);
            }
            page += PAGE_SIZE;
        }
        task.sync_frames(space);
        return Err(error);
    }
    inner.map_next = end;
    inner.regions.push((start, pages));
    task.sync_frames(space);
    Ok(start)
}

fn unmap(task: &Task, address: u64, length: u64) -> Result<u64, Error> {
    let inner = task.inner();
    // Only a whole region `map` made: code, data and stack cannot be unmapped.
    let index = inner.regions.iter().position(|&(start, _)| start == address).ok_or(Error::BadAddress)?;
    let (start, pages) = inner.regions[index];
    if length.div_ceil(PAGE_SIZE) != pages {
        return Err(Error::BadLength);
    }
    let space = inner.space.as_mut().ok_or(Error::BadAddress)?;
    for page in 0..pages {
        if let Some(frame) = space.unmap(start + page * PAGE_SIZE) {
            frames::free(frame);
        }
    }
    inner.regions.swap_remove(index);
    task.sync_frames(space);
    Ok(0)
}
