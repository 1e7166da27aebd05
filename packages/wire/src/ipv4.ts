/**
 * IPv4 header (RFC 791), with options, fragmentation fields and the header checksum.
 *
 * `reset` validates once: version 4, IHL >= 5, header within the buffer, and
 * IHL*4 <= total length <= available bytes. Bytes after `total length` (Ethernet padding of short
 * frames) are allowed and excluded from `payloadLen`. Options are exposed as a byte range and
 * copied verbatim by parse/emit; they are not interpreted here (a stack that honours none of them,
 * as most hosts do for source routes, needs nothing more).
 *
 * `resetQuoted` is the relaxed form for the datagram quoted inside an ICMP error (RFC 792,
 * RFC 1812 §4.3.2.3): the quote is truncated, so only the header must be complete, and
 * `payloadLen` is clipped to what is present.
 *
 * Not done here: reassembly (the stack's job; `isFragment` tells it when), option processing,
 * checksum offload decisions.
 */
import { EMPTY, readU16, readU32, writeU16, writeU32 } from './addr.ts';
import { checksum, updateChecksum16 } from './checksum.ts';

export const Ipv4Field = {
  VER_IHL: 0,
  DSCP_ECN: 1,
  TOTAL_LEN: 2,
  IDENT: 4,
  FLAGS_FRAG: 6,
  TTL: 8,
  PROTOCOL: 9,
  CHECKSUM: 10,
  SRC: 12,
  DST: 16,
  OPTIONS: 20,
} as const;

/** Header length without options. */
export const IPV4_HEADER_LEN = 20;
/** Largest header (IHL 15). */
export const IPV4_MAX_HEADER_LEN = 60;

/** Bits of the flags/fragment-offset word. */
export const Ipv4Flag = { DF: 0x4000, MF: 0x2000 } as const;

/** IP protocol numbers (IANA), shared by IPv4 `protocol` and IPv6 `nextHeader`. */
export const IpProto = {
  HOPOPT: 0,
  ICMP: 1,
  IGMP: 2,
  TCP: 6,
  UDP: 17,
  IPv6Route: 43,
  IPv6Frag: 44,
  ESP: 50,
  AH: 51,
  ICMPv6: 58,
  IPv6NoNxt: 59,
  IPv6Opts: 60,
  SCTP: 132,
} as const;

export class Ipv4View {
  bytes: Uint8Array = EMPTY;
  off = 0;
  /** Bytes available from `off` (may exceed `totalLen` for a padded or quoted datagram). */
  len = 0;
  /** IHL * 4, cached by `reset`. */
  headerLen = IPV4_HEADER_LEN;
  /** min(total length, len): the datagram bytes actually present. */
  private end = 0;

  /** Point the view at bytes[off, off+len). False when the header or length fields lie; the
   * view is left unchanged then. */
  reset(bytes: Uint8Array, off: number, len: number): boolean {
    const hl = headerLenOf(bytes, off, len);
    if (hl < 0) return false;
    const total = readU16(bytes, off + Ipv4Field.TOTAL_LEN);
    if (total < hl || total > len) return false;
    this.commit(bytes, off, len, hl, total);
    return true;
  }

  /** Relaxed reset for a datagram quoted in an ICMP error: the header must be complete, the
   * payload may be cut short (RFC 792 quotes the header + 8 bytes). */
  resetQuoted(bytes: Uint8Array, off: number, len: number): boolean {
    const hl = headerLenOf(bytes, off, len);
    if (hl < 0) return false;
    const total = readU16(bytes, off + Ipv4Field.TOTAL_LEN);
    if (total < hl) return false;
    this.commit(bytes, off, len, hl, total < len ? total : len);
    return true;
  }

  private commit(bytes: Uint8Array, off: number, len: number, hl: number, end: number): void {
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    this.headerLen = hl;
    this.end = end;
  }

