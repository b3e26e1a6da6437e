//! Async TCP for the event loop, over the readiness layer:
//! [`TcpListener::accept`], [`TcpStream::read`] and [`TcpStream::write`] are
//! futures that try the socket and, when it is not ready, leave the task's
//! waker with the stack's [`crate::readiness::Poller`]; the stack's poll (the
//! loop's I/O phase) wakes exactly the tasks whose sockets became ready. The
//! stack is shared by the tasks of one event-loop thread (`Rc<RefCell<_>>`);
//! every borrow ends before a future returns, so no borrow spans an await.

use alloc::rc::Rc;
use core::cell::RefCell;
use core::future::poll_fn;
use core::task::{Context, Poll, Waker};

use crate::sockets::SocketHandle;
use smoltcp::socket::tcp::{ListenError, State};
use smoltcp::wire::IpEndpoint;

use crate::listener::{Listener, ListenerStats, MemoryBudget};
use crate::stack::NetStack;

pub type SharedStack = Rc<RefCell<NetStack>>;

/// Whether the connection is still being set up.
pub fn handshaking(state: State) -> bool {
    matches!(state, State::SynSent | State::SynReceived)
}

/// Why a stream operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// The peer reset the connection (or it timed out).
    Reset,
    /// Writing after our side was shut down, or to a closed connection.
    Closed,
}

struct Shared {
    listener: Listener,
    /// The task waiting in `accept`, woken when sockets are re-armed.
    acceptor: Option<Waker>,
}

/// A listening port with a backlog and a connection cap.
#[derive(Clone)]
pub struct TcpListener {
    stack: SharedStack,
    shared: Rc<RefCell<Shared>>,
}

impl TcpListener {
    pub fn bind(
        stack: &SharedStack,
        port: u16,
        backlog: usize,
        max_connections: usize,
    ) -> Result<Self, ListenError> {
        let listener = Listener::new(&mut stack.borrow_mut(), port, backlog, max_connections)?;
        Ok(TcpListener {
            stack: stack.clone(),
            shared: Rc::new(RefCell::new(Shared { listener, acceptor: None })),
        })
    }

