/**
 * TCP header (RFC 9293 §3.1) and its options: MSS (RFC 9293 §3.2), window scale and timestamps
 * (RFC 7323), SACK-permitted and SACK blocks (RFC 2018), EOL/NOP. Checksum with the IPv4 or IPv6
 * pseudo-header.
 *
 * `reset` takes the whole segment (the IP payload, exactly) and checks 5 <= data offset and
 * data offset * 4 <= segment length. The window is the raw 16-bit field (unscaled).
 *
 * Options, hot path: `scanTcpOptions(view, out)` fills a caller-owned `TcpOptions` without
 * allocating. Options are scanned the way Linux's tcp_parse_options does: unknown kinds are skipped
 * by their length; a known kind with the wrong length is ignored; a length of 0 or 1, a length
 * running past the header, or a kind byte with no room for its length stops the scan and sets
 * `malformed` (options read before that point are kept). Nothing throws. A window-scale shift
 * above 14 is clamped to 14 (RFC 7323 §2.3). At most 4 SACK blocks exist (40 option bytes).
 * Duplicate options: the last one wins. The scanner reports what is present; whether MSS or
 * window scale are honoured outside a SYN is the connection's decision.
 *
 * Options, emit: the same byte layout Linux sends (MSS; SACK-permitted folded into the timestamp
 * word or NOP-padded; NOP + window scale; NOP NOP + SACK blocks), so segments look familiar in
 * captures. SACK blocks that do not fit in the 40-byte option space are left out.
 * Not supported: TCP-MD5 (RFC 2385), TCP-AO, MPTCP, Fast Open cookies (skipped as unknown on input).
 */
import { EMPTY, readU16, readU32, writeU16, writeU32 } from './addr.ts';
import { checksum, pseudoSumV4, pseudoSumV6 } from './checksum.ts';

export const TcpField = {
  SRC_PORT: 0,
  DST_PORT: 2,
  SEQ: 4,
  ACK: 8,
  DATA_OFFSET: 12,
  FLAGS: 13,
  WINDOW: 14,
  CHECKSUM: 16,
  URGENT: 18,
  OPTIONS: 20,
} as const;

export const TCP_HEADER_LEN = 20;
export const TCP_MAX_HEADER_LEN = 60;
/** Room for options: 40 bytes. */
export const TCP_MAX_OPTIONS_LEN = 40;
/** RFC 7323 §2.3. */
export const TCP_MAX_WINDOW_SHIFT = 14;

export const TcpFlags = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

export const TcpOptionKind = { EOL: 0, NOP: 1, MSS: 2, WSCALE: 3, SACK_PERMITTED: 4, SACK: 5, TIMESTAMP: 8 } as const;

const PROTO_TCP = 6;

export class TcpView {
  bytes: Uint8Array = EMPTY;
  off = 0;
  /** Segment length (header + payload). */
  len = 0;
  /** Data offset * 4, cached by `reset`. */
  headerLen = TCP_HEADER_LEN;

  /** Point the view at the segment bytes[off, off+len) (the IP payload, exactly). */
  reset(bytes: Uint8Array, off: number, len: number): boolean {
    if (off < 0 || len < TCP_HEADER_LEN || off + len > bytes.length) return false;
    const hl = (bytes[off + TcpField.DATA_OFFSET]! >>> 4) << 2;
    if (hl < TCP_HEADER_LEN || hl > len) return false;
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    this.headerLen = hl;
    return true;
  }

