//! The lab's markers (`chaos=on`): spots the ASCII bytes `TENFOLD-CRASH`,
//! `TENFOLD-BLOCK` and `TENFOLD-SPIN` in a connection's stream, also when
//! they arrive split across reads, so the code serving that connection can
//! misbehave on purpose: crash by a real CPU fault, make a blocking call,
//! or run a CPU-bound loop. Only the detection lives here (in the runtime,
//! so ring-3 handlers reach it too); what each model does on a marker — the
//! event loop and the csp server in the kernel, the actor server's ring-3
//! handler — and what that costs the other connections (the lab's failure
//! modes) is theirs.

/// Makes the code serving the connection crash by a real CPU fault.
pub const CRASH_MARKER: &[u8] = b"TENFOLD-CRASH";
/// Makes it make a blocking call ([`STALL_MS`] long).
pub const BLOCK_MARKER: &[u8] = b"TENFOLD-BLOCK";
/// Makes it run a CPU-bound loop ([`STALL_MS`] long) without yielding.
pub const SPIN_MARKER: &[u8] = b"TENFOLD-SPIN";

/// How long a blocking call or a CPU-bound loop set off by a marker lasts.
pub const STALL_MS: u64 = 300;

/// A marker seen in a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    Crash,
    Block,
    Spin,
}

impl Marker {
    const ALL: [(Marker, &'static [u8]); 3] =
        [(Marker::Crash, CRASH_MARKER), (Marker::Block, BLOCK_MARKER), (Marker::Spin, SPIN_MARKER)];
}

/// The longest marker, less one: the tail kept between reads.
const KEEP: usize = 12;

/// Watches one stream for the markers, remembering the tail of what it saw
/// so a marker split across reads is found too.
#[derive(Clone, Copy, Debug, Default)]
pub struct MarkerScanner {
    tail: [u8; KEEP],
    tail_len: usize,
}

impl MarkerScanner {
    /// Feeds the next bytes of the stream; a marker completed in them, if
    /// any (one per call: a crash before a block before a spin).
    pub fn feed(&mut self, bytes: &[u8]) -> Option<Marker> {
        // A marker inside `bytes`, or starting in the tail.
        let head = &bytes[..bytes.len().min(KEEP)];
        let mut joined = [0u8; 2 * KEEP];
        joined[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
        joined[self.tail_len..self.tail_len + head.len()].copy_from_slice(head);
        let joined = &joined[..self.tail_len + head.len()];
        // Only a marker that ends in the new bytes is new (one that ended
        // in the tail was reported before).
        let tail_len = self.tail_len;
        let found = Marker::ALL
            .into_iter()
            .find(|(_, marker)| {
                joined
                    .windows(marker.len())
                    .enumerate()
                    .any(|(at, window)| at + marker.len() > tail_len && window == *marker)
                    || contains(bytes, marker)
            })
            .map(|(found, _)| found);
        // The last KEEP bytes of tail + bytes become the new tail.
        let total = self.tail_len + bytes.len();
        let mut next = [0u8; KEEP];
        let next_len = total.min(KEEP);
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

/// Watches one stream for [`CRASH_MARKER`] only.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrashTrigger(MarkerScanner);

impl CrashTrigger {
    /// Feeds the next bytes of the stream; whether the crash marker is
    /// complete.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        self.0.feed(bytes) == Some(Marker::Crash)
    }
}

fn contains(bytes: &[u8], marker: &[u8]) -> bool {
    bytes.windows(marker.len()).any(|window| window == marker)
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

    #[test]
    fn each_marker_is_told_apart_byte_by_byte() {
        for (expected, marker) in Marker::ALL {
            let mut scanner = MarkerScanner::default();
            let stream: Vec<u8> = [b"TENFOLD-".as_slice(), b"xx", marker, b"TENFOLD-"].concat();
            let seen: Vec<Marker> = stream.iter().filter_map(|byte| scanner.feed(&[*byte])).collect();
            assert_eq!(seen, [expected], "{}", String::from_utf8_lossy(marker));
        }
        let mut scanner = MarkerScanner::default();
        assert_eq!(scanner.feed(b"TENFOLD-SPI"), None);
        assert_eq!(scanner.feed(b"N"), Some(Marker::Spin));
        assert_eq!(scanner.feed(b"then TENFOLD-BLOCK"), Some(Marker::Block));
        assert_eq!(scanner.feed(b"TENFOLD-BLOC"), None);
        assert_eq!(scanner.feed(b"K"), Some(Marker::Block));
    }
}
