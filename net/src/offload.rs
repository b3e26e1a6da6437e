//! Checksum and segmentation offload, frame by frame: what the NIC
//! negotiated ([`Offloads`]), the virtio-net header that carries a frame's
//! offload request or a received frame's checksum state ([`NetHeader`]),
//! and the checksum work that stays in software around it.
//!
//! - **Transmit** ([`transmit_header`]): with checksum offload smoltcp
//!   leaves a TCP checksum at zero; the frame gets the pseudo-header sum in
//!   its checksum field and a header asking the card to finish the sum from
//!   the TCP header on (`NEEDS_CSUM`). A frame larger than one segment
//!   (smoltcp's `segmentation_offload_size`) is also marked TCPv4 GSO with
//!   that segment size, and the card (here: the host kernel behind the tap)
//!   cuts it into segments and fixes each one's lengths and sums.
//! - **Receive** ([`check_received`]): a frame the card marks `DATA_VALID`
//!   (checked) or `NEEDS_CSUM` (made on the host, never on a wire) is taken
//!   as it is; any other TCP frame is verified here in software. The stack
//!   is told not to verify TCP only when every frame it gets went through
//!   this check, so nobody claims a checksum valid that nobody checked. UDP
//!   and ICMP stay verified by the stack; a partial (`NEEDS_CSUM`) frame of
//!   theirs is completed here first.
//!
//! Pure functions over byte slices, so all of it is tested on the host; the
//! kernel's virtio-net driver writes and reads the header bytes.

use smoltcp::wire::checksum;
use smoltcp::wire::{IpProtocol, Ipv4Address};

/// The virtio 1.0 network header (with `num_buffers`, always present once
/// `VIRTIO_F_VERSION_1` is negotiated): 12 bytes, little-endian.
pub const HEADER_LEN: usize = 12;

/// Ethernet header length (no VLAN tags: Tenfold sends none).
const ETHERNET_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
/// The TCP checksum's offset within the TCP header.
const TCP_CHECKSUM_OFFSET: u16 = 16;

/// Header flags.
pub const NEEDS_CSUM: u8 = 1;
pub const DATA_VALID: u8 = 2;
/// Header segmentation types.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;

/// What the card and driver do for the stack, as negotiated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offloads {
    /// The card completes TCP checksums of frames we send (`VIRTIO_NET_F_CSUM`).
    pub tx_checksum: bool,
    /// Received TCP frames need no check by the stack: the card checked them,
    /// or made them itself, or the driver verifies the rest
    /// (`VIRTIO_NET_F_GUEST_CSUM` and [`check_received`]).
    pub rx_checksum: bool,
    /// The card segments TCPv4 frames up to [`MAX_TSO_FRAME`] (`HOST_TSO4`).
    pub tso4: bool,
}

impl Offloads {
    /// Nothing offloaded: the stack computes and verifies every checksum.
    pub const NONE: Offloads = Offloads { tx_checksum: false, rx_checksum: false, tso4: false };
}

/// The largest frame (Ethernet header included) handed to the card for
/// segmentation: its IPv4 total length (65 522) fits the 16-bit field.
pub const MAX_TSO_FRAME: usize = 64 * 1024;
/// The largest frame that can arrive with receive segmentation (GUEST_TSO4):
/// an Ethernet header and the largest IPv4 packet.
pub const MAX_RECEIVED_FRAME: usize = ETHERNET_LEN + 65_535;

/// The virtio-net header, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetHeader {
    pub flags: u8,
    pub gso_type: u8,
    /// Length of the headers (Ethernet + IP + TCP) of a segmented frame.
    pub hdr_len: u16,
    /// Payload bytes per segment of a segmented frame.
    pub gso_size: u16,
    /// Where the checksum to complete starts, and where it goes from there.
    pub csum_start: u16,
    pub csum_offset: u16,
    /// Receive buffers this frame spans (merged receive buffers).
    pub num_buffers: u16,
}