  get srcPort(): number {
    return readU16(this.bytes, this.off + TcpField.SRC_PORT);
  }
  set srcPort(v: number) {
    writeU16(this.bytes, this.off + TcpField.SRC_PORT, v);
  }
  get dstPort(): number {
    return readU16(this.bytes, this.off + TcpField.DST_PORT);
  }
  set dstPort(v: number) {
    writeU16(this.bytes, this.off + TcpField.DST_PORT, v);
  }
  get seqNum(): number {
    return readU32(this.bytes, this.off + TcpField.SEQ);
  }
  set seqNum(v: number) {
    writeU32(this.bytes, this.off + TcpField.SEQ, v);
  }
  get ackNum(): number {
    return readU32(this.bytes, this.off + TcpField.ACK);
  }
  set ackNum(v: number) {
    writeU32(this.bytes, this.off + TcpField.ACK, v);
  }
  /** The eight flag bits (see `TcpFlags`). */
  get flags(): number {
    return this.bytes[this.off + TcpField.FLAGS]!;
  }
  set flags(v: number) {
    this.bytes[this.off + TcpField.FLAGS] = v;
  }
  /** True when every bit of `mask` is set. */
  hasFlags(mask: number): boolean {
    return (this.bytes[this.off + TcpField.FLAGS]! & mask) === mask;
  }
  get window(): number {
    return readU16(this.bytes, this.off + TcpField.WINDOW);
  }
  set window(v: number) {
    writeU16(this.bytes, this.off + TcpField.WINDOW, v);
  }
  get checksum(): number {
    return readU16(this.bytes, this.off + TcpField.CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.bytes, this.off + TcpField.CHECKSUM, v);
  }
  get urgent(): number {
    return readU16(this.bytes, this.off + TcpField.URGENT);
  }
  set urgent(v: number) {
    writeU16(this.bytes, this.off + TcpField.URGENT, v);
  }
  get optionsOffset(): number {
    return this.off + TCP_HEADER_LEN;
  }
  get optionsLen(): number {
    return this.headerLen - TCP_HEADER_LEN;
  }
  get payloadOffset(): number {
    return this.off + this.headerLen;
  }
  get payloadLen(): number {
    return this.len - this.headerLen;
  }
  /** Sequence space the segment occupies: payload + SYN + FIN (RFC 9293 §3.4). */
  get segLen(): number {
    const f = this.flags;
    return this.len - this.headerLen + (f & TcpFlags.SYN ? 1 : 0) + (f & TcpFlags.FIN ? 1 : 0);
  }

  verifyChecksumPseudo(pseudoSum: number): boolean {
    return checksum(this.bytes, this.off, this.len, pseudoSum) === 0;
  }
  fillChecksumPseudo(pseudoSum: number): void {
    const p = this.off + TcpField.CHECKSUM;
    this.bytes[p] = 0;
    this.bytes[p + 1] = 0;
    writeU16(this.bytes, p, checksum(this.bytes, this.off, this.len, pseudoSum));
  }
  /** `ip[ipOff]` is the IPv4 header carrying this segment. */
  verifyChecksumV4(ip: Uint8Array, ipOff: number): boolean {
    return this.verifyChecksumPseudo(pseudoSumV4(ip, ipOff + 12, ipOff + 16, PROTO_TCP, this.len));
  }
  fillChecksumV4(ip: Uint8Array, ipOff: number): void {
    this.fillChecksumPseudo(pseudoSumV4(ip, ipOff + 12, ipOff + 16, PROTO_TCP, this.len));
  }
  /** `ip[ipOff]` is the IPv6 fixed header carrying this segment. */
  verifyChecksumV6(ip: Uint8Array, ipOff: number): boolean {
    return this.verifyChecksumPseudo(pseudoSumV6(ip, ipOff + 8, ipOff + 24, PROTO_TCP, this.len));
  }
  fillChecksumV6(ip: Uint8Array, ipOff: number): void {
    this.fillChecksumPseudo(pseudoSumV6(ip, ipOff + 8, ipOff + 24, PROTO_TCP, this.len));
  }
}

// ---- Options -------------------------------------------------------------------------------

/** Reusable option set: filled by `scanTcpOptions`, written by `emitTcpOptions`. -1 = absent. */
export class TcpOptions {
  mss = -1;
  /** Window scale shift 0–14, or -1. */
  wscale = -1;
  sackPermitted = false;
  hasTimestamp = false;
  tsVal = 0;
  tsEcr = 0;
  /** Number of valid entries in sackLeft/sackRight (0–4). */
  sackCount = 0;
  readonly sackLeft: Uint32Array = new Uint32Array(4);
  readonly sackRight: Uint32Array = new Uint32Array(4);
  /** Set by a scan that stopped on a bad length. */
  malformed = false;

  clear(): void {
    this.mss = -1;
    this.wscale = -1;
    this.sackPermitted = false;
    this.hasTimestamp = false;
    this.tsVal = 0;
    this.tsEcr = 0;
    this.sackCount = 0;
    this.malformed = false;
  }
}

