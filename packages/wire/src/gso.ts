/**
 * Software offload for virtio-net frames: finish a partial checksum and cut GSO super-frames into
 * wire-size segments, for a receiver that did not negotiate those offloads (netmap's VALE does the
 * same in `bdg_mismatch_datapath`; Linux in `skb_checksum_help` / `tcp_gso_segment`).
 *
 * ## Theory of operation
 * Input: a virtio-net header (10 or 12 bytes, virtio 1.2 §5.1.6) followed by an Ethernet frame.
 * - flags NEEDS_CSUM, gso_type NONE (§5.1.6.2): the field at csum_start + csum_offset holds the
 *   folded pseudo-header sum; the device sums [csum_start, end) into it and stores the folded
 *   complement. The frame is copied to `out` and completed there.
 * - gso_type TCPV4 / TCPV6 (ECN bit allowed): the frame is a super-segment. Each output segment gets
 *   a copy of the Ethernet (+ one VLAN tag), IP and TCP headers and the next gso_size bytes of
 *   payload; IPv4 total length, id (+1 per segment) and header checksum, or the IPv6 payload
 *   length, are fixed; the TCP sequence number advances; FIN and PSH stay only on the last
 *   segment, CWR only on the first (RFC 3168 §6.1.2: CWR marks the first segment after the window
 *   reduction); every segment gets a full TCP checksum (the input's checksum field is ignored, so
 *   it does not matter which pseudo-header sum the sender left there).
 * - gso_type UDP_L4 (USO): each segment is a UDP datagram of gso_size payload with its own length
 *   and full checksum.
 * - anything else (no offload at all) is emitted unchanged.
 * The header fields are parsed from the frame itself; the header's hdr_len is only a hint
 * (§5.1.6.2 without VIRTIO_NET_F_GUEST_HDRLEN) and merely has to lie inside the frame.
 *
 * Output: every resulting frame (Ethernet, no virtio-net header) is written at `out[outOff…]` and
 * handed to `emit(out, outOff, len)` before the next one overwrites it; the callee copies what it
 * keeps. Callers leave room before `outOff` if they want to prefix a virtio-net header in place.
 * Nothing is allocated per frame; the input is never modified.
 *
 * Never throws: malformed input (offsets outside the frame, gso_size 0, a protocol that does not
 * match the gso_type, truncated headers) returns a {@link GsoStatus} code and emits nothing.
 * Validation completes before the first emit.
 *
 * Not done: UFO (gso_type UDP, IP fragmentation of one datagram: counted as unsupported), IPv6
 * extension headers before TCP/UDP, IPv4 options are copied as they are (no per-segment option
 * rewriting, as Linux), QinQ (one VLAN tag at most), BIG TCP (IPv4 total length 0 / IPv6 jumbo).
 */
import { checksum, foldSum, sum16 } from './checksum.ts';
import { VIRTIO_NET_HDR_LEN, VIRTIO_NET_HDR_MRG_LEN, VirtioNetFlags, VirtioNetGso, virtioNetCompleteChecksum } from './virtio-net.ts';

/** Result of {@link finalizeVirtioNet}. `OK` means every resulting frame was emitted. */
export const GsoStatus = {
  OK: 0,
  /** Shorter than its virtio-net header + an Ethernet header, or a header size other than 10/12. */
  TRUNCATED: 1,
  /** csum_start / csum_offset point outside the frame. */
  BAD_CSUM_OFFSETS: 2,
  /** hdr_len reaches past the end of the frame. */
  BAD_HDR_LEN: 3,
  /** gso_size is 0. */
  BAD_GSO_SIZE: 4,
  /** The L3 header does not match the gso_type (wrong ethertype, bad IPv4 header, a fragment). */
  BAD_L3: 5,
  /** The L4 header is not the protocol the gso_type names, or is truncated. */
  BAD_L4: 6,
  /** A valid case this code does not handle (UFO, IPv6 extension headers, unknown gso_type). */
  UNSUPPORTED: 7,
  /** A resulting frame does not fit in `out` after `outOff`. */
  NO_ROOM: 8,
} as const;
export type GsoStatus = (typeof GsoStatus)[keyof typeof GsoStatus];

/** Receives one finished frame: bytes[off, off + len). Valid only during the call. */
export type GsoEmit = (bytes: Uint8Array, off: number, len: number) => void;

