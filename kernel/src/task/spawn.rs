//! Tasks starting tasks: system calls 21 (`spawn`) and 22 (`kill`), whose
//! rules (ids, the bound on children, monitors and their death notices,
//! what a parent's end does) are written down in `tenfold_abi::task`.
//!
//! The mechanism is the kernel's own: a child is loaded and started by
//! [`super::run_with`] like the shell's `run`, with [`sched::Owner::Parent`]
//! so the scheduler counts it against its parent, refuses past the bounds
//! and crashes it when the parent ends; `kill` is the shell's injected CPU
//! fault, reachable only for the caller's own children. A monitored
//! child's notice is sent by its task's drop ([`super::Task`]), once, into
//! room reserved here before the child exists.

use alloc::string::String;
use alloc::vec;

use tenfold_abi::Error;
use tenfold_abi::task::{MAX_ARGUMENT, MAX_NAME, NONE};

use super::loader::LoadError;
use super::usercopy::copy_from_user;
use super::{Limits, RunError, Task, initrd, mailbox};
use crate::sched::{self, KillError, Owner, SpawnError};

/// `spawn(name_ptr, name_len, arg_ptr, arg_len, notify) -> task id`.
pub fn spawn(task: &Task, args: [u64; 6]) -> Result<u64, Error> {
    let [name_address, name_length, argument_address, argument_length, notify, _] = args;
    if name_length == 0 || name_length > MAX_NAME || argument_length > MAX_ARGUMENT {
        return Err(Error::BadLength);
    }
    let mut name = [0u8; MAX_NAME as usize];
    let name = &mut name[..name_length as usize];
    let mut argument = vec![0u8; argument_length as usize];
    {
        let space = task.inner().space.as_ref().ok_or(Error::BadAddress)?;
        copy_from_user(space, name_address, name)?;
        copy_from_user(space, argument_address, &mut argument)?;
    }
    let name = core::str::from_utf8(name).map_err(|_| Error::BadArgument)?;
    let argument = String::from_utf8(argument).map_err(|_| Error::BadArgument)?;
    // Cheap refusals before a program is loaded (the scheduler checks the
    // bound again when it adds the thread).
    if initrd::find(name).is_none() {
        return Err(Error::NoSuchProgram);
    }
    if !sched::may_spawn_child() {
        return Err(Error::OutOfQuota);
    }
    let monitored = notify != NONE;
    if monitored {
        mailbox::reserve_notice(task, notify)?;
    }
    let parent = Owner::Parent(sched::current());
    let started = super::run_with(name, name, Limits::DEFAULT, parent, |child| {
        if monitored {
            child.set_notify(notify);
        }
        Ok(argument)
    });
    match started {
        Ok(thread) => Ok(u64::from(thread.tid())),
        Err(error) => {
            if monitored {
                mailbox::cancel_notice(notify);
            }
            Err(match error {
                RunError::NoSuchProgram => Error::NoSuchProgram,
                RunError::Load(LoadError::OverQuota) | RunError::Spawn(SpawnError::TooManyChildren) => {
                    Error::OutOfQuota
                }
                RunError::Load(LoadError::OutOfMemory) | RunError::Spawn(_) => Error::OutOfMemory,
                // An initrd program the loader refuses is not the caller's fault,
                // but it cannot be started either.
                RunError::Load(_) => Error::BadArgument,
                RunError::Setup(error) => error,
            })
        }
    }
}

/// `kill(task) -> 0`: only a live child of the caller's.
pub fn kill(task_id: u64) -> Result<u64, Error> {
    let tid = u32::try_from(task_id).map_err(|_| Error::NoSuchTask)?;
    match sched::kill_child(tid) {
        Ok(_) => Ok(0),
        Err(KillError::NoSuchThread | KillError::Essential | KillError::NotATask) => Err(Error::NoSuchTask),
    }
}
