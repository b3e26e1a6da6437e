//! A spoofed SYN flood, for the tests and demos of the guest's SYN cache:
//! TCP SYNs with random source addresses from 198.18.0.0/15 (RFC 2544's
//! benchmarking range), sent through a raw IPv4 socket. The guest answers
//! them through its gateway — the network namespace's end of the tap, which
//! does not forward — so, like a real spoofed flood, no answer ever comes.
//!
//! Only ever aimed at the guest inside a namespace the caller created (call
//! it from [`crate::netns::Namespace::run_in`]); needs root (raw sockets).
//! Bounded by count and by time.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::loadgen::Rng;

/// What a flood sent.
#[derive(Clone, Copy, Debug)]
pub struct FloodReport {
    pub sent: usize,
    pub elapsed: Duration,
}

/// The one's-complement sum of `bytes` (RFC 1071), folded.
fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for chunk in chunks {
        for pair in chunk.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet holding a TCP SYN (with an MSS option) from `source`.
pub fn syn_packet(source: SocketAddrV4, target: SocketAddrV4, sequence: u32) -> [u8; 44] {
    let mut packet = [0u8; 44];
    let (ip, tcp) = packet.split_at_mut(20);
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&44u16.to_be_bytes());
    ip[4..6].copy_from_slice(&(sequence as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&source.ip().octets());
    ip[16..20].copy_from_slice(&target.ip().octets());
    let ip_checksum = checksum(&[ip]);
    ip[10..12].copy_from_slice(&ip_checksum.to_be_bytes());
    tcp[0..2].copy_from_slice(&source.port().to_be_bytes());
    tcp[2..4].copy_from_slice(&target.port().to_be_bytes());
    tcp[4..8].copy_from_slice(&sequence.to_be_bytes());
    tcp[12] = 6 << 4; // 24-byte header
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&64_240u16.to_be_bytes());
    tcp[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]); // MSS 1460
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&source.ip().octets());
    pseudo[4..8].copy_from_slice(&target.ip().octets());
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&24u16.to_be_bytes());
    let tcp_checksum = checksum(&[&pseudo, tcp]);
    tcp[16..18].copy_from_slice(&tcp_checksum.to_be_bytes());
    packet
}

/// Sends `count` spoofed SYNs to `target` at about `per_second`, stopping
/// at `limit` whatever the count.
pub fn flood(
    target: SocketAddrV4,
    count: usize,
    per_second: u32,
    limit: Duration,
    seed: u64,
) -> Result<FloodReport> {
    if per_second == 0 {
        bail!("a flood rate of 0");
    }
    // SAFETY: plain socket(2) call; the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("raw socket (needs root)");
    }
    let address = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(*target.ip()).to_be() },
        sin_zero: [0; 8],
    };
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut sent = 0;
    let mut result = Ok(());
    while sent < count && started.elapsed() < limit {
        // Pace: never ahead of `per_second`.
        let due = (started.elapsed().as_secs_f64() * f64::from(per_second)) as usize + 1;
        if sent >= due {
            std::thread::sleep(Duration::from_micros(500));
            continue;
        }
        let random = rng.next_u64();
        let octets = [198, 18 + (random & 1) as u8, (random >> 8) as u8, (random >> 16) as u8];
        let source = SocketAddrV4::new(octets.into(), 1024 + ((random >> 24) as u16 % 60_000));
        let packet = syn_packet(source, target, (random >> 32) as u32);
        // SAFETY: `packet` and `address` are valid for the lengths given.
        let written = unsafe {
            libc::sendto(
                fd,
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&raw const address).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if written < 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::ENOBUFS) {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            result = Err(error).context("sending a SYN");
            break;
        }
        sent += 1;
    }
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
    result.map(|()| FloodReport { sent, elapsed: started.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_packets_carry_valid_checksums() {
        let packet = syn_packet("198.18.1.2:4000".parse().unwrap(), "10.0.2.15:7".parse().unwrap(), 77);
        assert_eq!(checksum(&[&packet[..20]]), 0, "IPv4 header checksum");
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&packet[12..16]);
        pseudo[4..8].copy_from_slice(&packet[16..20]);
        pseudo[9] = 6;
        pseudo[10..12].copy_from_slice(&24u16.to_be_bytes());
        assert_eq!(checksum(&[&pseudo, &packet[20..]]), 0, "TCP checksum");
        assert_eq!(packet[33], 0x02, "SYN only");
    }
}