/** Scan option bytes[off, off+len) into `out` (cleared first). Returns false when malformed. */
export function scanTcpOptionBytes(bytes: Uint8Array, off: number, len: number, out: TcpOptions): boolean {
  out.clear();
  const end = off + len;
  let p = off;
  while (p < end) {
    const kind = bytes[p]!;
    if (kind === TcpOptionKind.EOL) break;
    if (kind === TcpOptionKind.NOP) {
      p++;
      continue;
    }
    if (p + 1 >= end) {
      out.malformed = true;
      return false;
    }
    const ol = bytes[p + 1]!;
    if (ol < 2 || p + ol > end) {
      out.malformed = true;
      return false;
    }
    switch (kind) {
      case TcpOptionKind.MSS:
        if (ol === 4) out.mss = readU16(bytes, p + 2);
        break;
      case TcpOptionKind.WSCALE:
        if (ol === 3) {
          const s = bytes[p + 2]!;
          out.wscale = s > TCP_MAX_WINDOW_SHIFT ? TCP_MAX_WINDOW_SHIFT : s;
        }
        break;
      case TcpOptionKind.SACK_PERMITTED:
        if (ol === 2) out.sackPermitted = true;
        break;
      case TcpOptionKind.SACK:
        if (ol >= 10 && ((ol - 2) & 7) === 0) {
          let n = (ol - 2) >>> 3;
          if (n > 4) n = 4;
          for (let i = 0; i < n; i++) {
            out.sackLeft[i] = readU32(bytes, p + 2 + 8 * i);
            out.sackRight[i] = readU32(bytes, p + 6 + 8 * i);
          }
          out.sackCount = n;
        }
        break;
      case TcpOptionKind.TIMESTAMP:
        if (ol === 10) {
          out.hasTimestamp = true;
          out.tsVal = readU32(bytes, p + 2);
          out.tsEcr = readU32(bytes, p + 6);
        }
        break;
      default:
        break; // unknown: skipped by its length
    }
    p += ol;
  }
  return true;
}

/** Scan the options of a reset view into `out`. Returns false when malformed. Never allocates. */
export function scanTcpOptions(v: TcpView, out: TcpOptions): boolean {
  return scanTcpOptionBytes(v.bytes, v.optionsOffset, v.optionsLen, out);
}

function fixedOptionsLen(o: TcpOptions): number {
  let n = 0;
  if (o.mss >= 0) n += 4;
  if (o.hasTimestamp) n += 12;
  else if (o.sackPermitted) n += 4;
  if (o.wscale >= 0) n += 4;
  return n;
}

/** SACK blocks that fit after the other options (each 8 bytes, after NOP NOP kind len). */
function sackBlocksThatFit(o: TcpOptions): number {
  if (o.sackCount === 0) return 0;
  const room = TCP_MAX_OPTIONS_LEN - fixedOptionsLen(o) - 4;
  const fit = room < 0 ? 0 : room >>> 3;
  return o.sackCount < fit ? o.sackCount : fit;
}

/** Bytes `emitTcpOptions` will write (a multiple of 4, at most 40). */
export function tcpOptionsLen(o: TcpOptions): number {
  const n = sackBlocksThatFit(o);
  return fixedOptionsLen(o) + (n > 0 ? 4 + 8 * n : 0);
}

/** Write `o` at buf[off] in Linux's layout; returns the bytes written (multiple of 4, <= 40). */
export function emitTcpOptions(o: TcpOptions, buf: Uint8Array, off: number): number {
  let p = off;
  if (o.mss >= 0) {
    buf[p] = TcpOptionKind.MSS;
    buf[p + 1] = 4;
    writeU16(buf, p + 2, o.mss);
    p += 4;
  }
  if (o.hasTimestamp) {
    // SACK-permitted rides in the two bytes that would otherwise be NOP padding.
    if (o.sackPermitted) {
      buf[p] = TcpOptionKind.SACK_PERMITTED;
      buf[p + 1] = 2;
    } else {
      buf[p] = TcpOptionKind.NOP;
      buf[p + 1] = TcpOptionKind.NOP;
    }
    buf[p + 2] = TcpOptionKind.TIMESTAMP;
    buf[p + 3] = 10;
    writeU32(buf, p + 4, o.tsVal);
    writeU32(buf, p + 8, o.tsEcr);
    p += 12;
  } else if (o.sackPermitted) {
    buf[p] = TcpOptionKind.NOP;
    buf[p + 1] = TcpOptionKind.NOP;
    buf[p + 2] = TcpOptionKind.SACK_PERMITTED;
    buf[p + 3] = 2;
    p += 4;
  }
  if (o.wscale >= 0) {
    buf[p] = TcpOptionKind.NOP;
    buf[p + 1] = TcpOptionKind.WSCALE;
    buf[p + 2] = 3;
    buf[p + 3] = o.wscale > TCP_MAX_WINDOW_SHIFT ? TCP_MAX_WINDOW_SHIFT : o.wscale;
    p += 4;
  }
  const n = sackBlocksThatFit(o);
  if (n > 0) {
    buf[p] = TcpOptionKind.NOP;
    buf[p + 1] = TcpOptionKind.NOP;
    buf[p + 2] = TcpOptionKind.SACK;
    buf[p + 3] = 2 + 8 * n;
    p += 4;
    for (let i = 0; i < n; i++) {
      writeU32(buf, p, o.sackLeft[i]!);
      writeU32(buf, p + 4, o.sackRight[i]!);
      p += 8;
    }
  }
  return p - off;
}

