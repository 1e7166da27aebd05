/**
 * ICMP for IPv4 (RFC 792): echo request/reply, destination unreachable (with the RFC 1191
 * next-hop MTU for "fragmentation needed"), time exceeded, and the checksum over the message.
 *
 * Error messages carry the offending datagram's header and at least 8 bytes of its payload;
 * RFC 1812 §4.3.2.3 lets a sender quote as much as fits in 576 bytes, which `ICMPV4_MAX_QUOTE`
 * encodes. To read the quote, point an `Ipv4View` at `dataOffset` with `resetQuoted`.
 * Other types (redirect, parameter problem, timestamp, ...) parse to the `other` form, which keeps
 * the 4-byte "rest of header" word verbatim. Not done: rate limiting, deciding when to send errors.
 */
import { EMPTY, readU16, readU32, writeU16, writeU32 } from './addr.ts';
import { checksum, updateChecksum16 } from './checksum.ts';

export const Icmpv4Field = { TYPE: 0, CODE: 1, CHECKSUM: 2, IDENT: 4, SEQ: 6, REST: 4, NEXT_HOP_MTU: 6, DATA: 8 } as const;

export const ICMPV4_HEADER_LEN = 8;
/** Most bytes of the original datagram to quote in an error: 576 - 20 (IP) - 8 (ICMP). */
export const ICMPV4_MAX_QUOTE = 548;

export const Icmpv4Type = {
  EchoReply: 0,
  DstUnreachable: 3,
  SourceQuench: 4,
  Redirect: 5,
  EchoRequest: 8,
  TimeExceeded: 11,
  ParamProblem: 12,
  Timestamp: 13,
  TimestampReply: 14,
} as const;

export const Icmpv4DstUnreachable = {
  NetUnreachable: 0,
  HostUnreachable: 1,
  ProtoUnreachable: 2,
  PortUnreachable: 3,
  FragNeeded: 4,
  SrcRouteFailed: 5,
  NetUnknown: 6,
  HostUnknown: 7,
  NetProhibited: 9,
  HostProhibited: 10,
  AdminProhibited: 13,
} as const;

export const Icmpv4TimeExceeded = { TtlExpired: 0, FragReassembly: 1 } as const;

export class Icmpv4View {
  bytes: Uint8Array = EMPTY;
  off = 0;
  len = 0;

  /** Point the view at the whole ICMP message bytes[off, off+len) (the IP payload). */
  reset(bytes: Uint8Array, off: number, len: number): boolean {
    if (off < 0 || len < ICMPV4_HEADER_LEN || off + len > bytes.length) return false;
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    return true;
  }

  get type(): number {
    return this.bytes[this.off]!;
  }
  set type(v: number) {
    this.bytes[this.off] = v;
  }
  get code(): number {
    return this.bytes[this.off + 1]!;
  }
  set code(v: number) {
    this.bytes[this.off + 1] = v;
  }
  get checksum(): number {
    return readU16(this.bytes, this.off + Icmpv4Field.CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.bytes, this.off + Icmpv4Field.CHECKSUM, v);
  }
  /** Echo identifier. */
  get ident(): number {
    return readU16(this.bytes, this.off + Icmpv4Field.IDENT);
  }
  set ident(v: number) {
    writeU16(this.bytes, this.off + Icmpv4Field.IDENT, v);
  }
  /** Echo sequence number. */
  get seq(): number {
    return readU16(this.bytes, this.off + Icmpv4Field.SEQ);
  }
  set seq(v: number) {
    writeU16(this.bytes, this.off + Icmpv4Field.SEQ, v);
  }
  /** Next-hop MTU of a "fragmentation needed" message (RFC 1191 §4). */
  get nextHopMtu(): number {
    return readU16(this.bytes, this.off + Icmpv4Field.NEXT_HOP_MTU);
  }
  /** The 32-bit word after the checksum, whatever the type makes of it. */
  get rest(): number {
    return readU32(this.bytes, this.off + Icmpv4Field.REST);
  }
  /** Echo payload, or the quoted datagram of an error. */
  get dataOffset(): number {
    return this.off + ICMPV4_HEADER_LEN;
  }
  get dataLen(): number {
    return this.len - ICMPV4_HEADER_LEN;
  }
  get isError(): boolean {
    const t = this.type;
    return t === 3 || t === 4 || t === 5 || t === 11 || t === 12;
  }

