/**
 * IPv6 fixed header (RFC 8200 §3), the extension-header chain walker (§4), and the address
 * helpers a host on a link needs: solicited-node groups (RFC 4291 §2.7.1), multicast MACs
 * (RFC 2464 §7) and EUI-64 link-local addresses (RFC 4291 App. A, RFC 4862 §5.3).
 *
 * `reset` validates version 6 and 40 + payload length <= available bytes (trailing padding is
 * allowed and excluded). Jumbograms (payload length 0 + Jumbo option, RFC 2675) are not supported:
 * a zero payload length means an empty payload, and the Jumbo option is an unknown option whose
 * action bits say discard.
 *
 * `walkIpv6Headers` follows Hop-by-Hop, Routing, Destination Options and Fragment headers from the
 * fixed header, at most `IPV6_MAX_EXT_HEADERS` of them, checking every length against the payload,
 * and reports the upper-layer protocol and offset, or a drop reason (a constant string, to count).
 * It stops at a Fragment header that is part of a real fragment series (the rest is fragment data:
 * reassemble, then walk the result); atomic fragments (offset 0, M clear; RFC 6946) are walked
 * through. Hop-by-Hop and Destination options are checked against the RFC 8200 §4.2 action bits.
 * A Routing header with Segments Left > 0 is dropped: this is a host stack, it never forwards.
 * AH, ESP, No Next Header and unknown values are reported as the upper-layer protocol.
 */
import { EMPTY, readU16, readU32, writeU16 } from './addr.ts';
import { IpProto } from './ipv4.ts';

export const Ipv6Field = { VER_TC_FLOW: 0, PAYLOAD_LEN: 4, NEXT_HEADER: 6, HOP_LIMIT: 7, SRC: 8, DST: 24 } as const;

export const IPV6_HEADER_LEN = 40;
/** Extension headers walked before giving up (a legitimate chain has a handful). */
export const IPV6_MAX_EXT_HEADERS = 8;
export const IPV6_FRAG_HEADER_LEN = 8;

