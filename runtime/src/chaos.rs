//! The chaos trigger (`chaos=on`): spots the ASCII bytes `TENFOLD-CRASH` in
//! a connection's stream, also when they arrive split across reads, so the
//! code serving that connection can crash on purpose. Only the detection
//! lives here; the crash itself (a real CPU fault) is the caller's: a kernel
//! thread of the CSP server, or a ring-3 handler of the actor server.

/// The bytes that make a connection's server crash under chaos.
pub const CRASH_MARKER: &[u8] = b"TENFOLD-CRASH";

/// Watches one stream for [`CRASH_MARKER`], remembering the tail of what it
/// saw so a marker split across reads is found too.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrashTrigger {
    tail: [u8; 16],
    tail_len: usize,
}

impl CrashTrigger {
    /// Feeds the next bytes of the stream; whether the marker is complete.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        let keep = CRASH_MARKER.len() - 1;
        // The marker inside `bytes`, or starting in the tail.
        let head = &bytes[..bytes.len().min(keep)];
        let mut joined = [0u8; 32];
        joined[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
        joined[self.tail_len..self.tail_len + head.len()].copy_from_slice(head);
        let found = contains(&joined[..self.tail_len + head.len()]) || contains(bytes);
        // The last `keep` bytes of tail + bytes become the new tail.
        let total = self.tail_len + bytes.len();
        let mut next = [0u8; 16];
        let next_len = total.min(keep);
        for (index, slot) in next[..next_len].iter_mut().enumerate() {
            let position = total - next_len + index;
            *slot =
                if position < self.tail_len { self.tail[position] } else { bytes[position - self.tail_len] };
        }
        self.tail = next;
        self.tail_len = next_len;
        found
    }
}

fn contains(bytes: &[u8]) -> bool {
    bytes.windows(CRASH_MARKER.len()).any(|window| window == CRASH_MARKER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_found_whole_or_split_and_not_otherwise() {
        let mut trigger = CrashTrigger::default();
        assert!(!trigger.feed(b"hello TENFOLD-CRAS"));
        assert!(trigger.feed(b"H and more"));
        let stream = b"xxTENFOLD-CRASHyy";
        for split in 0..stream.len() {
            for second in split..stream.len() {
                let mut trigger = CrashTrigger::default();
                let found = trigger.feed(&stream[..split])
                    | trigger.feed(&stream[split..second])
                    | trigger.feed(&stream[second..]);
                assert!(found, "missed when split at {split} and {second}");
            }
        }
        let mut trigger = CrashTrigger::default();
        for byte in b"TENFOLD-CRAS TENFOLD CRASH tenfold-crash" {
            assert!(!trigger.feed(&[*byte]));
        }
        let mut trigger = CrashTrigger::default();
        for byte in CRASH_MARKER {
            let found = trigger.feed(&[*byte]);
            assert_eq!(found, byte == CRASH_MARKER.last().unwrap());
        }
    }
}
