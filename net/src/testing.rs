//! Host test harness: two stacks wired back to back (frames pumped between
//! their devices, 1 ms of simulated time per step) and a trivial executor
//! that polls every task each step.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr};

use crate::device::{FrameDevice, QueueLimits};
use crate::stack::{NetConfig, NetStack, TcpTuning};
use crate::tcp::SharedStack;

pub const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
pub const CLIENT: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);

pub type Task = Pin<Box<dyn Future<Output = ()>>>;

pub struct Pair {
    pub server: SharedStack,
    pub client: SharedStack,
    pub now: i64,
    pub tasks: Vec<Task>,
    pub spawned: Rc<RefCell<Vec<Task>>>,
    /// Off: frames from the client are lost (a peer that went silent).
    pub client_reaches_server: bool,
}

fn stack(address: Ipv4Address, mac: u8, tcp: TcpTuning) -> SharedStack {
    let config =
        NetConfig { mac: [0x02, 0, 0, 0, 0, mac], address: Ipv4Cidr::new(address, 24), gateway: None, tcp };
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
            client_reaches_server: true,
        }
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
        let mut context = Context::from_waker(Waker::noop());
        self.tasks.extend(self.spawned.borrow_mut().drain(..));
        self.tasks.retain_mut(|task| task.as_mut().poll(&mut context) == Poll::Pending);
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
        let NetStack { interface, sockets, .. } = &mut *client;
        sockets
            .get_mut::<tcp::Socket>(handle)
            .connect(interface.context(), IpEndpoint::new(IpAddress::Ipv4(SERVER), port), local_port)
            .expect("connect");
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