/** ff02::1, all nodes. Shared: never write to it. */
export const IPV6_ALL_NODES: Uint8Array = Uint8Array.of(0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
/** ff02::2, all routers. Shared: never write to it. */
export const IPV6_ALL_ROUTERS: Uint8Array = Uint8Array.of(0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2);

export class Ipv6View {
  bytes: Uint8Array = EMPTY;
  off = 0;
  len = 0;

  /** Point the view at bytes[off, off+len). False when short, not version 6, or the payload
   * length runs past the available bytes. */
  reset(bytes: Uint8Array, off: number, len: number): boolean {
    if (off < 0 || len < IPV6_HEADER_LEN || off + len > bytes.length) return false;
    if (bytes[off]! >>> 4 !== 6) return false;
    if (IPV6_HEADER_LEN + readU16(bytes, off + Ipv6Field.PAYLOAD_LEN) > len) return false;
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    return true;
  }

  get version(): number {
    return this.bytes[this.off]! >>> 4;
  }
  get trafficClass(): number {
    return (readU16(this.bytes, this.off) >>> 4) & 0xff;
  }
  set trafficClass(v: number) {
    const b = this.bytes;
    const o = this.off;
    b[o] = 0x60 | ((v >>> 4) & 0x0f);
    b[o + 1] = ((v & 0x0f) << 4) | (b[o + 1]! & 0x0f);
  }
  get flowLabel(): number {
    return readU32(this.bytes, this.off) & 0xfffff;
  }
  set flowLabel(v: number) {
    const b = this.bytes;
    const o = this.off;
    b[o + 1] = (b[o + 1]! & 0xf0) | ((v >>> 16) & 0x0f);
    b[o + 2] = v >>> 8;
    b[o + 3] = v;
  }
  /** The payload length field: bytes after the fixed header, extension headers included. */
  get payloadLen(): number {
    return readU16(this.bytes, this.off + Ipv6Field.PAYLOAD_LEN);
  }
  /** Writes the field only; the caller keeps it within the buffer. */
  set payloadLen(v: number) {
    writeU16(this.bytes, this.off + Ipv6Field.PAYLOAD_LEN, v);
  }
  get nextHeader(): number {
    return this.bytes[this.off + Ipv6Field.NEXT_HEADER]!;
  }
  set nextHeader(v: number) {
    this.bytes[this.off + Ipv6Field.NEXT_HEADER] = v;
  }
  get hopLimit(): number {
    return this.bytes[this.off + Ipv6Field.HOP_LIMIT]!;
  }
  set hopLimit(v: number) {
    this.bytes[this.off + Ipv6Field.HOP_LIMIT] = v;
  }
  /** Absolute offset of the source address in `bytes`. */
  get srcOffset(): number {
    return this.off + Ipv6Field.SRC;
  }
  /** Absolute offset of the destination address in `bytes`. */
  get dstOffset(): number {
    return this.off + Ipv6Field.DST;
  }
  copySrc(out: Uint8Array, outOff = 0): void {
    for (let i = 0; i < 16; i++) out[outOff + i] = this.bytes[this.off + Ipv6Field.SRC + i]!;
  }
  copyDst(out: Uint8Array, outOff = 0): void {
    for (let i = 0; i < 16; i++) out[outOff + i] = this.bytes[this.off + Ipv6Field.DST + i]!;
  }
  setSrc(a: Uint8Array, aOff = 0): void {
    for (let i = 0; i < 16; i++) this.bytes[this.off + Ipv6Field.SRC + i] = a[aOff + i]!;
  }
  setDst(a: Uint8Array, aOff = 0): void {
    for (let i = 0; i < 16; i++) this.bytes[this.off + Ipv6Field.DST + i] = a[aOff + i]!;
  }
  get payloadOffset(): number {
    return this.off + IPV6_HEADER_LEN;
  }
}

/** Pseudo-header sum (RFC 8200 §8.1) from two address arrays. Not folded. */
export function ipv6PseudoSum(src: Uint8Array, dst: Uint8Array, nextHeader: number, l4len: number, srcOff = 0, dstOff = 0): number {
  let s = 0;
  for (let k = 0; k < 16; k += 2) s += ((src[srcOff + k]! << 8) | src[srcOff + k + 1]!) + ((dst[dstOff + k]! << 8) | dst[dstOff + k + 1]!);
  return s + (l4len >>> 16) + (l4len & 0xffff) + nextHeader;
}

export interface Ipv6Repr {
  src: Uint8Array;
  dst: Uint8Array;
  nextHeader: number;
  /** Bytes after the fixed header (extension headers included). */
  payloadLen: number;
  hopLimit: number;
  trafficClass?: number;
  flowLabel?: number;
}

export function parseIpv6(v: Ipv6View): Ipv6Repr {
  const src = new Uint8Array(16);
  const dst = new Uint8Array(16);
  v.copySrc(src);
  v.copyDst(dst);
  return {
    src,
    dst,
    nextHeader: v.nextHeader,
    payloadLen: v.payloadLen,
    hopLimit: v.hopLimit,
    trafficClass: v.trafficClass,
    flowLabel: v.flowLabel,
  };
}

/** Write the 40-byte fixed header at buf[off]; returns 40. */
export function emitIpv6(r: Ipv6Repr, buf: Uint8Array, off: number): number {
  const tc = (r.trafficClass ?? 0) & 0xff;
  const fl = (r.flowLabel ?? 0) & 0xfffff;
  buf[off] = 0x60 | (tc >>> 4);
  buf[off + 1] = ((tc & 0x0f) << 4) | (fl >>> 16);
  buf[off + 2] = fl >>> 8;
  buf[off + 3] = fl;
  writeU16(buf, off + Ipv6Field.PAYLOAD_LEN, r.payloadLen);
  buf[off + Ipv6Field.NEXT_HEADER] = r.nextHeader;
  buf[off + Ipv6Field.HOP_LIMIT] = r.hopLimit;
  for (let i = 0; i < 16; i++) {
    buf[off + Ipv6Field.SRC + i] = r.src[i]!;
    buf[off + Ipv6Field.DST + i] = r.dst[i]!;
  }
  return IPV6_HEADER_LEN;
}

// ---- Extension headers ---------------------------------------------------------------------

/** Why `walkIpv6Headers` refused a packet. Stable strings, for drop counters. */
export const Ipv6ExtDrop = {
  /** An extension header runs past the payload. */
  TRUNCATED: 'ipv6-ext-truncated',
  /** Hop-by-Hop Options anywhere but right after the fixed header (RFC 8200 §4.1). */
  HBH_NOT_FIRST: 'ipv6-hbh-not-first',
  /** More than IPV6_MAX_EXT_HEADERS extension headers. */
  TOO_MANY: 'ipv6-ext-too-many',
  /** An option TLV overruns its header, or an unknown option's action bits say discard (§4.2). */
  BAD_OPTION: 'ipv6-ext-bad-option',
  /** Routing header with Segments Left > 0: we are not a router (§4.4). */
  ROUTING: 'ipv6-routing-segments-left',
  /** A non-last fragment whose length is not a multiple of 8 (§4.5). */
  FRAG_LENGTH: 'ipv6-frag-bad-length',
} as const;
export type Ipv6ExtDropReason = (typeof Ipv6ExtDrop)[keyof typeof Ipv6ExtDrop];

/** Reusable result of `walkIpv6Headers` (allocate one per stack). */
export class Ipv6ExtInfo {
  /** Upper-layer protocol (or the Fragment header's Next Header when `isFragment`). */
  proto = 0;
  /** Absolute offset of the upper-layer header (of the fragment data when `isFragment`). */
  offset = 0;
  /** Bytes from `offset` to the end of the IPv6 payload. */
  len = 0;
  /** Absolute offset of the Next Header byte that holds `proto` (reassembly rewrites it;
   * ICMPv6 Parameter Problem points at it). */
  nextHeaderFieldOffset = 0;
  /** True when the packet is one fragment of a series: reassemble before using `proto`. */
  isFragment = false;
  /** Absolute offset of the Fragment header, or -1. */
  fragHeaderOffset = -1;
  /** Fragment offset in bytes. */
  fragOffset = 0;
  /** M flag: more fragments follow. */
  fragMore = false;
  fragIdent = 0;
  /** Drop reason when the walk failed, else null. */
  drop: Ipv6ExtDropReason | null = null;
  /** Absolute offset of the offending byte when `drop` is set (for an ICMPv6 Parameter Problem
   * pointer, RFC 4443 §3.4), else -1. */
  dropPointer = -1;

  clear(): void {
    this.proto = 0;
    this.offset = 0;
    this.len = 0;
    this.nextHeaderFieldOffset = 0;
    this.isFragment = false;
    this.fragHeaderOffset = -1;
    this.fragOffset = 0;
    this.fragMore = false;
    this.fragIdent = 0;
    this.drop = null;
    this.dropPointer = -1;
  }
}

function fail(out: Ipv6ExtInfo, reason: Ipv6ExtDropReason, pointer: number): boolean {
  out.drop = reason;
  out.dropPointer = pointer;
  return false;
}

/** Check the TLV options of a Hop-by-Hop or Destination Options header at bytes[p, end). */
function checkOptions(bytes: Uint8Array, p: number, end: number, out: Ipv6ExtInfo): boolean {
  while (p < end) {
    const type = bytes[p]!;
    if (type === 0) {
      p++; // Pad1
      continue;
    }
    if (p + 2 > end) return fail(out, Ipv6ExtDrop.BAD_OPTION, p);
    const optLen = bytes[p + 1]!;
    if (p + 2 + optLen > end) return fail(out, Ipv6ExtDrop.BAD_OPTION, p + 1);
    // PadN (1) and Router Alert (5, RFC 2711) are understood; any other option is unknown to us
    // and its two high bits decide: 00 skip, otherwise discard (§4.2).
    if (type !== 1 && type !== 5 && type >>> 6 !== 0) return fail(out, Ipv6ExtDrop.BAD_OPTION, p);
    p += 2 + optLen;
  }
  return true;
}

/**
 * Walk the extension headers of the packet under `v` (already reset). Fills `out` and returns
 * true with the upper-layer protocol, or false with `out.drop` set. Never throws, never allocates.
 */
export function walkIpv6Headers(v: Ipv6View, out: Ipv6ExtInfo): boolean {
  out.clear();
  const bytes = v.bytes;
  const end = v.off + IPV6_HEADER_LEN + v.payloadLen;
  let nh = v.nextHeader;
  let nhField = v.off + Ipv6Field.NEXT_HEADER;
  let p = v.off + IPV6_HEADER_LEN;
  for (let count = 0; ; count++) {
    if (nh !== IpProto.HOPOPT && nh !== IpProto.IPv6Route && nh !== IpProto.IPv6Opts && nh !== IpProto.IPv6Frag) break;
    if (count >= IPV6_MAX_EXT_HEADERS) return fail(out, Ipv6ExtDrop.TOO_MANY, nhField);
    if (nh === IpProto.HOPOPT && count !== 0) return fail(out, Ipv6ExtDrop.HBH_NOT_FIRST, nhField);
    if (p + 8 > end) return fail(out, Ipv6ExtDrop.TRUNCATED, p);
    if (nh === IpProto.IPv6Frag) {
      const fo = readU16(bytes, p + 2);
      const fragOffset = fo & 0xfff8;
      const more = (fo & 1) !== 0;
      if (fragOffset === 0 && !more) {
        // Atomic fragment (RFC 6946): process as if unfragmented.
        nhField = p;
        nh = bytes[p]!;
        p += IPV6_FRAG_HEADER_LEN;
        continue;
      }
      const dataLen = end - (p + IPV6_FRAG_HEADER_LEN);
      if (more && (dataLen & 7) !== 0) return fail(out, Ipv6ExtDrop.FRAG_LENGTH, v.off + Ipv6Field.PAYLOAD_LEN);
      out.isFragment = true;
      out.fragHeaderOffset = p;
      out.fragOffset = fragOffset;
      out.fragMore = more;
      out.fragIdent = readU32(bytes, p + 4);
      nhField = p;
      nh = bytes[p]!;
      p += IPV6_FRAG_HEADER_LEN;
      break;
    }
    const hl = (bytes[p + 1]! + 1) << 3;
    if (p + hl > end) return fail(out, Ipv6ExtDrop.TRUNCATED, p + 1);
    if (nh === IpProto.IPv6Route) {
      if (bytes[p + 3] !== 0) return fail(out, Ipv6ExtDrop.ROUTING, p + 3);
    } else if (!checkOptions(bytes, p + 2, p + hl, out)) {
      return false;
    }
    nhField = p;
    nh = bytes[p]!;
    p += hl;
  }
  out.proto = nh;
  out.offset = p;
  out.len = end - p;
  out.nextHeaderFieldOffset = nhField;
  return true;
}

// ---- Address helpers -----------------------------------------------------------------------

export function isIpv6Multicast(a: Uint8Array, off = 0): boolean {
  return a[off] === 0xff;
}

/** fe80::/10. */
export function isIpv6LinkLocal(a: Uint8Array, off = 0): boolean {
  return a[off] === 0xfe && (a[off + 1]! & 0xc0) === 0x80;
}

/** :: */
export function isIpv6Unspecified(a: Uint8Array, off = 0): boolean {
  for (let i = 0; i < 16; i++) if (a[off + i] !== 0) return false;
  return true;
}

/** ::1 */
export function isIpv6Loopback(a: Uint8Array, off = 0): boolean {
  for (let i = 0; i < 15; i++) if (a[off + i] !== 0) return false;
  return a[off + 15] === 1;
}

/** Solicited-node multicast group of a unicast address: ff02::1:ffXX:XXXX with the low 24 bits
 * of `addr` (RFC 4291 §2.7.1). Writes into `out` when given. */
export function ipv6SolicitedNode(addr: Uint8Array, addrOff = 0, out: Uint8Array = new Uint8Array(16), outOff = 0): Uint8Array {
  out[outOff] = 0xff;
  out[outOff + 1] = 0x02;
  for (let i = 2; i < 11; i++) out[outOff + i] = 0;
  out[outOff + 11] = 0x01;
  out[outOff + 12] = 0xff;
  out[outOff + 13] = addr[addrOff + 13]!;
  out[outOff + 14] = addr[addrOff + 14]!;
  out[outOff + 15] = addr[addrOff + 15]!;
  return out;
}

/** True when `a` is the solicited-node group of some address (ff02::1:ff00:0/104). */
export function isIpv6SolicitedNode(a: Uint8Array, off = 0): boolean {
  if (a[off] !== 0xff || a[off + 1] !== 0x02) return false;
  for (let i = 2; i < 11; i++) if (a[off + i] !== 0) return false;
  return a[off + 11] === 1 && a[off + 12] === 0xff;
}

/** Ethernet destination for an IPv6 multicast address: 33:33 + its last 32 bits (RFC 2464 §7). */
export function ipv6MulticastMac(addr: Uint8Array, addrOff = 0, out: Uint8Array = new Uint8Array(6), outOff = 0): Uint8Array {
  out[outOff] = 0x33;
  out[outOff + 1] = 0x33;
  for (let i = 0; i < 4; i++) out[outOff + 2 + i] = addr[addrOff + 12 + i]!;
  return out;
}

/** fe80::/64 with the modified EUI-64 interface id of `mac`: ff:fe in the middle, the
 * universal/local bit flipped (RFC 4291 App. A). */
export function ipv6LinkLocalFromMac(mac: Uint8Array, macOff = 0, out: Uint8Array = new Uint8Array(16), outOff = 0): Uint8Array {
  out[outOff] = 0xfe;
  out[outOff + 1] = 0x80;
  for (let i = 2; i < 8; i++) out[outOff + i] = 0;
  out[outOff + 8] = mac[macOff]! ^ 0x02;
  out[outOff + 9] = mac[macOff + 1]!;
  out[outOff + 10] = mac[macOff + 2]!;
  out[outOff + 11] = 0xff;
  out[outOff + 12] = 0xfe;
  out[outOff + 13] = mac[macOff + 3]!;
  out[outOff + 14] = mac[macOff + 4]!;
  out[outOff + 15] = mac[macOff + 5]!;
  return out;
}