  verifyChecksum(): boolean {
    return checksum(this.bytes, this.off, this.len) === 0;
  }
  fillChecksum(): void {
    const p = this.off + Icmpv4Field.CHECKSUM;
    this.bytes[p] = 0;
    this.bytes[p + 1] = 0;
    writeU16(this.bytes, p, checksum(this.bytes, this.off, this.len));
  }
  /** Turn an echo request into its reply in place: type 0, checksum patched incrementally
   * (RFC 1624) since only the type byte changes; no pass over the payload. */
  echoToReply(): void {
    const oldWord = readU16(this.bytes, this.off);
    this.bytes[this.off] = Icmpv4Type.EchoReply;
    this.checksum = updateChecksum16(this.checksum, oldWord, readU16(this.bytes, this.off));
  }
}

export type Icmpv4Repr =
  | { kind: 'echo-request'; ident: number; seq: number; data: Uint8Array }
  | { kind: 'echo-reply'; ident: number; seq: number; data: Uint8Array }
  /** `data` is the quoted original datagram (IP header + leading payload). */
  | { kind: 'dst-unreachable'; code: number; nextHopMtu: number; data: Uint8Array }
  | { kind: 'time-exceeded'; code: number; data: Uint8Array }
  /** Any other type: `rest` is bytes 4–7 verbatim. */
  | { kind: 'other'; type: number; code: number; rest: number; data: Uint8Array };

/** Parse a reset view. The data is copied. The checksum is not checked here (`verifyChecksum`). */
export function parseIcmpv4(v: Icmpv4View): Icmpv4Repr {
  const data = v.bytes.slice(v.dataOffset, v.dataOffset + v.dataLen);
  const type = v.type;
  const code = v.code;
  if (type === Icmpv4Type.EchoRequest && code === 0) return { kind: 'echo-request', ident: v.ident, seq: v.seq, data };
  if (type === Icmpv4Type.EchoReply && code === 0) return { kind: 'echo-reply', ident: v.ident, seq: v.seq, data };
  // The unused halves must be zero for these to be the plain forms; otherwise keep them raw.
  if (type === Icmpv4Type.DstUnreachable && readU16(v.bytes, v.off + 4) === 0) {
    return { kind: 'dst-unreachable', code, nextHopMtu: v.nextHopMtu, data };
  }
  if (type === Icmpv4Type.TimeExceeded && v.rest === 0) return { kind: 'time-exceeded', code, data };
  return { kind: 'other', type, code, rest: v.rest, data };
}

export function icmpv4Len(r: Icmpv4Repr): number {
  return ICMPV4_HEADER_LEN + r.data.length;
}

/** Write the whole message (header + data) at buf[off] and fill the checksum; returns its length. */
export function emitIcmpv4(r: Icmpv4Repr, buf: Uint8Array, off: number): number {
  let type: number;
  let code = 0;
  let rest = 0;
  switch (r.kind) {
    case 'echo-request':
    case 'echo-reply':
      type = r.kind === 'echo-request' ? Icmpv4Type.EchoRequest : Icmpv4Type.EchoReply;
      rest = ((r.ident & 0xffff) << 16) | (r.seq & 0xffff);
      break;
    case 'dst-unreachable':
      type = Icmpv4Type.DstUnreachable;
      code = r.code;
      rest = r.nextHopMtu & 0xffff;
      break;
    case 'time-exceeded':
      type = Icmpv4Type.TimeExceeded;
      code = r.code;
      break;
    case 'other':
      type = r.type;
      code = r.code;
      rest = r.rest;
      break;
  }
  buf[off] = type;
  buf[off + 1] = code;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  writeU32(buf, off + Icmpv4Field.REST, rest);
  buf.set(r.data, off + ICMPV4_HEADER_LEN);
  const len = ICMPV4_HEADER_LEN + r.data.length;
  writeU16(buf, off + Icmpv4Field.CHECKSUM, checksum(buf, off, len));
  return len;
}

/** How many bytes of an offending datagram to quote: as much as fits in a 576-byte error
 * (RFC 1812 §4.3.2.3), never less than is available. */
export function icmpv4QuoteLen(datagramLen: number): number {
  return datagramLen < ICMPV4_MAX_QUOTE ? datagramLen : ICMPV4_MAX_QUOTE;
}
