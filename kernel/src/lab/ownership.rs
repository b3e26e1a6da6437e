//! `demo=ownership`: how each model hands data over, inside the kernel.
//!
//! - CSP threads: ownership moved through a channel ("share memory by
//!   communicating") beside copying. A sender thread produces messages of
//!   each size and streams them to a receiver: moved (the buffer it
//!   produced travels — a pointer — and the sender can no longer touch it:
//!   the compiler refuses) or copied (the sender keeps its buffer and sends
//!   a copy, as it must when it may not give it up).
//! - The event loop (`demo=ownership-reactor` alone): all its futures share
//!   one heap, so a buffer is passed by reference — an `Rc` to the same
//!   bytes, which the producer keeps reading — or copied. Its failure mode,
//!   retention through closures: connection-like futures each register a
//!   callback capturing their buffer on a long-lived list (an event
//!   emitter's listeners) and finish; left registered, the callbacks keep
//!   every buffer alive after the futures are gone (the kernel heap shows
//!   it); removed when the future ends, the heap is back where it was.
//!
//! In both streams the receiver reads one byte of each message. Records
//! `@lab ownership unit=channel|executor mode=move|share|copy size=…
//! messages=… ns_per_message=…` and `@lab retention callbacks=kept|removed
//! connections=… buffer_bytes=… heap_before=… heap_after=… …`.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use tenfold_runtime::executor::{Executor, Limits, yield_now};

use crate::{memory, sync, time};

const SIZES: [usize; 4] = [64, 4096, 16 * 1024, 64 * 1024];
/// Bytes streamed per size and mode.
const BUDGET: usize = 8 << 20;
const CAPACITY: usize = 16;

/// Connection-like futures in the retention scenario.
const CONNECTIONS: usize = 64;
/// Each one's buffer.
const CONNECTION_BUFFER: usize = 64 * 1024;

/// Both models: the channel, then the event loop.
pub fn demo() -> bool {
    for size in SIZES {
        for copy in [false, true] {
            if !stream(size, copy) {
                return false;
            }
        }
    }
    demo_reactor()
}

/// The event loop's part alone.
pub fn demo_reactor() -> bool {
    for size in SIZES {
        for copy in [false, true] {
            if !executor_stream(size, copy) {
                return false;
            }
        }
    }
    retention(false) && retention(true)
}

/// Runs `executor` until no task is ready (every task here only yields).
fn run_to_idle(executor: &mut Executor) {
    loop {
        let turn = executor.turn(time::now_ns(), &mut |_| {});
        if !turn.more_ready && turn.ran == 0 {
            return;
        }
    }
}

fn heap_in_use() -> u64 {
    memory::stats().heap.in_use_bytes
}

fn stream(size: usize, copy: bool) -> bool {
    let messages = (BUDGET / size).min(20_000);
    let (sender, receiver) = sync::channel::<Vec<u8>>(CAPACITY);
    let start = time::now_ns();
    let spawned = super::spawn_helper("own-send", move || {
        // The sender produces each message into a buffer (one write per
        // byte); moving hands that buffer over, copying sends a copy of it
        // and keeps the buffer (one more pass over the bytes).
        let mut kept = vec![0u8; size];
        for index in 0..messages {
            let message = if copy {
                kept.fill(index as u8);
                kept.clone()
            } else {
                vec![index as u8; size]
            };
            if sender.send(message).is_err() {
                return;
            }
        }
    });
    let Some(tid) = spawned else { return false };
    let mut touched = 0u64;
    let mut received = 0usize;
    while let Ok(buffer) = receiver.recv() {
        touched = touched.wrapping_add(u64::from(buffer[buffer.len() - 1]));
        received += 1;
    }
    let elapsed = time::now_ns() - start;
    super::wait_gone(&[tid]);
    record!(
        "ownership unit=channel mode={} size={size} messages={received} ns_per_message={} touched={touched}",
        if copy { "copy" } else { "move" },
        elapsed / received.max(1) as u64
    );
    received == messages
}

