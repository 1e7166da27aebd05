/**
 * ICMPv6 (RFC 4443): echo request/reply, destination unreachable, packet too big, time
 * exceeded and parameter problem, with the checksum over the IPv6 pseudo-header (RFC 8200 §8.1).
 *
 * Theory of operation: `Icmpv6View` checks the 8-byte header once; type, code, checksum and the
 * 32-bit "rest of header" (echo id/seq, MTU, pointer) are then plain offset reads. The checksum
 * needs the IPv6 source and destination, which live in the enclosing IPv6 header: every
 * checksum function takes that header's bytes and offset (`ip`, `ipOff`), so the ICMPv6 message
 * and its IPv6 header may sit in the same buffer or in different ones.
 *
 * `parseIcmpv6` covers the messages above and returns null for other types; Neighbor Discovery
 * (types 133..137) is parsed by ndp.ts from the same view.
 *
 * Limits: an error message carries as much of the invoking packet as keeps the whole IPv6
 * packet within the minimum MTU (RFC 4443 §2.4 (c)); `emitIcmpv6` truncates to
 * `ICMPV6_ERROR_MAX_INVOKING` itself. Rate limiting (§2.4 (f)) and the rules on when not to send
 * an error (§2.4 (e)) belong to the stack, not to this file.
 */
import { EMPTY, readU16, readU32, writeU16, writeU32 } from './addr.ts';
import { checksum, sum16, foldSum, pseudoSumV6 } from './checksum.ts';

export const Icmpv6Field = {
  TYPE: 0,
  CODE: 1,
  CHECKSUM: 2,
  /** Echo identifier / MTU / pointer / unused: the 32-bit "rest of header". */
  REST: 4,
  IDENT: 4,
  SEQ: 6,
  MTU: 4,
  POINTER: 4,
  BODY: 8,
} as const;
export const ICMPV6_HEADER_LEN = 8;
export const ICMPV6_NEXT_HEADER = 58;
/** Offsets of source and destination inside an IPv6 header. */
const IPV6_SRC = 8;
const IPV6_DST = 24;
export const ICMPV6_MIN_MTU = 1280;
/** Most bytes of an invoking packet an error message may carry (1280 - 40 - 8). */
export const ICMPV6_ERROR_MAX_INVOKING = ICMPV6_MIN_MTU - 40 - ICMPV6_HEADER_LEN;

export const Icmpv6Type = {
  DST_UNREACHABLE: 1,
  PACKET_TOO_BIG: 2,
  TIME_EXCEEDED: 3,
  PARAM_PROBLEM: 4,
  ECHO_REQUEST: 128,
  ECHO_REPLY: 129,
  ROUTER_SOLICIT: 133,
  ROUTER_ADVERT: 134,
  NEIGHBOR_SOLICIT: 135,
  NEIGHBOR_ADVERT: 136,
  REDIRECT: 137,
} as const;

export const Icmpv6DstUnreachableCode = {
  NO_ROUTE: 0,
  ADMIN_PROHIBITED: 1,
  BEYOND_SCOPE: 2,
  ADDR_UNREACHABLE: 3,
  PORT_UNREACHABLE: 4,
  SRC_POLICY_FAILED: 5,
  REJECT_ROUTE: 6,
} as const;

export const Icmpv6TimeExceededCode = { HOP_LIMIT: 0, FRAG_REASSEMBLY: 1 } as const;

export const Icmpv6ParamProblemCode = { HEADER_FIELD: 0, NEXT_HEADER: 1, OPTION: 2 } as const;

/**
 * Sum of the IPv6 pseudo-header and bytes[off, off+len) for an ICMPv6 message, folded but not
 * complemented. `ip`/`ipOff` locate the IPv6 header holding source and destination.
 */
function icmpv6Sum(bytes: Uint8Array, off: number, len: number, ip: Uint8Array, ipOff: number): number {
  return foldSum(sum16(bytes, off, len, pseudoSumV6(ip, ipOff + IPV6_SRC, ipOff + IPV6_DST, ICMPV6_NEXT_HEADER, len)));
}

/**
 * Checksum to store in an ICMPv6 message at bytes[off, off+len) whose checksum field is zero,
 * with the pseudo-header from the IPv6 header at ip[ipOff].
 */
export function icmpv6Checksum(bytes: Uint8Array, off: number, len: number, ip: Uint8Array, ipOff: number): number {
  return checksum(bytes, off, len, pseudoSumV6(ip, ipOff + IPV6_SRC, ipOff + IPV6_DST, ICMPV6_NEXT_HEADER, len));
}

/** Zero-copy view of an ICMPv6 message (the IPv6 payload). */
export class Icmpv6View {
  bytes: Uint8Array = EMPTY;
  off = 0;
  len = 0;

  /** Point at bytes[off, off+len). False when shorter than 8 octets (no ICMPv6 message is). */
  reset(bytes: Uint8Array, off: number, len: number): boolean {
    if (off < 0 || len < ICMPV6_HEADER_LEN || off + len > bytes.length) return false;
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
    return readU16(this.bytes, this.off + Icmpv6Field.CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.bytes, this.off + Icmpv6Field.CHECKSUM, v);
  }
  get ident(): number {
    return readU16(this.bytes, this.off + Icmpv6Field.IDENT);
  }
  set ident(v: number) {
    writeU16(this.bytes, this.off + Icmpv6Field.IDENT, v);
  }
  get seq(): number {
    return readU16(this.bytes, this.off + Icmpv6Field.SEQ);
  }
  set seq(v: number) {
    writeU16(this.bytes, this.off + Icmpv6Field.SEQ, v);
  }
  get mtu(): number {
    return readU32(this.bytes, this.off + Icmpv6Field.MTU);
  }
  set mtu(v: number) {
    writeU32(this.bytes, this.off + Icmpv6Field.MTU, v);
  }
  get pointer(): number {
    return readU32(this.bytes, this.off + Icmpv6Field.POINTER);
  }
  set pointer(v: number) {
    writeU32(this.bytes, this.off + Icmpv6Field.POINTER, v);
  }
  /** True for types 0..127 (RFC 4443 §2.1). */
  get isError(): boolean {
    return this.type < 128;
  }
  /** Echo data or the invoking packet of an error. */
  get payloadOffset(): number {
    return this.off + ICMPV6_HEADER_LEN;
  }
  get payloadLen(): number {
    return this.len - ICMPV6_HEADER_LEN;
  }