/** Short names for {@link GsoStatus} values, for drop counters. */
export const GSO_STATUS_NAMES: readonly string[] = [
  'ok',
  'truncated',
  'bad-csum-offsets',
  'bad-hdr-len',
  'bad-gso-size',
  'bad-l3',
  'bad-l4',
  'unsupported',
  'no-room',
];

const ETH_VLAN = 0x8100;
const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;
const PROTO_TCP = 6;
const PROTO_UDP = 17;
const TCP_FIN_PSH = 0x09;
const TCP_CWR = 0x80;

/** Whether a virtio-net header asks for work a receiver without offloads cannot do itself. */
export function virtioNetNeedsFinalize(bytes: Uint8Array, hdrOff: number): boolean {
  return (bytes[hdrOff]! & VirtioNetFlags.NEEDS_CSUM) !== 0 || (bytes[hdrOff + 1]! & ~VirtioNetGso.ECN) !== VirtioNetGso.NONE;
}

/** The checksum field lies inside the frame and the summed range starts after the Ethernet header
 * (a sum starting inside the MAC addresses is never legitimate: refuse rather than garble them). */
function csumFits(start: number, offset: number, flen: number): boolean {
  return start >= 14 && start + offset + 2 <= flen;
}

function rd16le(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}
function rd16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}
function wr16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

/**
 * Turn `src[off, off + len)` — a `hdrSize`-byte virtio-net header (10 or 12) and an Ethernet
 * frame — into plain, fully checksummed frames, each written at `out[outOff…]` and passed to
 * `emit`. Returns {@link GsoStatus.OK} or the reason nothing was emitted.
 */
