//! Host test harness: two stacks wired back to back (frames pumped between
//! their devices, 1 ms of simulated time per step) and a small executor that
//! polls a task only when its waker was woken — so a missed wake-up in the
//! readiness layer leaves a test stuck instead of passing unnoticed.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};

use crate::sockets::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr};

use crate::device::{FrameDevice, QueueLimits};
use crate::stack::{NetConfig, NetStack, TcpTuning};
use crate::tcp::SharedStack;

pub const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
pub const CLIENT: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);

pub type Task = Pin<Box<dyn Future<Output = ()>>>;

/// A waker that raises a flag.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A task and whether it was woken since its last poll.
pub struct Scheduled {
    task: Task,
    woken: Arc<Flag>,
}

impl From<Task> for Scheduled {
    fn from(task: Task) -> Self {
        Scheduled { task, woken: Arc::new(Flag(AtomicBool::new(true))) }
    }
}

pub struct Pair {
    pub server: SharedStack,
    pub client: SharedStack,
    pub now: i64,
    pub tasks: Vec<Scheduled>,
    pub spawned: Rc<RefCell<Vec<Task>>>,
    /// Task polls so far (a task is polled only when woken).
    pub polls: u64,
    /// Off: frames from the client are lost (a peer that went silent).
    pub client_reaches_server: bool,
}

fn stack(address: Ipv4Address, mac: u8, tcp: TcpTuning) -> SharedStack {
    let config = NetConfig {
        mac: [0x02, 0, 0, 0, 0, mac],
        address: Ipv4Cidr::new(address, 24),
        gateway: None,
        dhcp: false,
        tcp,
        seed: u64::from(mac) * 0x9E37_79B9,
    };
    Rc::new(RefCell::new(NetStack::new(config, FrameDevice::new(QueueLimits::default()), Instant::ZERO)))
}

impl Pair {
    pub fn new(server_tcp: TcpTuning) -> Pair {
        let client_tcp = TcpTuning { rx_buffer: 64 * 1024, tx_buffer: 64 * 1024, ..TcpTuning::default() };
        Pair {
            server: stack(SERVER, 1, server_tcp),
            client: stack(CLIENT, 2, client_tcp),
            now: 0,
            tasks: Vec::new(),
            spawned: Rc::new(RefCell::new(Vec::new())),
            polls: 0,
            client_reaches_server: true,
        }
    }

    /// Adds a task (polled on the next step).
    pub fn spawn(&mut self, task: Task) {
        self.tasks.push(Scheduled::from(task));
    }

    /// A spawner for `echo::serve`.
    pub fn spawner(&self) -> impl FnMut(Task) -> bool + 'static {
        let spawned = self.spawned.clone();
        move |task| {
            spawned.borrow_mut().push(task);
            true
        }
    }

    /// One step: poll stacks and tasks, move frames both ways, advance 1 ms.
    pub fn step(&mut self) {
        let now = Instant::from_millis(self.now);
        self.server.borrow_mut().poll(now);
        self.client.borrow_mut().poll(now);
        let spawned: Vec<Task> = self.spawned.borrow_mut().drain(..).collect();
        self.tasks.extend(spawned.into_iter().map(Scheduled::from));
        let polls = &mut self.polls;
        self.tasks.retain_mut(|scheduled| {
            if !scheduled.woken.0.swap(false, Ordering::SeqCst) {
                return true;
            }
            *polls += 1;
            let waker = Waker::from(scheduled.woken.clone());
            scheduled.task.as_mut().poll(&mut Context::from_waker(&waker)) == Poll::Pending
        });
        self.server.borrow_mut().poll(now);
        self.client.borrow_mut().poll(now);
        transfer(&self.server, &self.client);
        if self.client_reaches_server {
            transfer(&self.client, &self.server);
        } else {
            while let Some(frame) = self.client.borrow_mut().device.pop_transmit() {
                drop(frame);
            }
        }
        self.now += 1;
    }

    /// Steps until `done` or `limit` steps; returns whether done.
    #[must_use = "a scenario that never got there makes the checks after it vacuous"]
    pub fn run_until(&mut self, limit: usize, mut done: impl FnMut(&mut Pair) -> bool) -> bool {
        for _ in 0..limit {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    /// A client socket connecting to the server's `port` from `local_port`.
    pub fn connect(&mut self, port: u16, local_port: u16) -> SocketHandle {
        let mut client = self.client.borrow_mut();
        let handle = client.new_tcp_socket();
        client.connect(handle, IpEndpoint::new(IpAddress::Ipv4(SERVER), port), local_port).expect("connect");
        handle
    }

    pub fn client_socket<R>(&mut self, handle: SocketHandle, f: impl FnOnce(&mut tcp::Socket) -> R) -> R {
        f(self.client.borrow_mut().tcp(handle))
    }
}

fn transfer(from: &SharedStack, to: &SharedStack) {
    let mut from = from.borrow_mut();
    let mut to = to.borrow_mut();
    while let Some(frame) = from.device.pop_transmit() {
        to.device.push_received(&frame);
        from.device.recycle(frame);
    }
}

/// Deterministic pseudo-random bytes.
pub fn payload(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
