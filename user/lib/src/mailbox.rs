//! Mailboxes from the task side (rules in `tenfold_abi::mailbox`): a
//! [`Mailbox`] is one this task owns and receives from, an [`Address`] is
//! any mailbox's id to send to, [`Pages`] are whole pages from `map` that a
//! page transfer moves — Rust ownership mirrors the kernel's: sending
//! `Pages` consumes them, as the kernel unmaps them from this task.
//!
//! Tasks find each other by id: an owner prints or passes on
//! [`Mailbox::address`] (e.g. as a child's spawn-time argument, where the
//! shell's `run <program> <argument>` plays parent); [`Address::parse`]
//! reads it back.

use tenfold_abi::mailbox::{ANY_TAG, FOREVER, ReceiveInfo, TRY};
use tenfold_abi::{Error, MAP_WRITE, Sys};

use crate::{check, syscall3, syscall6};

/// A mailbox this task owns. Closed when dropped (and when the task ends).
pub struct Mailbox {
    id: u64,
}

/// A mailbox's id, to send to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address(pub u64);

/// What a receive got.
#[derive(Debug)]
pub struct Received {
    pub tag: u32,
    /// Bytes copied into the buffer, or the page message's length.
    pub length: usize,
    /// The sending task's id.
    pub sender: u64,
    /// The pages of a page message, now mapped in this task.
    pub pages: Option<Pages>,
}

impl Mailbox {
    /// A mailbox of `capacity` messages.
    pub fn create(capacity: u64) -> Result<Mailbox, Error> {
        check(syscall3(Sys::MailboxCreate as u64, capacity, 0, 0)).map(|id| Mailbox { id })
    }

    /// A mailbox the kernel made for this task (its id parsed from the
    /// task's argument); this task owns it like one it created.
    pub fn given(id: u64) -> Mailbox {
        Mailbox { id }
    }

    pub fn address(&self) -> Address {
        Address(self.id)
    }

    /// The oldest message, waiting as long as it takes.
    pub fn recv(&self, buffer: &mut [u8]) -> Result<Received, Error> {
        self.receive(ANY_TAG, buffer, FOREVER)
    }

    /// The oldest message, if one is there.
    pub fn try_recv(&self, buffer: &mut [u8]) -> Result<Received, Error> {
        self.receive(ANY_TAG, buffer, TRY)
    }

    /// The oldest message, waiting at most `timeout_ns`.
    pub fn recv_timeout(&self, buffer: &mut [u8], timeout_ns: u64) -> Result<Received, Error> {
        self.receive(ANY_TAG, buffer, timeout_ns)
    }

    /// The oldest message tagged `tag` (Erlang's selective `receive`): the
    /// others stay, in order. `Starved` if the mailbox is full of others.
    pub fn recv_tagged(&self, tag: u32, buffer: &mut [u8], timeout_ns: u64) -> Result<Received, Error> {
        self.receive(u64::from(tag), buffer, timeout_ns)
    }

    fn receive(&self, filter: u64, buffer: &mut [u8], timeout_ns: u64) -> Result<Received, Error> {
        let mut info = ReceiveInfo::default();
        let args = [
            self.id,
            filter,
            buffer.as_mut_ptr() as u64,
            buffer.len() as u64,
            timeout_ns,
            &mut info as *mut ReceiveInfo as u64,
        ];
        check(syscall6(Sys::MailboxReceive as u64, args))?;
        let pages = (info.pages_address != 0)
            .then(|| Pages { address: info.pages_address, pages: info.length / crate::PAGE_SIZE });
        Ok(Received { tag: info.tag as u32, length: info.length as usize, sender: info.sender, pages })
    }

    /// Closes it now: queued messages are dropped, senders get `NoSuchMailbox`.
    pub fn close(self) -> Result<(), Error> {
        let id = self.id;
        core::mem::forget(self);
        check(syscall3(Sys::MailboxClose as u64, id, 0, 0)).map(|_| ())
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        syscall3(Sys::MailboxClose as u64, self.id, 0, 0);
    }
}

impl Address {
    /// An id as printed by `Display` (decimal).
    pub fn parse(text: &str) -> Option<Address> {
        text.parse().ok().map(Address)
    }

    /// Sends a copy of `data`, waiting while the mailbox is full.
    pub fn send(self, tag: u32, data: &[u8]) -> Result<(), Error> {
        self.send_timeout(tag, data, FOREVER)
    }

    /// Sends if there is room now, else `Full`.
    pub fn try_send(self, tag: u32, data: &[u8]) -> Result<(), Error> {
        self.send_timeout(tag, data, TRY)
    }

    /// Sends, waiting at most `timeout_ns` while full (then `Full`).
    pub fn send_timeout(self, tag: u32, data: &[u8], timeout_ns: u64) -> Result<(), Error> {
        let args = [self.0, u64::from(tag), data.as_ptr() as u64, data.len() as u64, timeout_ns, 0];
        check(syscall6(Sys::MailboxSend as u64, args)).map(|_| ())
    }

    /// Moves `pages` into a message without copying; on failure they come
    /// back with the error.
    pub fn send_pages(self, tag: u32, pages: Pages, timeout_ns: u64) -> Result<(), (Error, Pages)> {
        let args = [self.0, u64::from(tag), pages.address, pages.pages, timeout_ns, 0];
        match check(syscall6(Sys::MailboxSendPages as u64, args)) {
            Ok(_) => {
                core::mem::forget(pages);
                Ok(())
            }
            Err(error) => Err((error, pages)),
        }
    }
}

impl core::fmt::Display for Address {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Whole pages of this task's memory (one `map` region): what a page
/// transfer moves. Unmapped when dropped.
#[derive(Debug)]
pub struct Pages {
    address: u64,
    pages: u64,
}

impl Pages {
    /// `pages` fresh zeroed writable pages.
    pub fn map(pages: u64) -> Result<Pages, Error> {
        crate::map(pages * crate::PAGE_SIZE, MAP_WRITE).map(|address| Pages { address, pages })
    }

    pub fn address(&self) -> u64 {
        self.address
    }

    pub fn len(&self) -> usize {
        (self.pages * crate::PAGE_SIZE) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.pages == 0
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the region is mapped readable and owned by this value
        // (one `map` region, or one received page message) until it drops.
        unsafe { core::slice::from_raw_parts(self.address as *const u8, self.len()) }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; mapped writable, and `&mut self` makes the
        // borrow unique.
        unsafe { core::slice::from_raw_parts_mut(self.address as *mut u8, self.len()) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        let _ = crate::unmap(self.address, self.pages * crate::PAGE_SIZE);
    }
}