    /// The next connection.
    pub async fn accept(&self) -> TcpStream {
        poll_fn(|cx| {
            let mut stack = self.stack.borrow_mut();
            let mut shared = self.shared.borrow_mut();
            if let Some(handle) = shared.listener.accept(&mut stack) {
                return Poll::Ready(TcpStream {
                    stack: self.stack.clone(),
                    owner: Some(self.shared.clone()),
                    handle,
                    released: false,
                    established: false,
                });
            }
            // Woken when a handshake ends, a SYN takes a listening socket or
            // a close finishes (then the listener re-arms).
            stack.wait_port(shared.listener.port(), cx.waker());
            shared.acceptor = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Arms the listening sockets memory had not allowed, if it allows them
    /// now (`stack` is this listener's, borrowed by the caller); called by
    /// the event loop each iteration.
    pub fn refresh(&self, stack: &mut NetStack) {
        let mut shared = self.shared.borrow_mut();
        let port = shared.listener.port();
        let free = stack.port_counts(port).free;
        shared.listener.refresh(stack);
        // Sockets armed now (memory came back): let the acceptor look again.
        if stack.port_counts(port).free > free
            && let Some(acceptor) = shared.acceptor.take()
        {
            acceptor.wake();
        }
    }

    /// Bounds the connections by memory as well as by count.
    pub fn set_budget(&self, budget: MemoryBudget) {
        self.shared.borrow_mut().listener.set_budget(&mut self.stack.borrow_mut(), budget);
    }

    pub fn stats(&self) -> ListenerStats {
        self.shared.borrow().listener.stats
    }

    /// Connections open now.
    pub fn active(&self) -> usize {
        self.shared.borrow().listener.active()
    }
}

/// One TCP connection.
pub struct TcpStream {
    stack: SharedStack,
    owner: Option<Rc<RefCell<Shared>>>,
    handle: SocketHandle,
    released: bool,
    /// Whether the idle timeout replaced the handshake timeout yet.
    established: bool,
}

impl TcpStream {
    /// A client connection from `local_port` to `remote`.
    pub fn connect(
        stack: &SharedStack,
        remote: IpEndpoint,
        local_port: u16,
    ) -> Result<Self, smoltcp::socket::tcp::ConnectError> {
        let mut net = stack.borrow_mut();
        let handle = net.new_tcp_socket();
        if let Err(error) = net.connect(handle, remote, local_port) {
            net.remove_socket(handle);
            return Err(error);
        }
        Ok(TcpStream { stack: stack.clone(), owner: None, handle, released: false, established: true })
    }

    pub fn handle(&self) -> SocketHandle {
        self.handle
    }

    /// Reads into `buffer`; `Ok(0)` when the peer has finished sending.
    pub async fn read(&mut self, buffer: &mut [u8]) -> Result<usize, StreamError> {
        poll_fn(|cx| self.poll_read(cx, buffer)).await
    }

    /// The readiness form of [`TcpStream::read`], for futures that wait on
    /// reading and writing at once.
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buffer: &mut [u8]) -> Poll<Result<usize, StreamError>> {
        self.note_established();
        let mut stack = self.stack.borrow_mut();
        let socket = stack.tcp(self.handle);
        if socket.can_recv() {
            return Poll::Ready(socket.recv_slice(buffer).map_err(|_| StreamError::Reset));
        }
        if let Some(end) = receive_ended(socket) {
            return Poll::Ready(end);
        }
        stack.readiness().wait_readable(self.handle, cx.waker());
        Poll::Pending
    }

    /// Writes some of `data` (waits for room in the send buffer).
    pub async fn write(&mut self, data: &[u8]) -> Result<usize, StreamError> {
        poll_fn(|cx| self.poll_write(cx, data)).await
    }

    /// The readiness form of [`TcpStream::write`].
    pub fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<Result<usize, StreamError>> {
        self.note_established();
        let mut stack = self.stack.borrow_mut();
        let socket = stack.tcp(self.handle);
        if let Some(error) = send_ended(socket) {
            return Poll::Ready(Err(error));
        }
        if socket.can_send() {
            return Poll::Ready(socket.send_slice(data).map_err(|_| StreamError::Closed));
        }
        stack.readiness().wait_writable(self.handle, cx.waker());
        Poll::Pending
    }

    /// Echoes in place: moves what has been received into the send buffer,
    /// as much as the send buffer has room for, through `scratch` (the
    /// caller's stack, not per-connection memory). Returns the bytes moved
    /// (`Ok(0)` once the peer has finished sending and everything received
    /// was moved), or waits: for data when none is received, for room when
    /// the send buffer is full — so a peer that stops reading stops the
    /// reading too, and the window closes on it. `seen` is shown each chunk
    /// on its way through.
    pub fn poll_echo(
        &mut self,
        cx: &mut Context<'_>,
        scratch: &mut [u8],
        mut seen: impl FnMut(&[u8]),
    ) -> Poll<Result<usize, StreamError>> {
        self.note_established();
        let mut stack = self.stack.borrow_mut();
        let socket = stack.tcp(self.handle);
        let mut moved = 0;
        while socket.can_recv() && socket.can_send() {
            let room = socket.send_capacity() - socket.send_queue();
            let chunk = room.min(scratch.len());
            let count = socket.recv_slice(&mut scratch[..chunk]).map_err(|_| StreamError::Reset)?;
            if count == 0 {
                break;
            }
            seen(&scratch[..count]);
            // Fits: at most `room` bytes were taken.
            let sent = socket.send_slice(&scratch[..count]).map_err(|_| StreamError::Closed)?;
            debug_assert_eq!(sent, count);
            moved += count;
        }
        if moved > 0 {
            return Poll::Ready(Ok(moved));
        }
        if socket.can_recv() {
            // Data waits for room in the send buffer.
            if let Some(error) = send_ended(socket) {
                return Poll::Ready(Err(error));
            }
            stack.readiness().wait_writable(self.handle, cx.waker());
            return Poll::Pending;
        }
        if let Some(end) = receive_ended(socket) {
            return Poll::Ready(end);
        }
        stack.readiness().wait_readable(self.handle, cx.waker());
        Poll::Pending
    }

    /// Writes all of `data`.
    pub async fn write_all(&mut self, mut data: &[u8]) -> Result<(), StreamError> {
        while !data.is_empty() {
            let written = self.write(data).await?;
            data = &data[written..];
        }
        Ok(())
    }

    /// Once the handshake is done, the connection gets the idle timeout.
    fn note_established(&mut self) {
        if self.established {
            return;
        }
        let mut stack = self.stack.borrow_mut();
        if stack.tcp(self.handle).state() == State::Established {
            stack.apply_idle_timeout(self.handle);
            self.established = true;
        }
    }

    /// Finishes our side: a FIN follows the data already buffered.
    pub fn shutdown_write(&mut self) {
        self.stack.borrow_mut().tcp(self.handle).close();
    }

    /// Bytes waiting in the socket (received not read, written not sent).
    pub fn queued(&self) -> (usize, usize) {
        let mut stack = self.stack.borrow_mut();
        let socket = stack.tcp(self.handle);
        (socket.recv_queue(), socket.send_queue())
    }
}

/// With nothing left to receive: the end of the stream (`Ok(0)`: the peer
/// finished sending) or a reset; `None` while more may come (a connection
/// still in its handshake waits for it like for data).
pub(crate) fn receive_ended(socket: &smoltcp::socket::tcp::Socket) -> Option<Result<usize, StreamError>> {
    (!socket.may_recv() && !handshaking(socket.state()))
        .then(|| if socket.state() == State::Closed { Err(StreamError::Reset) } else { Ok(0) })
}

/// Why nothing more can be sent, if nothing can.
pub(crate) fn send_ended(socket: &smoltcp::socket::tcp::Socket) -> Option<StreamError> {
    (!socket.may_send() && !handshaking(socket.state()))
        .then(|| if socket.state() == State::Closed { StreamError::Reset } else { StreamError::Closed })
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        let mut stack = self.stack.borrow_mut();
        match &self.owner {
            Some(shared) => {
                let mut shared = shared.borrow_mut();
                shared.listener.release(&mut stack, self.handle);
                if let Some(acceptor) = shared.acceptor.take() {
                    acceptor.wake();
                }
            }
            None => {
                stack.tcp(self.handle).abort();
                stack.remove_socket(self.handle);
            }
        }
    }
}