  /** Verify against the pseudo-header of the IPv6 header at ip[ipOff]. */
  verifyChecksum(ip: Uint8Array, ipOff: number): boolean {
    return icmpv6Sum(this.bytes, this.off, this.len, ip, ipOff) === 0xffff;
  }

  /** Compute and store the checksum using the IPv6 header at ip[ipOff]. */
  fillChecksum(ip: Uint8Array, ipOff: number): void {
    this.checksum = 0;
    this.checksum = icmpv6Checksum(this.bytes, this.off, this.len, ip, ipOff);
  }
}

export type Icmpv6Repr =
  | { kind: 'echoRequest'; ident: number; seq: number; data: Uint8Array }
  | { kind: 'echoReply'; ident: number; seq: number; data: Uint8Array }
  | { kind: 'dstUnreachable'; code: number; invoking: Uint8Array }
  | { kind: 'packetTooBig'; mtu: number; invoking: Uint8Array }
  | { kind: 'timeExceeded'; code: number; invoking: Uint8Array }
  | { kind: 'paramProblem'; code: number; pointer: number; invoking: Uint8Array };

/**
 * Decode the message the view points at. Null for types this file does not cover (NDP, MLD,
 * unknown informational types) and for codes that must be zero but are not. The checksum is
 * not checked here: call `verifyChecksum` first.
 */
export function parseIcmpv6(v: Icmpv6View): Icmpv6Repr | null {
  const body = (): Uint8Array => v.bytes.slice(v.payloadOffset, v.off + v.len);
  switch (v.type) {
    case Icmpv6Type.ECHO_REQUEST:
      if (v.code !== 0) return null;
      return { kind: 'echoRequest', ident: v.ident, seq: v.seq, data: body() };
    case Icmpv6Type.ECHO_REPLY:
      if (v.code !== 0) return null;
      return { kind: 'echoReply', ident: v.ident, seq: v.seq, data: body() };
    case Icmpv6Type.DST_UNREACHABLE:
      return { kind: 'dstUnreachable', code: v.code, invoking: body() };
    case Icmpv6Type.PACKET_TOO_BIG:
      if (v.code !== 0) return null;
      return { kind: 'packetTooBig', mtu: v.mtu, invoking: body() };
    case Icmpv6Type.TIME_EXCEEDED:
      return { kind: 'timeExceeded', code: v.code, invoking: body() };
    case Icmpv6Type.PARAM_PROBLEM:
      return { kind: 'paramProblem', code: v.code, pointer: v.pointer, invoking: body() };
    default:
      return null;
  }
}

function bodyOf(r: Icmpv6Repr): Uint8Array {
  switch (r.kind) {
    case 'echoRequest':
    case 'echoReply':
      return r.data;
    default:
      return r.invoking.length > ICMPV6_ERROR_MAX_INVOKING ? r.invoking.subarray(0, ICMPV6_ERROR_MAX_INVOKING) : r.invoking;
  }
}

/** Bytes `emitIcmpv6` writes for `r` (the IPv6 payload length). */
export function icmpv6Len(r: Icmpv6Repr): number {
  return ICMPV6_HEADER_LEN + bodyOf(r).length;
}

/**
 * Write `r` at buf[off] and fill the checksum from the IPv6 header at ip[ipOff] (whose source
 * and destination must already be set; `ip` may be `buf`). Returns the bytes written.
 */
export function emitIcmpv6(r: Icmpv6Repr, buf: Uint8Array, off: number, ip: Uint8Array, ipOff: number): number {
  let type: number;
  let code = 0;
  let rest = 0;
  switch (r.kind) {
    case 'echoRequest':
    case 'echoReply':
      type = r.kind === 'echoRequest' ? Icmpv6Type.ECHO_REQUEST : Icmpv6Type.ECHO_REPLY;
      rest = ((r.ident & 0xffff) << 16) | (r.seq & 0xffff);
      break;
    case 'dstUnreachable':
      type = Icmpv6Type.DST_UNREACHABLE;
      code = r.code;
      break;
    case 'packetTooBig':
      type = Icmpv6Type.PACKET_TOO_BIG;
      rest = r.mtu;
      break;
    case 'timeExceeded':
      type = Icmpv6Type.TIME_EXCEEDED;
      code = r.code;
      break;
    case 'paramProblem':
      type = Icmpv6Type.PARAM_PROBLEM;
      code = r.code;
      rest = r.pointer;
      break;
  }
  const body = bodyOf(r);
  buf[off] = type;
  buf[off + 1] = code;
  writeU16(buf, off + 2, 0);
  writeU32(buf, off + 4, rest);
  buf.set(body, off + ICMPV6_HEADER_LEN);
  const len = ICMPV6_HEADER_LEN + body.length;
  writeU16(buf, off + 2, icmpv6Checksum(buf, off, len, ip, ipOff));
  return len;
}
