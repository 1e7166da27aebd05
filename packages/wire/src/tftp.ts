/**
 * TFTP packets (RFC 1350) with option negotiation (RFC 2347): blksize (RFC 2348), timeout and
 * tsize (RFC 2349), windowsize (RFC 7440).
 *
 * Theory of operation: `TftpView` checks the 4-byte minimum once and exposes the opcode and the
 * block number / error code by offset, which is all the DATA/ACK fast path needs. `parseTftp`
 * decodes a whole packet into `TftpRepr`; every string must end in a NUL inside the packet,
 * otherwise the result is null (never a throw, never a read past the end). Strings are latin1:
 * one char per octet, so any octet string round-trips (RFC 1350 says netascii; servers compare
 * names as bytes).
 *
 * Option names are case-insensitive (RFC 2347) and reported lowercased. A known option whose
 * value is out of its RFC range (blksize 8..65464, timeout 1..255, windowsize 1..65535, tsize a
 * decimal number) is not typed but kept in `extra`, so a server ignores it as RFC 2347 asks.
 *
 * Not done here: the transfer state machine, netascii conversion, the "mail" mode semantics.
 */
import { EMPTY, readU16, writeU16 } from './addr.ts';

export const TftpField = { OPCODE: 0, BLOCK: 2, ERROR_CODE: 2, DATA: 4 } as const;
export const TFTP_HEADER_LEN = 4;
export const TFTP_PORT = 69;
export const TFTP_DEFAULT_BLKSIZE = 512;

export const TftpOpcode = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

export const TftpErrorCode = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  DISK_FULL: 3,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TID: 5,
  FILE_EXISTS: 6,
  NO_SUCH_USER: 7,
  /** RFC 2347: the client refuses the server's OACK. */
  OPTION_NEGOTIATION: 8,
} as const;

/** Zero-copy view for the DATA/ACK fast path. */
export class TftpView {
  bytes: Uint8Array = EMPTY;
  off = 0;
  len = 0;

  /** Point at bytes[off, off+len). False below 4 octets (no valid TFTP packet is shorter). */
  reset(bytes: Uint8Array, off: number, len: number): boolean {
    if (off < 0 || len < TFTP_HEADER_LEN || off + len > bytes.length) return false;
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    return true;
  }
  get opcode(): number {
    return readU16(this.bytes, this.off);
  }
  /** DATA/ACK block number. */
  get block(): number {
    return readU16(this.bytes, this.off + TftpField.BLOCK);
  }
  /** ERROR code. */
  get errorCode(): number {
    return readU16(this.bytes, this.off + TftpField.ERROR_CODE);
  }
  /** DATA payload. */
  get payloadOffset(): number {
    return this.off + TftpField.DATA;
  }
  get payloadLen(): number {
    return this.len - TftpField.DATA;
  }
}

export interface TftpOptions {
  blksize?: number;
  tsize?: number;
  timeout?: number;
  windowsize?: number;
  /** Other (or out-of-range) options, names lowercased, in packet order. */
  extra?: Array<{ name: string; value: string }>;
  /** Lowercased names in the order to write them; unlisted ones follow in the order above. */
  order?: string[];
}

export type TftpRepr =
  | { op: 'rrq' | 'wrq'; filename: string; mode: string; options: TftpOptions }
  | { op: 'data'; block: number; data: Uint8Array }
  | { op: 'ack'; block: number }
  | { op: 'error'; code: number; message: string }
  | { op: 'oack'; options: TftpOptions };

/** Index of the NUL ending the string at p, or -1 when none before `end`. */
function findNul(bytes: Uint8Array, p: number, end: number): number {
  for (let i = p; i < end; i++) if (bytes[i] === 0) return i;
  return -1;
}