/// A producer future streams buffers of `size` to a consumer future on the
/// same executor through a queue of at most [`CAPACITY`]: by reference (an
/// `Rc` to the buffer it produced, which it keeps and could still read) or
/// copied (it keeps its buffer and queues a copy).
fn executor_stream(size: usize, copy: bool) -> bool {
    let messages = (BUDGET / size).min(20_000);
    let mut executor = Executor::new(Limits::default(), Arc::new(|| {}));
    let handle = executor.handle();
    let queue: Rc<RefCell<VecDeque<Rc<Vec<u8>>>>> = Rc::new(RefCell::new(VecDeque::with_capacity(CAPACITY)));
    let producing = Rc::new(Cell::new(true));
    let received = Rc::new(Cell::new(0usize));
    let touched = Rc::new(Cell::new(0u64));
    let producer = {
        let (queue, producing) = (queue.clone(), producing.clone());
        async move {
            let mut kept = Rc::new(vec![0u8; size]);
            for index in 0..messages {
                while queue.borrow().len() >= CAPACITY {
                    yield_now().await;
                }
                let message = if copy {
                    Rc::make_mut(&mut kept).fill(index as u8);
                    Rc::new(kept.as_ref().clone())
                } else {
                    kept = Rc::new(vec![index as u8; size]);
                    kept.clone()
                };
                queue.borrow_mut().push_back(message);
            }
            producing.set(false);
        }
    };
    let consumer = {
        let (queue, received, touched) = (queue.clone(), received.clone(), touched.clone());
        async move {
            loop {
                let next = queue.borrow_mut().pop_front();
                match next {
                    Some(buffer) => {
                        touched.set(touched.get().wrapping_add(u64::from(buffer[buffer.len() - 1])));
                        received.set(received.get() + 1);
                    }
                    None if !producing.get() => return,
                    None => yield_now().await,
                }
            }
        }
    };
    let start = time::now_ns();
    if handle.spawn(producer).is_err() || handle.spawn(consumer).is_err() {
        log::error!("ownership: cannot spawn the stream's futures");
        return false;
    }
    run_to_idle(&mut executor);
    let elapsed = time::now_ns() - start;
    record!(
        "ownership unit=executor mode={} size={size} messages={} ns_per_message={} touched={}",
        if copy { "copy" } else { "share" },
        received.get(),
        elapsed / received.get().max(1) as u64,
        touched.get()
    );
    received.get() == messages
}

/// A long-lived list of callbacks (an event emitter's listeners), each
/// with the id of the connection that registered it.
type Listeners = Rc<RefCell<Vec<(usize, Box<dyn Fn() -> usize>)>>>;

/// [`CONNECTIONS`] connection-like futures each fill a buffer, register a
/// callback that captures it, do their work over two turns and finish;
/// with `remove` each takes its callback off the list as it ends. The heap
/// in use before, once every future has finished, and once the list itself
/// is dropped.
fn retention(remove: bool) -> bool {
    let mut executor = Executor::new(Limits { max_tasks: CONNECTIONS + 16 }, Arc::new(|| {}));
    let handle = executor.handle();
    let listeners: Listeners = Rc::new(RefCell::new(Vec::with_capacity(CONNECTIONS)));
    let finished = Rc::new(Cell::new(0usize));
    let heap_before = heap_in_use();
    for id in 0..CONNECTIONS {
        let (listeners, finished) = (listeners.clone(), finished.clone());
        let connection = async move {
            let buffer = Rc::new(vec![id as u8; CONNECTION_BUFFER]);
            let captured = buffer.clone();
            listeners.borrow_mut().push((id, Box::new(move || captured.len())));
            // Its work: a read and an echo, a turn each.
            yield_now().await;
            let checksum = buffer.iter().fold(0u8, |sum, byte| sum.wrapping_add(*byte));
            core::hint::black_box(checksum);
            yield_now().await;
            if remove {
                listeners.borrow_mut().retain(|(owner, _)| *owner != id);
            }
            finished.set(finished.get() + 1);
        };
        if handle.spawn(connection).is_err() {
            log::error!("ownership: cannot spawn connection {id}");
            return false;
        }
    }
    run_to_idle(&mut executor);
    let alive = executor.stats().tasks_alive;
    let heap_after = heap_in_use();
    let registered = listeners.borrow().len();
    let reachable: usize = listeners.borrow().iter().map(|(_, callback)| callback()).sum();
    drop(listeners);
    drop(handle);
    drop(executor);
    let heap_dropped = heap_in_use();
    record!(
        "retention callbacks={} connections={CONNECTIONS} finished={} tasks_alive={alive} buffer_bytes={CONNECTION_BUFFER} registered={registered} reachable_bytes={reachable} heap_before={heap_before} heap_after={heap_after} heap_list_dropped={heap_dropped}",
        if remove { "removed" } else { "kept" },
        finished.get()
    );
    finished.get() == CONNECTIONS
}