  get version(): number {
    return this.bytes[this.off]! >>> 4;
  }
  get dscp(): number {
    return this.bytes[this.off + Ipv4Field.DSCP_ECN]! >>> 2;
  }
  set dscp(v: number) {
    const p = this.off + Ipv4Field.DSCP_ECN;
    this.bytes[p] = ((v & 0x3f) << 2) | (this.bytes[p]! & 3);
  }
  get ecn(): number {
    return this.bytes[this.off + Ipv4Field.DSCP_ECN]! & 3;
  }
  set ecn(v: number) {
    const p = this.off + Ipv4Field.DSCP_ECN;
    this.bytes[p] = (this.bytes[p]! & 0xfc) | (v & 3);
  }
  get totalLen(): number {
    return readU16(this.bytes, this.off + Ipv4Field.TOTAL_LEN);
  }
  /** Writes the field only; the caller keeps it within the buffer and refills the checksum. */
  set totalLen(v: number) {
    writeU16(this.bytes, this.off + Ipv4Field.TOTAL_LEN, v);
  }
  get ident(): number {
    return readU16(this.bytes, this.off + Ipv4Field.IDENT);
  }
  set ident(v: number) {
    writeU16(this.bytes, this.off + Ipv4Field.IDENT, v);
  }
  get dontFragment(): boolean {
    return (this.bytes[this.off + Ipv4Field.FLAGS_FRAG]! & 0x40) !== 0;
  }
  set dontFragment(v: boolean) {
    const p = this.off + Ipv4Field.FLAGS_FRAG;
    this.bytes[p] = v ? this.bytes[p]! | 0x40 : this.bytes[p]! & ~0x40;
  }
  get moreFragments(): boolean {
    return (this.bytes[this.off + Ipv4Field.FLAGS_FRAG]! & 0x20) !== 0;
  }
  set moreFragments(v: boolean) {
    const p = this.off + Ipv4Field.FLAGS_FRAG;
    this.bytes[p] = v ? this.bytes[p]! | 0x20 : this.bytes[p]! & ~0x20;
  }
  /** Fragment offset in bytes (the field counts 8-byte units). */
  get fragmentOffset(): number {
    return (readU16(this.bytes, this.off + Ipv4Field.FLAGS_FRAG) & 0x1fff) << 3;
  }
  set fragmentOffset(bytesOff: number) {
    const p = this.off + Ipv4Field.FLAGS_FRAG;
    writeU16(this.bytes, p, (readU16(this.bytes, p) & 0xe000) | ((bytesOff >>> 3) & 0x1fff));
  }
  /** True for any fragment (MF set or a non-zero offset): the payload needs reassembly. */
  get isFragment(): boolean {
    return (readU16(this.bytes, this.off + Ipv4Field.FLAGS_FRAG) & 0x3fff) !== 0;
  }
  get ttl(): number {
    return this.bytes[this.off + Ipv4Field.TTL]!;
  }
  set ttl(v: number) {
    this.bytes[this.off + Ipv4Field.TTL] = v;
  }
  get protocol(): number {
    return this.bytes[this.off + Ipv4Field.PROTOCOL]!;
  }
  set protocol(v: number) {
    this.bytes[this.off + Ipv4Field.PROTOCOL] = v;
  }
  get checksum(): number {
    return readU16(this.bytes, this.off + Ipv4Field.CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.bytes, this.off + Ipv4Field.CHECKSUM, v);
  }
  get src(): number {
    return readU32(this.bytes, this.off + Ipv4Field.SRC);
  }
  set src(v: number) {
    writeU32(this.bytes, this.off + Ipv4Field.SRC, v);
  }
  get dst(): number {
    return readU32(this.bytes, this.off + Ipv4Field.DST);
  }
  set dst(v: number) {
    writeU32(this.bytes, this.off + Ipv4Field.DST, v);
  }
  get optionsOffset(): number {
    return this.off + IPV4_HEADER_LEN;
  }
  get optionsLen(): number {
    return this.headerLen - IPV4_HEADER_LEN;
  }
  get payloadOffset(): number {
    return this.off + this.headerLen;
  }
  /** Payload bytes present: total length minus header (clipped for a quoted datagram). */
  get payloadLen(): number {
    return this.end - this.headerLen;
  }

  verifyChecksum(): boolean {
    return checksum(this.bytes, this.off, this.headerLen) === 0;
  }
  fillChecksum(): void {
    const p = this.off + Ipv4Field.CHECKSUM;
    this.bytes[p] = 0;
    this.bytes[p + 1] = 0;
    writeU16(this.bytes, p, checksum(this.bytes, this.off, this.headerLen));
  }
  /** Decrement the TTL and patch the checksum incrementally (RFC 1624), as a router does.
   * The caller checks `ttl > 1` first (and answers Time Exceeded otherwise). */
  decrementTtl(): void {
    const p = this.off + Ipv4Field.TTL;
    const old = readU16(this.bytes, p);
    this.bytes[p] = this.bytes[p]! - 1;
    this.checksum = updateChecksum16(this.checksum, old, readU16(this.bytes, p));
  }
}

