//! `demo=ownership`: passing data between CSP threads by moving ownership
//! through a channel ("share memory by communicating") beside copying it.
//! A sender thread produces messages of each size and streams them to a
//! receiver: moved (the buffer it produced travels — a pointer — and the
//! sender can no longer touch it: the compiler refuses) or copied (the
//! sender keeps its buffer and sends a copy, as it must when it may not
//! give it up). The receiver reads one byte of each message.
//!
//! Records `@lab ownership unit=channel mode=move|copy size=… messages=…
//! ns_per_message=…`.

use alloc::vec;
use alloc::vec::Vec;

use crate::{sync, time};

const SIZES: [usize; 4] = [64, 4096, 16 * 1024, 64 * 1024];
/// Bytes streamed per size and mode.
const BUDGET: usize = 8 << 20;
const CAPACITY: usize = 16;

pub fn demo() -> bool {
    for size in SIZES {
        for copy in [false, true] {
            if !stream(size, copy) {
                return false;
            }
        }
    }
    true
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
