//! TCP sockets for tasks: system calls 14–20, whose rules (a table per
//! task, handles with generations, blocking, what a task's death does) are
//! written down in `tenfold_abi::socket`. Owns each task's socket table;
//! the sockets themselves are the kernel's socket service's
//! (`tenfold_net::service`, reached through [`crate::net::service`]), which
//! parks only the calling thread and never touches task memory.
//!
//! **Copies.** Bytes go through a [`MAX_IO`] buffer on the caller's kernel
//! stack: a write copies in from the task before the service call, a read
//! checks the destination is writable first (so no byte is taken from the
//! connection that could not be delivered) and copies out after. No lock is
//! held across a user copy, and a thread parked in the service owns nothing
//! on the heap: if it is killed there (a fault injected, the watchdog, `kill`
//! on a blocked task), nothing leaks — its stale registration in the
//! socket's waiters is dropped at the next wake-up or close, and its sockets
//! are closed when its task is dropped ([`release`]).
//!
//! **Lending.** The actor echo server hands a connection to a handler task
//! with [`lend`]: the socket enters the task's table before it runs, marked
//! lent. The task uses it like its own (it may shut it down or close it),
//! but its death does not close it: the lender keeps it, to restart a
//! handler on it or close it.

use alloc::vec::Vec;

use tenfold_abi::Error;
use tenfold_abi::socket::{
    FOREVER, HANG_UP, MAX_BACKLOG, MAX_CONNECTIONS, MAX_IO, MAX_SOCKETS, READABLE, TRY, WRITABLE,
    make_handle, split_handle,
};
use tenfold_net::echo::ECHO_PORT;
use tenfold_net::service::{Interest, SocketError, SocketId};

use super::Task;
use super::usercopy::{check_writable, copy_from_user, copy_to_user};
use crate::time;

/// The service group of every task socket (groups matter only to the CSP
/// server's `close_group`, which never names this one).
pub const TASK_GROUP: u32 = u32::MAX;

/// One slot of a task's table.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    generation: u32,
    socket: Option<Held>,
}

#[derive(Clone, Copy, Debug)]
struct Held {
    id: SocketId,
    /// Lent by the kernel: not closed when the task dies.
    lent: bool,
}

/// A task's sockets: at most [`MAX_SOCKETS`] slots, grown on first use
/// (a task that never opens a socket holds no memory for them).
#[derive(Debug, Default)]
pub struct SocketTable {
    slots: Vec<Slot>,
}

impl SocketTable {
    /// Puts `id` in a free slot; its handle.
    fn insert(&mut self, id: SocketId, lent: bool) -> Result<u64, Error> {
        let index = match self.slots.iter().position(|slot| slot.socket.is_none()) {
            Some(index) => index,
            None if (self.slots.len() as u64) < MAX_SOCKETS => {
                self.slots.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
                self.slots.push(Slot { generation: 1, socket: None });
                self.slots.len() - 1
            }
            None => return Err(Error::OutOfQuota),
        };
        let slot = &mut self.slots[index];
        slot.socket = Some(Held { id, lent });
        Ok(make_handle(index as u32, slot.generation))
    }

    fn get(&self, handle: u64) -> Result<SocketId, Error> {
        let (index, generation) = split_handle(handle);
        match self.slots.get(index as usize) {
            Some(Slot { generation: current, socket: Some(held) }) if *current == generation => Ok(held.id),
            _ => Err(Error::NoSuchSocket),
        }
    }

    /// Takes `handle` out of the table: its generation moves on, so the
    /// handle is stale from now on.
    fn remove(&mut self, handle: u64) -> Result<SocketId, Error> {
        let id = self.get(handle)?;
        let slot = &mut self.slots[split_handle(handle).0 as usize];
        slot.socket = None;
        slot.generation = slot.generation.wrapping_add(1).max(1);
        Ok(id)
    }

    /// Sockets held now.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|slot| slot.socket.is_some()).count()
    }
}

fn error(error: SocketError) -> Error {
    match error {
        SocketError::NoSuchSocket => Error::NoSuchSocket,
        SocketError::WrongKind | SocketError::InvalidPort => Error::BadArgument,
        SocketError::Reset => Error::Reset,
        SocketError::Closed => Error::Closed,
        SocketError::TimedOut => Error::Timeout,
        SocketError::AddressInUse => Error::AddressInUse,
    }
}

/// When a wait ends: `None` waits for ever.
fn deadline(timeout_ns: u64) -> Option<u64> {
    match timeout_ns {
        TRY => Some(0),
        FOREVER => None,
        nanos => Some(time::now_ns().saturating_add(nanos)),
    }
}

fn service() -> Result<crate::net::Service, Error> {
    crate::net::service().ok_or(Error::NoNetwork)
}

/// A socket the service made for `task` goes into its table; if the table
/// is full it is closed again.
fn adopt(task: &Task, service: &crate::net::Service, id: SocketId) -> Result<u64, Error> {
    match task.inner().sockets.insert(id, false) {
        Ok(handle) => Ok(handle),
        Err(refused) => {
            let _ = service.reset(id);
            Err(refused)
        }
    }
}