export function finalizeVirtioNet(
  src: Uint8Array,
  off: number,
  len: number,
  hdrSize: number,
  out: Uint8Array,
  outOff: number,
  emit: GsoEmit,
): GsoStatus {
  if (hdrSize !== VIRTIO_NET_HDR_LEN && hdrSize !== VIRTIO_NET_HDR_MRG_LEN) return GsoStatus.TRUNCATED;
  if (off < 0 || len < hdrSize + 14 || off + len > src.length || outOff < 0) return GsoStatus.TRUNCATED;
  const flags = src[off]!;
  const gsoType = src[off + 1]! & ~VirtioNetGso.ECN;
  const hdrLen = rd16le(src, off + 2);
  const gsoSize = rd16le(src, off + 4);
  const csumStart = rd16le(src, off + 6);
  const csumOffset = rd16le(src, off + 8);
  const f = off + hdrSize; // the Ethernet frame
  const flen = len - hdrSize;
  const room = out.length - outOff;

  if (gsoType === VirtioNetGso.NONE) {
    if (flen > room) return GsoStatus.NO_ROOM;
    if ((flags & VirtioNetFlags.NEEDS_CSUM) !== 0 && !csumFits(csumStart, csumOffset, flen)) return GsoStatus.BAD_CSUM_OFFSETS;
    out.set(src.subarray(f, f + flen), outOff);
    if ((flags & VirtioNetFlags.NEEDS_CSUM) !== 0) virtioNetCompleteChecksum(out, outOff, flen, csumStart, csumOffset);
    emit(out, outOff, flen);
    return GsoStatus.OK;
  }
  if (gsoType !== VirtioNetGso.TCPV4 && gsoType !== VirtioNetGso.TCPV6 && gsoType !== VirtioNetGso.UDP_L4) {
    return GsoStatus.UNSUPPORTED; // UFO (3) and anything unknown
  }
  if (hdrLen > flen) return GsoStatus.BAD_HDR_LEN;
  if ((flags & VirtioNetFlags.NEEDS_CSUM) !== 0 && !csumFits(csumStart, csumOffset, flen)) return GsoStatus.BAD_CSUM_OFFSETS;
  if (gsoSize === 0) return GsoStatus.BAD_GSO_SIZE;

  // L2: Ethernet, at most one 802.1Q tag.
  let l3 = 14;
  let etype = rd16(src, f + 12);
  if (etype === ETH_VLAN) {
    if (flen < 18) return GsoStatus.TRUNCATED;
    etype = rd16(src, f + 16);
    l3 = 18;
  }
  // L3.
  let v4: boolean;
  let l4: number;
  let proto: number;
  if (etype === ETH_IPV4) {
    if (gsoType === VirtioNetGso.TCPV6) return GsoStatus.BAD_L3;
    if (flen < l3 + 20) return GsoStatus.BAD_L3;
    const vihl = src[f + l3]!;
    const ihl = (vihl & 0x0f) * 4;
    if (vihl >> 4 !== 4 || ihl < 20 || flen < l3 + ihl) return GsoStatus.BAD_L3;
    // A fragment cannot be segmented (MF or a fragment offset).
    if ((rd16(src, f + l3 + 6) & 0x3fff) !== 0) return GsoStatus.BAD_L3;
    v4 = true;
    proto = src[f + l3 + 9]!;
    l4 = l3 + ihl;
  } else if (etype === ETH_IPV6) {
    if (gsoType === VirtioNetGso.TCPV4) return GsoStatus.BAD_L3;
    if (flen < l3 + 40 || src[f + l3]! >> 4 !== 6) return GsoStatus.BAD_L3;
    v4 = false;
    proto = src[f + l3 + 6]!;
    l4 = l3 + 40;
    if (proto !== PROTO_TCP && proto !== PROTO_UDP) return GsoStatus.UNSUPPORTED; // extension headers
  } else {
    return GsoStatus.BAD_L3;
  }
  // L4.
  const udp = gsoType === VirtioNetGso.UDP_L4;
  if (proto !== (udp ? PROTO_UDP : PROTO_TCP)) return GsoStatus.BAD_L4;
  let l4hdr: number;
  if (udp) {
    l4hdr = 8;
    if (flen < l4 + 8) return GsoStatus.BAD_L4;
  } else {
    if (flen < l4 + 20) return GsoStatus.BAD_L4;
    l4hdr = (src[f + l4 + 12]! >> 4) * 4;
    if (l4hdr < 20 || flen < l4 + l4hdr) return GsoStatus.BAD_L4;
  }
  const hdrs = l4 + l4hdr;
  const payload = flen - hdrs;
  const segMax = hdrs + Math.min(gsoSize, payload);
  if (segMax > room) return GsoStatus.NO_ROOM;

  // Per-segment constants: the pseudo-header sum without the length, and the first sequence/id.
  const ipo = outOff + l3;
  const l4o = outOff + l4;
  let pseudo = 0;
  if (v4) pseudo = sum16(src, f + l3 + 12, 8, proto);
  else pseudo = sum16(src, f + l3 + 8, 32, proto);
  const seq0 = udp ? 0 : ((src[f + l4 + 4]! << 24) | (src[f + l4 + 5]! << 16) | (src[f + l4 + 6]! << 8) | src[f + l4 + 7]!) >>> 0;
  const tcpFlags = udp ? 0 : src[f + l4 + 13]!;
  const id0 = v4 ? rd16(src, f + l3 + 4) : 0;

  let done = 0;
  let i = 0;
  do {
    const n = Math.min(gsoSize, payload - done);
    const last = done + n >= payload;
    // Headers, then this segment's payload.
    out.set(src.subarray(f, f + hdrs), outOff);
    out.set(src.subarray(f + hdrs + done, f + hdrs + done + n), outOff + hdrs);
    const l4len = l4hdr + n;
    if (v4) {
      wr16(out, ipo + 2, l4 - l3 + l4len);
      wr16(out, ipo + 4, (id0 + i) & 0xffff);
      wr16(out, ipo + 10, 0);
      wr16(out, ipo + 10, checksum(out, ipo, l4 - l3));
    } else {
      wr16(out, ipo + 4, l4len);
    }
    let csumField: number;
    if (udp) {
      wr16(out, l4o + 4, l4len);
      csumField = l4o + 6;
    } else {
      const seq = (seq0 + done) >>> 0;
      out[l4o + 4] = seq >>> 24;
      out[l4o + 5] = seq >>> 16;
      out[l4o + 6] = seq >>> 8;
      out[l4o + 7] = seq;
      let fl = tcpFlags;
      if (!last) fl &= ~TCP_FIN_PSH;
      if (i > 0) fl &= ~TCP_CWR;
      out[l4o + 13] = fl;
      csumField = l4o + 16;
    }
    wr16(out, csumField, 0);
    const c = ~foldSum(sum16(out, l4o, l4len, pseudo + l4len)) & 0xffff;
    // UDP: 0 means "no checksum", so a computed 0 goes out as 0xffff (RFC 768).
    wr16(out, csumField, udp && c === 0 ? 0xffff : c);
    emit(out, outOff, hdrs + n);
    done += n;
    i++;
  } while (done < payload);
  return GsoStatus.OK;
}