function latin1(bytes: Uint8Array, from: number, to: number): string {
  let s = '';
  for (let i = from; i < to; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

// A Map, not an object literal: option names come from the wire ('__proto__', 'constructor').
const RANGES = new Map<string, readonly [number, number]>([
  ['blksize', [8, 65464]], // RFC 2348
  ['timeout', [1, 255]], // RFC 2349
  ['windowsize', [1, 65535]], // RFC 7440
  ['tsize', [0, Number.MAX_SAFE_INTEGER]], // RFC 2349
]);

function parseDecimal(s: string): number {
  if (s.length === 0 || s.length > 16 || !/^[0-9]+$/.test(s)) return -1;
  return Number(s);
}

/** Parse name/value pairs in [p, end); null when a string lacks its NUL or a value is missing. */
function parseOptions(bytes: Uint8Array, p: number, end: number): TftpOptions | null {
  const opts: TftpOptions = {};
  const order: string[] = [];
  const seenNames = new Set<string>();
  while (p < end) {
    const n0 = findNul(bytes, p, end);
    if (n0 < 0) return null;
    const v0 = findNul(bytes, n0 + 1, end);
    if (v0 < 0) return null;
    const name = latin1(bytes, p, n0).toLowerCase();
    const value = latin1(bytes, n0 + 1, v0);
    p = v0 + 1;
    const range = RANGES.get(name);
    const num = range === undefined ? -1 : parseDecimal(value);
    const seen = seenNames.has(name);
    if (range !== undefined && !seen && num >= range[0] && num <= range[1]) {
      (opts as Record<string, unknown>)[name] = num;
    } else {
      (opts.extra ??= []).push({ name, value });
    }
    if (!seen) {
      seenNames.add(name);
      order.push(name);
    }
  }
  if (order.length > 0) opts.order = order;
  return opts;
}

/** Decode the packet the view points at. Null when malformed. */
export function parseTftp(v: TftpView): TftpRepr | null {
  const b = v.bytes;
  const end = v.off + v.len;
  const p = v.off + 2;
  switch (v.opcode) {
    case TftpOpcode.RRQ:
    case TftpOpcode.WRQ: {
      const f = findNul(b, p, end);
      if (f < 0) return null;
      const m = findNul(b, f + 1, end);
      if (m < 0) return null;
      const options = parseOptions(b, m + 1, end);
      if (options === null) return null;
      return {
        op: v.opcode === TftpOpcode.RRQ ? 'rrq' : 'wrq',
        filename: latin1(b, p, f),
        mode: latin1(b, f + 1, m),
        options,
      };
    }
    case TftpOpcode.DATA:
      return { op: 'data', block: v.block, data: b.slice(p + 2, end) };
    case TftpOpcode.ACK:
      // Extra octets after an ACK are tolerated (some stacks pad short frames).
      return { op: 'ack', block: v.block };
    case TftpOpcode.ERROR: {
      const e = findNul(b, p + 2, end);
      if (e < 0) return null;
      return { op: 'error', code: v.errorCode, message: latin1(b, p + 2, e) };
    }
    case TftpOpcode.OACK: {
      const options = parseOptions(b, p, end);
      if (options === null) return null;
      return { op: 'oack', options };
    }
    default:
      return null;
  }
}

const KNOWN = ['blksize', 'tsize', 'timeout', 'windowsize'] as const;

/** Ordered name/value pairs the options object describes. */
function optionPairs(o: TftpOptions): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  // Group extras by lowercased name once, keeping their relative order.
  const extra = new Map<string, Array<{ name: string; value: string }>>();
  for (const e of o.extra ?? []) {
    const k = e.name.toLowerCase();
    const list = extra.get(k);
    if (list === undefined) extra.set(k, [e]);
    else list.push(e);
  }
  const done = new Set<string>();
  const add = (name: string): void => {
    if (done.has(name)) return;
    done.add(name);
    const val = (KNOWN as readonly string[]).includes(name) ? (o as Record<string, unknown>)[name] : undefined;
    if (typeof val === 'number') pairs.push([name, String(val)]);
    for (const e of extra.get(name) ?? []) pairs.push([e.name, e.value]);
  };
  for (const n of o.order ?? []) add(n.toLowerCase());
  for (const n of KNOWN) add(n);
  for (const n of extra.keys()) add(n);
  return pairs;
}

function strLen(s: string): number {
  return s.length + 1;
}

/** Bytes `emitTftp` will write for `r`. */
export function tftpLen(r: TftpRepr): number {
  switch (r.op) {
    case 'rrq':
    case 'wrq': {
      let n = 2 + strLen(r.filename) + strLen(r.mode);
      for (const [k, v] of optionPairs(r.options)) n += strLen(k) + strLen(v);
      return n;
    }
    case 'data':
      return 4 + r.data.length;
    case 'ack':
      return 4;
    case 'error':
      return 4 + strLen(r.message);
    case 'oack': {
      let n = 2;
      for (const [k, v] of optionPairs(r.options)) n += strLen(k) + strLen(v);
      return n;
    }
  }
}

function putStr(buf: Uint8Array, p: number, s: string): number {
  for (let i = 0; i < s.length; i++) buf[p + i] = s.charCodeAt(i);
  buf[p + s.length] = 0;
  return p + s.length + 1;
}

/** Write `r` at buf[off] (the caller sizes `buf` with `tftpLen`). Returns the bytes written. */
export function emitTftp(r: TftpRepr, buf: Uint8Array, off: number): number {
  let p = off + 2;
  switch (r.op) {
    case 'rrq':
    case 'wrq':
      writeU16(buf, off, r.op === 'rrq' ? TftpOpcode.RRQ : TftpOpcode.WRQ);
      p = putStr(buf, p, r.filename);
      p = putStr(buf, p, r.mode);
      for (const [k, v] of optionPairs(r.options)) p = putStr(buf, putStr(buf, p, k), v);
      break;
    case 'data':
      writeU16(buf, off, TftpOpcode.DATA);
      writeU16(buf, p, r.block);
      buf.set(r.data, p + 2);
      p += 2 + r.data.length;
      break;
    case 'ack':
      writeU16(buf, off, TftpOpcode.ACK);
      writeU16(buf, p, r.block);
      p += 2;
      break;
    case 'error':
      writeU16(buf, off, TftpOpcode.ERROR);
      writeU16(buf, p, r.code);
      p = putStr(buf, p + 2, r.message);
      break;
    case 'oack':
      writeU16(buf, off, TftpOpcode.OACK);
      for (const [k, v] of optionPairs(r.options)) p = putStr(buf, putStr(buf, p, k), v);
      break;
  }
  return p - off;
}
