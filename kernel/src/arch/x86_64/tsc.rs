//! TSC calibration against PIT channel 2 (the speaker gate, no interrupt).

use x86_64::instructions::port::Port;

use super::cpu::timestamp_counter;

const PIT_HZ: u64 = 1_193_182;
const CALIBRATION_MS: u64 = 10;

/// Measures the TSC frequency over a 10 ms PIT one-shot; `None` if the PIT
/// never fired.
pub fn calibrate_hz() -> Option<u64> {
    let count = (PIT_HZ * CALIBRATION_MS / 1000) as u16;
    let mut gate = Port::<u8>::new(0x61);
    let mut command = Port::<u8>::new(0x43);
    let mut channel2 = Port::<u8>::new(0x42);
    // SAFETY: ports 0x42/0x43/0x61 are the legacy PIT and its gate; nothing
    // else in Tenfold uses channel 2, and the speaker stays off.
    let ticks = unsafe {
        let saved = gate.read();
        gate.write((saved & !0x02) | 0x01); // gate on, speaker off
        command.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0
        channel2.write(count as u8);
        channel2.write((count >> 8) as u8);
        let start = timestamp_counter();
        let mut spins: u64 = 0;
        // OUT2 (bit 5) goes high when the count reaches zero. Bounded: a
        // missing PIT must not hang the boot.
        while gate.read() & 0x20 == 0 && spins < 50_000_000 {
            spins += 1;
        }
        let end = timestamp_counter();
        gate.write(saved);
        if spins >= 50_000_000 { None } else { Some(end - start) }
    };
    ticks.map(|ticks| ticks * 1000 / CALIBRATION_MS)
}
