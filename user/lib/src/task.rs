//! Child tasks from the task side (rules in `tenfold_abi::task`): [`spawn`]
//! starts a program from the initrd as a child of this task, monitored
//! through a [`Mailbox`] of its own if given; [`kill`] crashes one of its
//! children; [`Down`] reads the death notice a monitored child's end
//! leaves in that mailbox (tag [`DOWN_TAG`]).

use tenfold_abi::mailbox::{DOWN_TAG, KERNEL_SENDER};
use tenfold_abi::{Error, Sys};

pub use tenfold_abi::task::{
    CAUSE_EXITED, CAUSE_FAULT, CAUSE_KILLED, CAUSE_PARENT_ENDED, CAUSE_WATCHDOG, Down, MAX_CHILDREN,
    MAX_SPAWNED, NONE,
};

use crate::mailbox::{Mailbox, Received};
use crate::{check, syscall3, syscall6};

/// Starts `program` with `argument` as a child task; its death is told to
/// `monitor` if given. Returns the child's task id.
pub fn spawn(program: &str, argument: &str, monitor: Option<&Mailbox>) -> Result<u64, Error> {
    let notify = monitor.map_or(NONE, |mailbox| mailbox.address().0);
    spawn_raw([
        program.as_ptr() as u64,
        program.len() as u64,
        argument.as_ptr() as u64,
        argument.len() as u64,
        notify,
        0,
    ])
}

/// The `spawn` call with its raw arguments (name pointer and length,
/// argument pointer and length, notify mailbox id).
pub fn spawn_raw(args: [u64; 6]) -> Result<u64, Error> {
    check(syscall6(Sys::Spawn as u64, args))
}

/// Crashes child `task` (a real CPU fault); `NoSuchTask` if it is not a
/// live child of this task.
pub fn kill(task: u64) -> Result<(), Error> {
    check(syscall3(Sys::Kill as u64, task, 0, 0)).map(|_| ())
}

/// The death notice in a received message, if it is one: the kernel's tag
/// and sender, and a body of the right size.
pub fn down(received: &Received, body: &[u8]) -> Option<Down> {
    if received.tag != DOWN_TAG || received.sender != KERNEL_SENDER {
        return None;
    }
    Down::from_bytes(body.get(..received.length)?)
}
