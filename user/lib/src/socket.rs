//! TCP sockets from the task side (rules in `tenfold_abi::socket`): a
//! [`Socket`] owns one handle of this task's socket table and closes it when
//! dropped; blocking calls park only this task's thread. [`Socket::lent`]
//! wraps a handle the kernel put in the table before the task started (the
//! actor echo server's connection, named in the task's argument).

use tenfold_abi::socket::{FOREVER, HANG_UP, READABLE, WRITABLE};
use tenfold_abi::{Error, Sys};

use crate::{check, syscall3, syscall6};

/// A listener or a connection of this task's.
#[derive(Debug)]
pub struct Socket {
    handle: u64,
}

/// What [`Socket::wait`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    pub readable: bool,
    pub writable: bool,
    pub hang_up: bool,
}

impl Socket {
    /// Listens on TCP `port`.
    pub fn listen(port: u16, backlog: u64, max_connections: u64) -> Result<Socket, Error> {
        let handle = check(syscall3(Sys::SocketListen as u64, u64::from(port), backlog, max_connections))?;
        Ok(Socket { handle })
    }

    /// A handle the kernel lent this task (parsed from its argument).
    pub fn lent(handle: u64) -> Socket {
        Socket { handle }
    }

    /// The raw handle (for the system calls directly, or to print).
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// The next connection, waiting at most `timeout_ns`.
    pub fn accept_timeout(&self, timeout_ns: u64) -> Result<Socket, Error> {
        let handle = check(syscall3(Sys::SocketAccept as u64, self.handle, timeout_ns, 0))?;
        Ok(Socket { handle })
    }

    /// The next connection.
    pub fn accept(&self) -> Result<Socket, Error> {
        self.accept_timeout(FOREVER)
    }

    /// Reads into `buffer`: at least one byte, or 0 at end of stream.
    pub fn read_timeout(&self, buffer: &mut [u8], timeout_ns: u64) -> Result<usize, Error> {
        let args = [self.handle, buffer.as_mut_ptr() as u64, buffer.len() as u64, timeout_ns, 0, 0];
        check(syscall6(Sys::SocketRead as u64, args)).map(|count| count as usize)
    }

    pub fn read(&self, buffer: &mut [u8]) -> Result<usize, Error> {
        self.read_timeout(buffer, FOREVER)
    }

    /// Writes some of `data` (at least one byte).
    pub fn write_timeout(&self, data: &[u8], timeout_ns: u64) -> Result<usize, Error> {
        let args = [self.handle, data.as_ptr() as u64, data.len() as u64, timeout_ns, 0, 0];
        check(syscall6(Sys::SocketWrite as u64, args)).map(|count| count as usize)
    }

    /// Writes all of `data`, waiting for room as needed.
    pub fn write_all(&self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            let written = self.write_timeout(data, FOREVER)?;
            data = &data[written..];
        }
        Ok(())
    }

    /// Finishes the write side (FIN after what was written).
    pub fn shutdown(&self) -> Result<(), Error> {
        check(syscall3(Sys::SocketShutdown as u64, self.handle, 0, 0)).map(|_| ())
    }

    /// Waits until readable and/or writable (as asked) or hung up.
    pub fn wait(&self, readable: bool, writable: bool, timeout_ns: u64) -> Result<Readiness, Error> {
        let interest = if readable { READABLE } else { 0 } | if writable { WRITABLE } else { 0 };
        let bits = check(syscall3(Sys::SocketWait as u64, self.handle, interest, timeout_ns))?;
        Ok(Readiness {
            readable: bits & READABLE != 0,
            writable: bits & WRITABLE != 0,
            hang_up: bits & HANG_UP != 0,
        })
    }

    /// Closes the socket, reporting an error the drop would ignore.
    pub fn close(self) -> Result<(), Error> {
        let handle = self.handle;
        core::mem::forget(self);
        close_handle(handle)
    }
}

/// `socket_close` on a raw handle.
pub fn close_handle(handle: u64) -> Result<(), Error> {
    check(syscall3(Sys::SocketClose as u64, handle, 0, 0)).map(|_| ())
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = close_handle(self.handle);
    }
}