/// `socket_listen(port, backlog, max_connections) -> handle`.
pub fn listen(task: &Task, port: u64, backlog: u64, max_connections: u64) -> Result<u64, Error> {
    let port = u16::try_from(port).ok().filter(|&port| port != 0).ok_or(Error::BadArgument)?;
    if port == ECHO_PORT {
        // The kernel's own echo server holds it, whatever its model.
        return Err(Error::AddressInUse);
    }
    if !(1..=MAX_BACKLOG).contains(&backlog) || !(1..=MAX_CONNECTIONS).contains(&max_connections) {
        return Err(Error::BadArgument);
    }
    if task.inner().sockets.len() as u64 >= MAX_SOCKETS {
        return Err(Error::OutOfQuota);
    }
    let service = service()?;
    let id = service.listen(port, backlog as usize, max_connections as usize, TASK_GROUP).map_err(error)?;
    adopt(task, &service, id)
}

/// `socket_accept(listener, timeout_ns) -> handle`.
pub fn accept(task: &Task, handle: u64, timeout_ns: u64) -> Result<u64, Error> {
    let listener = task.inner().sockets.get(handle)?;
    if task.inner().sockets.len() as u64 >= MAX_SOCKETS {
        return Err(Error::OutOfQuota);
    }
    let service = service()?;
    let id = service.accept(listener, deadline(timeout_ns)).map_err(error)?;
    adopt(task, &service, id)
}

/// `socket_read(handle, pointer, length, timeout_ns) -> count`.
pub fn read(task: &Task, handle: u64, address: u64, length: u64, timeout_ns: u64) -> Result<u64, Error> {
    let id = task.inner().sockets.get(handle)?;
    let length = length.min(MAX_IO);
    {
        // Checked before bytes leave the connection, so the copy below
        // cannot fail (only this task's own thread changes its mappings).
        let space = task.inner().space.as_ref().ok_or(Error::BadAddress)?;
        check_writable(space, address, length)?;
    }
    let mut buffer = [0u8; MAX_IO as usize];
    let count = service()?.read(id, &mut buffer[..length as usize], deadline(timeout_ns)).map_err(error)?;
    let space = task.inner().space.as_ref().ok_or(Error::BadAddress)?;
    copy_to_user(space, address, &buffer[..count])?;
    Ok(count as u64)
}

/// `socket_write(handle, pointer, length, timeout_ns) -> count`.
pub fn write(task: &Task, handle: u64, address: u64, length: u64, timeout_ns: u64) -> Result<u64, Error> {
    let id = task.inner().sockets.get(handle)?;
    let length = length.min(MAX_IO);
    let mut buffer = [0u8; MAX_IO as usize];
    {
        let space = task.inner().space.as_ref().ok_or(Error::BadAddress)?;
        copy_from_user(space, address, &mut buffer[..length as usize])?;
    }
    let count = service()?.write(id, &buffer[..length as usize], deadline(timeout_ns)).map_err(error)?;
    Ok(count as u64)
}

/// `socket_shutdown(handle) -> 0`.
pub fn shutdown(task: &Task, handle: u64) -> Result<u64, Error> {
    let id = task.inner().sockets.get(handle)?;
    service()?.shutdown(id).map_err(error)?;
    Ok(0)
}

/// `socket_close(handle) -> 0`: a lent socket is closed too (its lender
/// finds its handle stale).
pub fn close(task: &Task, handle: u64) -> Result<u64, Error> {
    let service = service()?;
    let id = task.inner().sockets.remove(handle)?;
    match service.close(id) {
        // Gone already: the lender closed it meanwhile.
        Ok(()) | Err(SocketError::NoSuchSocket) => Ok(0),
        Err(other) => Err(error(other)),
    }
}

/// `socket_wait(handle, interest, timeout_ns) -> readiness bits`.
pub fn wait(task: &Task, handle: u64, interest: u64, timeout_ns: u64) -> Result<u64, Error> {
    if interest & !(READABLE | WRITABLE) != 0 {
        return Err(Error::BadArgument);
    }
    let id = task.inner().sockets.get(handle)?;
    let interest = Interest { readable: interest & READABLE != 0, writable: interest & WRITABLE != 0 };
    let ready = service()?.wait(id, interest, deadline(timeout_ns)).map_err(error)?;
    Ok(if ready.readable { READABLE } else { 0 }
        | if ready.writable { WRITABLE } else { 0 }
        | if ready.hang_up { HANG_UP } else { 0 })
}

/// Lends `id` to `task`, which has not started yet: its handle in the
/// task's table.
pub fn lend(task: &Task, id: SocketId) -> Result<u64, Error> {
    task.inner().sockets.insert(id, true)
}

/// The end of a task: every socket it holds, except the lent ones, is
/// closed — with a FIN if it exited, with a reset if it was killed (what it
/// meant to send is lost either way). Called from the task's drop.
pub fn release(table: &mut SocketTable, exited: bool) {
    let held: Vec<SocketId> = table
        .slots
        .drain(..)
        .filter_map(|slot| slot.socket)
        .filter(|held| !held.lent)
        .map(|held| held.id)
        .collect();
    if held.is_empty() {
        return;
    }
    let Some(service) = crate::net::service() else { return };
    for id in held {
        let _ = if exited { service.close(id) } else { service.reset(id) };
    }
}