// ---- Repr ----------------------------------------------------------------------------------

export interface TcpOptionsRepr {
  mss?: number;
  wscale?: number;
  sackPermitted?: boolean;
  /** [left, right) edges, at most 4. */
  sackBlocks?: Array<[number, number]>;
  tsVal?: number;
  /** Present together with tsVal. */
  tsEcr?: number;
}

export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seqNum: number;
  ackNum: number;
  flags: number;
  window: number;
  urgent?: number;
  options?: TcpOptionsRepr;
  payloadLen: number;
  /** Set by parse when option scanning stopped on a bad length. */
  optionsMalformed?: boolean;
}

const scratch = new TcpOptions();

function optionsToRepr(o: TcpOptions): TcpOptionsRepr {
  const r: TcpOptionsRepr = {};
  if (o.mss >= 0) r.mss = o.mss;
  if (o.wscale >= 0) r.wscale = o.wscale;
  if (o.sackPermitted) r.sackPermitted = true;
  if (o.sackCount > 0) {
    r.sackBlocks = [];
    for (let i = 0; i < o.sackCount; i++) r.sackBlocks.push([o.sackLeft[i]!, o.sackRight[i]!]);
  }
  if (o.hasTimestamp) {
    r.tsVal = o.tsVal;
    r.tsEcr = o.tsEcr;
  }
  return r;
}

function reprToOptions(r: TcpOptionsRepr | undefined, o: TcpOptions): TcpOptions {
  o.clear();
  if (!r) return o;
  if (r.mss !== undefined) o.mss = r.mss & 0xffff;
  if (r.wscale !== undefined) o.wscale = r.wscale;
  o.sackPermitted = r.sackPermitted === true;
  if (r.tsVal !== undefined) {
    o.hasTimestamp = true;
    o.tsVal = r.tsVal;
    o.tsEcr = r.tsEcr ?? 0;
  }
  if (r.sackBlocks) {
    const n = r.sackBlocks.length < 4 ? r.sackBlocks.length : 4;
    for (let i = 0; i < n; i++) {
      o.sackLeft[i] = r.sackBlocks[i]![0];
      o.sackRight[i] = r.sackBlocks[i]![1];
    }
    o.sackCount = n;
  }
  return o;
}

export function parseTcp(v: TcpView): TcpRepr {
  const ok = scanTcpOptions(v, scratch);
  const r: TcpRepr = {
    srcPort: v.srcPort,
    dstPort: v.dstPort,
    seqNum: v.seqNum,
    ackNum: v.ackNum,
    flags: v.flags,
    window: v.window,
    urgent: v.urgent,
    options: optionsToRepr(scratch),
    payloadLen: v.payloadLen,
  };
  if (!ok) r.optionsMalformed = true;
  return r;
}

/** Header length `emitTcp` will write for `r`. */
export function tcpHeaderLen(r: TcpRepr): number {
  return TCP_HEADER_LEN + tcpOptionsLen(reprToOptions(r.options, scratch));
}

/**
 * Write the header with options at buf[off]; returns the header length. With `pseudoSum` >= 0
 * (see `ipv4PseudoSum`/`ipv6PseudoSum`, length = header + payload) the payload must already be
 * in place right after the header (at off + tcpHeaderLen(r)) and the checksum is filled;
 * otherwise the checksum field is left 0 for the caller (or a checksum offload) to fill.
 */
export function emitTcp(r: TcpRepr, buf: Uint8Array, off: number, pseudoSum = -1): number {
  const ol = emitTcpOptions(reprToOptions(r.options, scratch), buf, off + TCP_HEADER_LEN);
  const hl = TCP_HEADER_LEN + ol;
  writeU16(buf, off + TcpField.SRC_PORT, r.srcPort);
  writeU16(buf, off + TcpField.DST_PORT, r.dstPort);
  writeU32(buf, off + TcpField.SEQ, r.seqNum);
  writeU32(buf, off + TcpField.ACK, r.ackNum);
  buf[off + TcpField.DATA_OFFSET] = (hl >>> 2) << 4;
  buf[off + TcpField.FLAGS] = r.flags;
  writeU16(buf, off + TcpField.WINDOW, r.window);
  buf[off + TcpField.CHECKSUM] = 0;
  buf[off + TcpField.CHECKSUM + 1] = 0;
  writeU16(buf, off + TcpField.URGENT, r.urgent ?? 0);
  if (pseudoSum >= 0) writeU16(buf, off + TcpField.CHECKSUM, checksum(buf, off, hl + r.payloadLen, pseudoSum));
  return hl;
}