/** IHL * 4 when bytes[off, off+len) starts with a plausible IPv4 header, else -1. */
function headerLenOf(bytes: Uint8Array, off: number, len: number): number {
  if (off < 0 || len < IPV4_HEADER_LEN || off + len > bytes.length) return -1;
  const vi = bytes[off]!;
  const hl = (vi & 0x0f) << 2;
  return vi >>> 4 !== 4 || hl < IPV4_HEADER_LEN || hl > len ? -1 : hl;
}

/** Pseudo-header sum (RFC 793 §3.1) from numeric addresses, for TCP/UDP checksums. Not folded. */
export function ipv4PseudoSum(src: number, dst: number, proto: number, l4len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + l4len;
}

export interface Ipv4Repr {
  src: number;
  dst: number;
  protocol: number;
  /** Bytes after the header (total length = header length + payloadLen). */
  payloadLen: number;
  ttl: number;
  dscp?: number;
  ecn?: number;
  ident?: number;
  dontFragment?: boolean;
  moreFragments?: boolean;
  /** In bytes; must be a multiple of 8. */
  fragmentOffset?: number;
  /** Raw option bytes; padded with zeros (End of Option List) to a multiple of 4, at most 40. */
  options?: Uint8Array;
}

export function parseIpv4(v: Ipv4View): Ipv4Repr {
  const r: Ipv4Repr = {
    src: v.src,
    dst: v.dst,
    protocol: v.protocol,
    payloadLen: v.totalLen - v.headerLen,
    ttl: v.ttl,
    dscp: v.dscp,
    ecn: v.ecn,
    ident: v.ident,
    dontFragment: v.dontFragment,
    moreFragments: v.moreFragments,
    fragmentOffset: v.fragmentOffset,
  };
  if (v.optionsLen > 0) r.options = v.bytes.slice(v.optionsOffset, v.optionsOffset + v.optionsLen);
  return r;
}

export function ipv4HeaderLen(r: Ipv4Repr): number {
  const o = r.options ? r.options.length : 0;
  return IPV4_HEADER_LEN + ((o + 3) & ~3);
}

/** Write the header (with options) at buf[off] and fill its checksum; returns the header length.
 * Throws RangeError for options longer than 40 bytes: that is a programming error, not input. */
export function emitIpv4(r: Ipv4Repr, buf: Uint8Array, off: number): number {
  const hl = ipv4HeaderLen(r);
  if (hl > IPV4_MAX_HEADER_LEN) throw new RangeError(`IPv4 options too long: ${r.options!.length} > 40 bytes`);
  buf[off] = 0x40 | (hl >>> 2);
  buf[off + 1] = (((r.dscp ?? 0) & 0x3f) << 2) | ((r.ecn ?? 0) & 3);
  writeU16(buf, off + Ipv4Field.TOTAL_LEN, hl + r.payloadLen);
  writeU16(buf, off + Ipv4Field.IDENT, r.ident ?? 0);
  writeU16(
    buf,
    off + Ipv4Field.FLAGS_FRAG,
    (r.dontFragment ? Ipv4Flag.DF : 0) | (r.moreFragments ? Ipv4Flag.MF : 0) | (((r.fragmentOffset ?? 0) >>> 3) & 0x1fff),
  );
  buf[off + Ipv4Field.TTL] = r.ttl;
  buf[off + Ipv4Field.PROTOCOL] = r.protocol;
  buf[off + Ipv4Field.CHECKSUM] = 0;
  buf[off + Ipv4Field.CHECKSUM + 1] = 0;
  writeU32(buf, off + Ipv4Field.SRC, r.src);
  writeU32(buf, off + Ipv4Field.DST, r.dst);
  if (r.options) {
    buf.set(r.options, off + IPV4_HEADER_LEN);
    buf.fill(0, off + IPV4_HEADER_LEN + r.options.length, off + hl);
  }
  writeU16(buf, off + Ipv4Field.CHECKSUM, checksum(buf, off, hl));
  return hl;
}