impl NetHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0; HEADER_LEN];
        bytes[0] = self.flags;
        bytes[1] = self.gso_type;
        bytes[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        bytes[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        bytes[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        bytes[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        bytes[10..12].copy_from_slice(&self.num_buffers.to_le_bytes());
        bytes
    }

    /// `None` if `bytes` is shorter than a header.
    pub fn decode(bytes: &[u8]) -> Option<NetHeader> {
        let bytes: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        let word = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        Some(NetHeader {
            flags: bytes[0],
            gso_type: bytes[1],
            hdr_len: word(2),
            gso_size: word(4),
            csum_start: word(6),
            csum_offset: word(8),
            num_buffers: word(10),
        })
    }
}

/// Where a TCP/IPv4 frame's parts are.
struct TcpV4 {
    /// Offset of the TCP header.
    tcp_start: usize,
    /// TCP header length.
    tcp_header_len: usize,
    /// TCP length (header + payload) as the IP header says.
    tcp_len: usize,
    source: Ipv4Address,
    destination: Ipv4Address,
}

/// Parses an Ethernet frame as TCP over IPv4 (unfragmented); `None` for
/// anything else or anything truncated.
fn tcp_v4(frame: &[u8]) -> Option<TcpV4> {
    let ip_start = ETHERNET_LEN;
    if frame.len() < ip_start + 20 || u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = &frame[ip_start..];
    let ip_header_len = usize::from(ip[0] & 0x0f) * 4;
    let fragmented = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    if ip[0] >> 4 != 4 || ip_header_len < 20 || IpProtocol::from(ip[9]) != IpProtocol::Tcp || fragmented {
        return None;
    }
    let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total_len < ip_header_len + 20 || total_len > ip.len() {
        return None;
    }
    let tcp_start = ip_start + ip_header_len;
    let tcp_header_len = usize::from(frame[tcp_start + 12] >> 4) * 4;
    let tcp_len = total_len - ip_header_len;
    if tcp_header_len < 20 || tcp_header_len > tcp_len {
        return None;
    }
    Some(TcpV4 {
        tcp_start,
        tcp_header_len,
        tcp_len,
        source: Ipv4Address::new(ip[12], ip[13], ip[14], ip[15]),
        destination: Ipv4Address::new(ip[16], ip[17], ip[18], ip[19]),
    })
}

fn pseudo_header_sum(tcp: &TcpV4) -> u16 {
    checksum::pseudo_header_v4(&tcp.source, &tcp.destination, IpProtocol::Tcp, tcp.tcp_len as u32)
}

/// Makes the header for a frame smoltcp built, and with checksum offload
/// puts the pseudo-header sum in its TCP checksum field (which the card
/// completes). `segment` is smoltcp's segmentation request (payload bytes
/// per segment); it marks the frame for segmentation only if it carries
/// more than one segment. Without checksum offload, or for a frame that is
/// not TCP/IPv4 (smoltcp computed those sums), the header asks for nothing.
pub fn transmit_header(frame: &mut [u8], segment: Option<u16>, offloads: Offloads) -> NetHeader {
    let mut header = NetHeader::default();
    if !offloads.tx_checksum {
        return header;
    }
    let Some(tcp) = tcp_v4(frame) else { return header };
    let field = tcp.tcp_start + usize::from(TCP_CHECKSUM_OFFSET);
    frame[field..field + 2].copy_from_slice(&pseudo_header_sum(&tcp).to_be_bytes());
    header.flags = NEEDS_CSUM;
    header.csum_start = tcp.tcp_start as u16;
    header.csum_offset = TCP_CHECKSUM_OFFSET;
    if let Some(segment) = segment
        && offloads.tso4
        && tcp.tcp_len - tcp.tcp_header_len > usize::from(segment)
    {
        header.gso_type = GSO_TCPV4;
        header.gso_size = segment;
        header.hdr_len = (tcp.tcp_start + tcp.tcp_header_len) as u16;
    }
    header
}

/// What became of a received frame's checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// The card vouches for it (`DATA_VALID`), or made it (`NEEDS_CSUM`,
    /// TCP: the stack needs no sum).
    Vouched,
    /// A TCP frame the card said nothing about, verified here: correct.
    Verified,
    /// A partial UDP/ICMP frame whose checksum was completed here, or a
    /// frame the stack verifies itself (no receive offload, or not TCP).
    ForTheStack,
    /// Wrong checksum, or a partial-checksum request outside the frame: drop.
    Bad,
}

/// Checks a received frame (see the module notes): `header` is what the
/// card said of it, `offloads` what was negotiated. May complete a partial
/// checksum in place.
pub fn check_received(frame: &mut [u8], header: &NetHeader, offloads: Offloads) -> Received {
    if !offloads.rx_checksum {
        // The card sets no flags then, and the stack verifies everything.
        return Received::ForTheStack;
    }
    let tcp = tcp_v4(frame);
    if header.flags & NEEDS_CSUM != 0 {
        if tcp.is_some() {
            return Received::Vouched;
        }
        return complete_partial(frame, header);
    }
    if header.flags & DATA_VALID != 0 {
        return Received::Vouched;
    }
    let Some(tcp) = tcp else { return Received::ForTheStack };
    let segment = &frame[tcp.tcp_start..tcp.tcp_start + tcp.tcp_len];
    if checksum::combine(&[pseudo_header_sum(&tcp), checksum::data(segment)]) == 0xffff {
        Received::Verified
    } else {
        Received::Bad
    }
}

/// Finishes a partial checksum the card left to us: the field holds the
/// pseudo-header sum; the sum from `csum_start` to the end, complemented,
/// is the checksum. (The IP length bounds the sum; Ethernet padding is not
/// part of it.)
fn complete_partial(frame: &mut [u8], header: &NetHeader) -> Received {
    let start = usize::from(header.csum_start);
    let field = start + usize::from(header.csum_offset);
    let end = ip_end(frame).unwrap_or(frame.len());
    if field + 2 > end || end > frame.len() {
        return Received::Bad;
    }
    let sum = !checksum::data(&frame[start..end]);
    frame[field..field + 2].copy_from_slice(&sum.to_be_bytes());
    Received::ForTheStack
}

/// Where an IPv4 packet ends within the frame (before any padding).
fn ip_end(frame: &[u8]) -> Option<usize> {
    if frame.len() < ETHERNET_LEN + 20 || u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE_IPV4 {
        return None;
    }
    let total_len = usize::from(u16::from_be_bytes([frame[ETHERNET_LEN + 2], frame[ETHERNET_LEN + 3]]));
    Some(ETHERNET_LEN + total_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, Ipv4Packet, Ipv4Repr,
        TcpControl, TcpPacket, TcpRepr, TcpSeqNumber, UdpPacket, UdpRepr,
    };

    const SOURCE: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
    const DESTINATION: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
    const ALL: Offloads = Offloads { tx_checksum: true, rx_checksum: true, tso4: true };

    fn ethernet(frame: &mut [u8]) {
        let repr = EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ethertype: EthernetProtocol::Ipv4,
        };
        repr.emit(&mut EthernetFrame::new_unchecked(frame));
    }

    /// A TCP/IPv4 frame with `payload`; the TCP checksum filled if `checksum`,
    /// else left at zero (as smoltcp leaves it with checksum offload).
    fn tcp_frame(payload: &[u8], checksum: bool) -> Vec<u8> {
        let tcp = TcpRepr {
            src_port: 7,
            dst_port: 50_000,
            control: TcpControl::Psh,
            seq_number: TcpSeqNumber(1000),
            ack_number: Some(TcpSeqNumber(2000)),
            window_len: 4096,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload,
        };
        let ip = Ipv4Repr {
            src_addr: SOURCE,
            dst_addr: DESTINATION,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let mut frame = alloc::vec![0; ETHERNET_LEN + ip.buffer_len() + tcp.buffer_len()];
        ethernet(&mut frame);
        let mut caps = ChecksumCapabilities::default();
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut frame[ETHERNET_LEN..]), &caps);
        if !checksum {
            caps.tcp = smoltcp::phy::Checksum::None;
        }
        tcp.emit(
            &mut TcpPacket::new_unchecked(&mut frame[ETHERNET_LEN + 20..]),
            &IpAddress::Ipv4(SOURCE),
            &IpAddress::Ipv4(DESTINATION),
            &caps,
        );
        frame
    }

    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let udp = UdpRepr { src_port: 68, dst_port: 67 };
        let ip = Ipv4Repr {
            src_addr: SOURCE,
            dst_addr: DESTINATION,
            next_header: IpProtocol::Udp,
            payload_len: udp.header_len() + payload.len(),
            hop_limit: 64,
        };
        let mut frame = alloc::vec![0; ETHERNET_LEN + ip.buffer_len() + ip.payload_len];
        ethernet(&mut frame);
        let caps = ChecksumCapabilities::default();
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut frame[ETHERNET_LEN..]), &caps);
        udp.emit(
            &mut UdpPacket::new_unchecked(&mut frame[ETHERNET_LEN + 20..]),
            &IpAddress::Ipv4(SOURCE),
            &IpAddress::Ipv4(DESTINATION),
            payload.len(),
            |buffer| buffer.copy_from_slice(payload),
            &caps,
        );
        frame
    }

    fn tcp_checksum_is_valid(frame: &[u8]) -> bool {
        TcpPacket::new_checked(&frame[ETHERNET_LEN + 20..])
            .unwrap()
            .verify_checksum(&IpAddress::Ipv4(SOURCE), &IpAddress::Ipv4(DESTINATION))
    }

    /// What the card does with a `NEEDS_CSUM` frame: sum from `csum_start`
    /// on (the field holds the pseudo-header sum) and store the complement.
    fn finish_like_the_card(frame: &mut [u8], header: &NetHeader) {
        let start = usize::from(header.csum_start);
        let field = start + usize::from(header.csum_offset);
        let sum = !checksum::data(&frame[start..]);
        frame[field..field + 2].copy_from_slice(&sum.to_be_bytes());
    }

    #[test]
    fn header_encodes_little_endian_in_the_virtio_layout() {
        let header = NetHeader {
            flags: NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 0x0036,
            gso_size: 0x05b4,
            csum_start: 0x0022,
            csum_offset: 0x0010,
            num_buffers: 0x0102,
        };
        let bytes = header.encode();
        assert_eq!(bytes, [1, 1, 0x36, 0, 0xb4, 0x05, 0x22, 0, 0x10, 0, 0x02, 0x01]);
        assert_eq!(NetHeader::decode(&bytes), Some(header));
        assert_eq!(NetHeader::decode(&bytes[..11]), None, "a truncated header is refused");
    }

    #[test]
    fn without_checksum_offload_the_header_asks_for_nothing() {
        let mut frame = tcp_frame(&[5; 100], true);
        let before = frame.clone();
        assert_eq!(transmit_header(&mut frame, None, Offloads::NONE), NetHeader::default());
        assert_eq!(frame, before, "the frame is left as smoltcp built it");
    }

    #[test]
    fn partial_checksum_is_the_pseudo_header_sum_and_the_card_completes_it() {
        for length in [0, 1, 63, 1460] {
            let payload: Vec<u8> = (0..length).map(|i| (i * 7 + 3) as u8).collect();
            let mut frame = tcp_frame(&payload, false);
            let header = transmit_header(&mut frame, None, ALL);
            assert_eq!(header.flags, NEEDS_CSUM);
            assert_eq!((header.csum_start, header.csum_offset), (34, 16));
            assert_eq!(header.gso_type, GSO_NONE, "a frame within one segment is not segmented");
            let tcp_len = 20 + length as u32;
            let expected = checksum::pseudo_header_v4(&SOURCE, &DESTINATION, IpProtocol::Tcp, tcp_len);
            assert_eq!(u16::from_be_bytes([frame[50], frame[51]]), expected);
            finish_like_the_card(&mut frame, &header);
            assert!(tcp_checksum_is_valid(&frame), "length {length}: the completed sum is the full checksum");
            assert_eq!(frame, tcp_frame(&payload, true), "identical to the frame smoltcp sums itself");
        }
    }

    #[test]
    fn a_frame_larger_than_its_segment_is_marked_for_tcpv4_segmentation() {
        let mut frame = tcp_frame(&[1; 10_000], false);
        let header = transmit_header(&mut frame, Some(1460), ALL);
        assert_eq!(header.gso_type, GSO_TCPV4);
        assert_eq!(header.gso_size, 1460);
        assert_eq!(header.hdr_len, 14 + 20 + 20);
        assert_eq!(header.flags, NEEDS_CSUM, "segmentation needs the checksum offload too");
        // A request the card did not agree to is not made.
        let mut frame = tcp_frame(&[1; 10_000], false);
        let no_tso = Offloads { tso4: false, ..ALL };
        assert_eq!(transmit_header(&mut frame, Some(1460), no_tso).gso_type, GSO_NONE);
        // Nor for a frame that fits one segment.
        let mut frame = tcp_frame(&[1; 1460], false);
        assert_eq!(transmit_header(&mut frame, Some(1460), ALL).gso_type, GSO_NONE);
    }

    #[test]
    fn frames_other_than_tcp_get_an_empty_header() {
        let mut frame = udp_frame(b"dhcp");
        let before = frame.clone();
        assert_eq!(transmit_header(&mut frame, None, ALL), NetHeader::default());
        assert_eq!(frame, before);
        let mut arp = alloc::vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(transmit_header(&mut arp, None, ALL), NetHeader::default());
    }

    #[test]
    fn received_tcp_without_flags_is_verified_in_software() {
        let mut good = tcp_frame(&[9; 700], true);
        assert_eq!(check_received(&mut good, &NetHeader::default(), ALL), Received::Verified);
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 0x40;
        assert_eq!(check_received(&mut bad, &NetHeader::default(), ALL), Received::Bad);
        // Ethernet padding after a short segment is not summed.
        let mut padded = tcp_frame(&[], true);
        padded.extend_from_slice(&[0xaa; 6]);
        assert_eq!(check_received(&mut padded, &NetHeader::default(), ALL), Received::Verified);
    }

    #[test]
    fn flagged_tcp_is_taken_as_the_card_says_and_nothing_is_claimed_without_offload() {
        let mut frame = tcp_frame(&[9; 700], false);
        let valid = NetHeader { flags: DATA_VALID, ..NetHeader::default() };
        assert_eq!(check_received(&mut frame, &valid, ALL), Received::Vouched);
        let partial =
            NetHeader { flags: NEEDS_CSUM, csum_start: 34, csum_offset: 16, ..NetHeader::default() };
        assert_eq!(check_received(&mut frame, &partial, ALL), Received::Vouched);
        // Without the receive offload the stack checks (the bad sum stays for it to find).
        let mut bad = tcp_frame(&[9; 700], false);
        assert_eq!(check_received(&mut bad, &NetHeader::default(), Offloads::NONE), Received::ForTheStack);
    }

    #[test]
    fn a_partial_udp_checksum_is_completed_for_the_stack() {
        let mut frame = udp_frame(b"lease me an address");
        let want = frame.clone();
        // The host's partial form: the pseudo-header sum in the field.
        let udp_len = (frame.len() - 34) as u32;
        let pseudo = checksum::pseudo_header_v4(&SOURCE, &DESTINATION, IpProtocol::Udp, udp_len);
        frame[40..42].copy_from_slice(&pseudo.to_be_bytes());
        frame.extend_from_slice(&[0; 4]); // padding
        let partial = NetHeader { flags: NEEDS_CSUM, csum_start: 34, csum_offset: 6, ..NetHeader::default() };
        assert_eq!(check_received(&mut frame, &partial, ALL), Received::ForTheStack);
        assert_eq!(&frame[..want.len()], &want[..], "completed to the full checksum");
        let outside = NetHeader { csum_start: 4000, ..partial };
        assert_eq!(check_received(&mut frame, &outside, ALL), Received::Bad);
    }

    #[test]
    fn truncated_or_odd_frames_are_not_parsed_as_tcp() {
        let frame = tcp_frame(&[1; 100], true);
        for cut in [0, 13, 33, 40, 53] {
            assert!(tcp_v4(&frame[..cut]).is_none(), "cut at {cut}");
        }
        let mut wrong_length = frame.clone();
        wrong_length[16..18].copy_from_slice(&2000u16.to_be_bytes());
        assert!(tcp_v4(&wrong_length).is_none(), "IP length beyond the frame");
        let mut fragment = frame;
        fragment[20] |= 0x20; // more fragments
        assert!(tcp_v4(&fragment).is_none());
    }
}
