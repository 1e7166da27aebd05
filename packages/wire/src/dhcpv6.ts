/**
 * DHCPv6 client/server messages (RFC 8415 §8): Solicit, Advertise, Request, Confirm, Renew,
 * Rebind, Reply, Release, Decline, Information-Request (and Reconfigure), with the options a
 * stateless or small stateful server needs: client/server identifier (DUIDs, §11), IA_NA with
 * IA addresses (§21.4, §21.6), option request (§21.7), preference (§21.8), elapsed time
 * (§21.9), status code (§21.13), rapid commit (§21.14), information refresh time (§21.23),
 * DNS recursive name servers and domain search list (RFC 3646).
 *
 * Theory of operation: `Dhcpv6View` checks the 4-byte header once (message type and 24-bit
 * transaction id by offset). `Dhcpv6OptionCursor` walks an option list without allocating and
 * flags an option that runs past its container. `parseDhcpv6` types the options above into
 * `Dhcpv6Options` and keeps every other option raw, in order, so real messages round-trip byte
 * for byte; a malformed option list (or a typed option with an impossible length) makes the
 * message null, since RFC 8415 §16 asks to discard such messages.
 *
 * Client and server ids are kept as raw DUID octets, because a server must echo the client's
 * DUID exactly (§16.x); `parseDhcpv6Duid` / `encodeDhcpv6Duid` type them when needed.
 * Domain names use DNS wire format without compression (§10); status messages are UTF-8.
 *
 * Not done here: relay messages (Relay-Forw/Relay-Repl have a different header: parse returns
 * null), IA_TA and IA_PD, authentication, reconfigure keys. Unknown sub-options inside IA_NA or
 * IA Address are dropped on parse.
 */
import { EMPTY, readU16, readU32, writeU16, writeU32 } from './addr.ts';
import { decodeDnsName, dnsNameWireLen, encodeDnsName } from './dns.ts';

export const Dhcpv6Field = { MSG_TYPE: 0, TRANSACTION_ID: 1, OPTIONS: 4 } as const;
export const DHCPV6_HEADER_LEN = 4;
export const DHCPV6_CLIENT_PORT = 546;
export const DHCPV6_SERVER_PORT = 547;
/** All_DHCP_Relay_Agents_and_Servers, ff02::1:2 (RFC 8415 §7.1). */
export const DHCPV6_ALL_SERVERS_AND_RELAYS: Uint8Array = Uint8Array.of(0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2);

export const Dhcpv6MsgType = {
  SOLICIT: 1,
  ADVERTISE: 2,
  REQUEST: 3,
  CONFIRM: 4,
  RENEW: 5,
  REBIND: 6,
  REPLY: 7,
  RELEASE: 8,
  DECLINE: 9,
  RECONFIGURE: 10,
  INFORMATION_REQUEST: 11,
  RELAY_FORW: 12,
  RELAY_REPL: 13,
} as const;

export const Dhcpv6OptionCode = {
  CLIENTID: 1,
  SERVERID: 2,
  IA_NA: 3,
  IA_TA: 4,
  IAADDR: 5,
  ORO: 6,
  PREFERENCE: 7,
  ELAPSED_TIME: 8,
  STATUS_CODE: 13,
  RAPID_COMMIT: 14,
  DNS_SERVERS: 23,
  DOMAIN_LIST: 24,
  IA_PD: 25,
  INFORMATION_REFRESH_TIME: 32,
} as const;

export const Dhcpv6StatusCode = {
  SUCCESS: 0,
  UNSPEC_FAIL: 1,
  NO_ADDRS_AVAIL: 2,
  NO_BINDING: 3,
  NOT_ON_LINK: 4,
  USE_MULTICAST: 5,
  NO_PREFIX_AVAIL: 6,
} as const;

export const Dhcpv6DuidType = { LLT: 1, EN: 2, LL: 3, UUID: 4 } as const;

/** Seconds from the Unix epoch to 2000-01-01T00:00:00Z, the DUID-LLT time origin (§11.2). */
export const DHCPV6_DUID_EPOCH = 946684800;

// ---- view and cursor -----------------------------------------------------------------------

/** Zero-copy view of a DHCPv6 client/server message (the UDP payload). */
export class Dhcpv6View {
  bytes: Uint8Array = EMPTY;
  off = 0;
  len = 0;

  /** Point at bytes[off, off+len). False when shorter than the 4-byte header. */
  reset(bytes: Uint8Array, off: number, len: number): boolean {
    if (off < 0 || len < DHCPV6_HEADER_LEN || off + len > bytes.length) return false;
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    return true;
  }
  get msgType(): number {
    return this.bytes[this.off]!;
  }
  /** 24-bit transaction id. */
  get transactionId(): number {
    const b = this.bytes;
    const o = this.off;
    return (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
  }
  get payloadOffset(): number {
    return this.off + DHCPV6_HEADER_LEN;
  }
  get payloadLen(): number {
    return this.len - DHCPV6_HEADER_LEN;
  }
}

/**
 * Allocation-free walk over options in bytes[off, off+len). After `next()` returns true, `code`,
 * `valueOff` and `valueLen` describe one option; `malformed` is set when one overruns.
 */
export class Dhcpv6OptionCursor {
  bytes: Uint8Array = EMPTY;
  pos = 0;
  end = 0;
  code = 0;
  valueOff = 0;
  valueLen = 0;
  malformed = false;

  reset(bytes: Uint8Array, off: number, len: number): this {
    this.bytes = bytes;
    this.pos = off;
    this.end = Math.min(off + len, bytes.length);
    this.malformed = false;
    return this;
  }

  next(): boolean {
    if (this.pos >= this.end) return false;
    if (this.pos + 4 > this.end) {
      this.malformed = true;
      this.pos = this.end;
      return false;
    }
    const n = readU16(this.bytes, this.pos + 2);
    if (this.pos + 4 + n > this.end) {
      this.malformed = true;
      this.pos = this.end;
      return false;
    }
    this.code = readU16(this.bytes, this.pos);
    this.valueOff = this.pos + 4;
    this.valueLen = n;
    this.pos += 4 + n;
    return true;
  }
}

// ---- repr ----------------------------------------------------------------------------------

export interface Dhcpv6Status {
  code: number;
  message: string;
}

export interface Dhcpv6IaAddr {
  addr: Uint8Array;
  preferredLifetime: number;
  validLifetime: number;
  status?: Dhcpv6Status;
}

export interface Dhcpv6IaNa {
  iaid: number;
  t1: number;
  t2: number;
  addresses: Dhcpv6IaAddr[];
  status?: Dhcpv6Status;
}

export interface Dhcpv6Options {
  /** Raw DUID octets. */
  clientId?: Uint8Array;
  serverId?: Uint8Array;
  iaNa?: Dhcpv6IaNa[];
  oro?: number[];
  preference?: number;
  /** Hundredths of a second (§21.9). */
  elapsedTime?: number;
  status?: Dhcpv6Status;
  rapidCommit?: boolean;
  dnsServers?: Uint8Array[];
  domainList?: string[];
  /** Seconds (§21.23). */
  informationRefreshTime?: number;
  /** Other options in wire order (may repeat). */
  raw?: Array<{ code: number; data: Uint8Array }>;
  /** Codes in wire order (set by parse); emit writes these first, then the rest by code. */
  order?: number[];
}

export interface Dhcpv6Repr {
  msgType: number;
  transactionId: number;
  options: Dhcpv6Options;
}

const utf8Decoder = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

function parseStatus(b: Uint8Array, o: number, n: number): Dhcpv6Status | null {
  if (n < 2) return null;
  return { code: readU16(b, o), message: utf8Decoder.decode(b.subarray(o + 2, o + n)) };
}

function parseIaAddr(b: Uint8Array, o: number, n: number): Dhcpv6IaAddr | null {
  if (n < 24) return null;
  const a: Dhcpv6IaAddr = { addr: b.slice(o, o + 16), preferredLifetime: readU32(b, o + 16), validLifetime: readU32(b, o + 20) };
  const c = new Dhcpv6OptionCursor().reset(b, o + 24, n - 24);
  while (c.next()) {
    if (c.code === Dhcpv6OptionCode.STATUS_CODE) {
      const s = parseStatus(b, c.valueOff, c.valueLen);
      if (s === null) return null;
      a.status = s;
    }
  }
  return c.malformed ? null : a;
}

function parseIaNa(b: Uint8Array, o: number, n: number): Dhcpv6IaNa | null {
  if (n < 12) return null;
  const ia: Dhcpv6IaNa = { iaid: readU32(b, o), t1: readU32(b, o + 4), t2: readU32(b, o + 8), addresses: [] };
  const c = new Dhcpv6OptionCursor().reset(b, o + 12, n - 12);
  while (c.next()) {
    if (c.code === Dhcpv6OptionCode.IAADDR) {
      const a = parseIaAddr(b, c.valueOff, c.valueLen);
      if (a === null) return null;
      ia.addresses.push(a);
    } else if (c.code === Dhcpv6OptionCode.STATUS_CODE) {
      const s = parseStatus(b, c.valueOff, c.valueLen);
      if (s === null) return null;
      ia.status = s;
    }
  }
  return c.malformed ? null : ia;
}

function parseDomainList(b: Uint8Array, o: number, n: number): string[] | null {
  const out: string[] = [];
  let p = o;
  while (p < o + n) {
    const r = decodeDnsName(b, o, p, o + n, false);
    if (r === null) return null;
    out.push(r.name);
    p = r.next;
  }
  return out;
}

/**
 * Decode the message the view points at. Null for relay messages, malformed option lists and
 * typed options with impossible lengths.
 */
export function parseDhcpv6(v: Dhcpv6View): Dhcpv6Repr | null {
  const t = v.msgType;
  if (t === Dhcpv6MsgType.RELAY_FORW || t === Dhcpv6MsgType.RELAY_REPL) return null;
  const b = v.bytes;
  const o: Dhcpv6Options = {};
  const order: number[] = [];
  const seen = new Set<number>();
  const c = new Dhcpv6OptionCursor().reset(b, v.payloadOffset, v.payloadLen);
  while (c.next()) {
    const p = c.valueOff;
    const n = c.valueLen;
    const code = c.code;
    if (!seen.has(code)) {
      seen.add(code);
      order.push(code);
    }
    switch (code) {
      case Dhcpv6OptionCode.CLIENTID:
      case Dhcpv6OptionCode.SERVERID:
        if (n < 2) return null;
        if (code === Dhcpv6OptionCode.CLIENTID) o.clientId = b.slice(p, p + n);
        else o.serverId = b.slice(p, p + n);
        break;
      case Dhcpv6OptionCode.IA_NA: {
        const ia = parseIaNa(b, p, n);
        if (ia === null) return null;
        (o.iaNa ??= []).push(ia);
        break;
      }
      case Dhcpv6OptionCode.ORO: {
        if (n % 2 !== 0) return null;
        const list: number[] = [];
        for (let i = 0; i < n; i += 2) list.push(readU16(b, p + i));
        o.oro = list;
        break;
      }
      case Dhcpv6OptionCode.PREFERENCE:
        if (n !== 1) return null;
        o.preference = b[p]!;
        break;
      case Dhcpv6OptionCode.ELAPSED_TIME:
        if (n !== 2) return null;
        o.elapsedTime = readU16(b, p);
        break;
      case Dhcpv6OptionCode.STATUS_CODE: {
        const s = parseStatus(b, p, n);
        if (s === null) return null;
        o.status = s;
        break;
      }
      case Dhcpv6OptionCode.RAPID_COMMIT:
        if (n !== 0) return null;
        o.rapidCommit = true;
        break;
      case Dhcpv6OptionCode.DNS_SERVERS: {
        if (n % 16 !== 0) return null;
        const list: Uint8Array[] = [];
        for (let i = 0; i < n; i += 16) list.push(b.slice(p + i, p + i + 16));
        o.dnsServers = list;
        break;
      }
      case Dhcpv6OptionCode.DOMAIN_LIST: {
        const list = parseDomainList(b, p, n);
        if (list === null) return null;
        o.domainList = list;
        break;
      }
      case Dhcpv6OptionCode.INFORMATION_REFRESH_TIME:
        if (n !== 4) return null;
        o.informationRefreshTime = readU32(b, p);
        break;
      default:
        (o.raw ??= []).push({ code, data: b.slice(p, p + n) });
    }
  }
  if (c.malformed) return null;
  if (order.length > 0) o.order = order;
  return { msgType: t, transactionId: v.transactionId, options: o };
}

// ---- emit ----------------------------------------------------------------------------------

/** Small growable writer; emit is a control-path operation. */
class Out {
  parts: number[] = [];
  u8(v: number): void {
    this.parts.push(v & 0xff);
  }
  u16(v: number): void {
    this.parts.push((v >>> 8) & 0xff, v & 0xff);
  }
  u32(v: number): void {
    this.parts.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  }
  bytes(b: Uint8Array): void {
    for (let i = 0; i < b.length; i++) this.parts.push(b[i]!);
  }
  /** Write an option: code, a length patched after `body` runs. */
  opt(code: number, body: () => void): void {
    this.u16(code);
    const at = this.parts.length;
    this.u16(0);
    body();
    const n = this.parts.length - at - 2;
    this.parts[at] = (n >>> 8) & 0xff;
    this.parts[at + 1] = n & 0xff;
  }
}

function emitStatus(w: Out, s: Dhcpv6Status): void {
  w.opt(Dhcpv6OptionCode.STATUS_CODE, () => {
    w.u16(s.code);
    w.bytes(utf8Encoder.encode(s.message));
  });
}

function emitIaNa(w: Out, ia: Dhcpv6IaNa): void {
  w.opt(Dhcpv6OptionCode.IA_NA, () => {
    w.u32(ia.iaid);
    w.u32(ia.t1);
    w.u32(ia.t2);
    for (const a of ia.addresses) {
      w.opt(Dhcpv6OptionCode.IAADDR, () => {
        w.bytes(a.addr.subarray(0, 16));
        w.u32(a.preferredLifetime);
        w.u32(a.validLifetime);
        if (a.status !== undefined) emitStatus(w, a.status);
      });
    }
    if (ia.status !== undefined) emitStatus(w, ia.status);
  });
}

const TYPED_ORDER = [1, 2, 3, 6, 7, 8, 13, 14, 23, 24, 32] as const;

function emitCode(w: Out, o: Dhcpv6Options, code: number, raw: Map<number, Uint8Array[]>): void {
  switch (code) {
    case Dhcpv6OptionCode.CLIENTID:
      if (o.clientId !== undefined) w.opt(code, () => w.bytes(o.clientId!));
      return;
    case Dhcpv6OptionCode.SERVERID:
      if (o.serverId !== undefined) w.opt(code, () => w.bytes(o.serverId!));
      return;
    case Dhcpv6OptionCode.IA_NA:
      for (const ia of o.iaNa ?? []) emitIaNa(w, ia);
      return;
    case Dhcpv6OptionCode.ORO:
      if (o.oro !== undefined) w.opt(code, () => o.oro!.forEach((c) => w.u16(c)));
      return;
    case Dhcpv6OptionCode.PREFERENCE:
      if (o.preference !== undefined) w.opt(code, () => w.u8(o.preference!));
      return;
    case Dhcpv6OptionCode.ELAPSED_TIME:
      if (o.elapsedTime !== undefined) w.opt(code, () => w.u16(o.elapsedTime!));
      return;
    case Dhcpv6OptionCode.STATUS_CODE:
      if (o.status !== undefined) emitStatus(w, o.status);
      return;
    case Dhcpv6OptionCode.RAPID_COMMIT:
      if (o.rapidCommit === true) w.opt(code, () => {});
      return;
    case Dhcpv6OptionCode.DNS_SERVERS:
      if (o.dnsServers !== undefined) w.opt(code, () => o.dnsServers!.forEach((a) => w.bytes(a.subarray(0, 16))));
      return;
    case Dhcpv6OptionCode.DOMAIN_LIST:
      if (o.domainList !== undefined) {
        w.opt(code, () => {
          for (const name of o.domainList!) {
            const n = dnsNameWireLen(name);
            if (n < 0) continue; // invalid names are skipped
            const tmp = new Uint8Array(n);
            encodeDnsName(name, tmp, 0);
            w.bytes(tmp);
          }
        });
      }
      return;
    case Dhcpv6OptionCode.INFORMATION_REFRESH_TIME:
      if (o.informationRefreshTime !== undefined) w.opt(code, () => w.u32(o.informationRefreshTime!));
      return;
    default:
      for (const d of raw.get(code) ?? []) w.opt(code, () => w.bytes(d));
  }
}

function encode(r: Dhcpv6Repr): number[] {
  const w = new Out();
  w.u8(r.msgType);
  w.u8(r.transactionId >>> 16);
  w.u8(r.transactionId >>> 8);
  w.u8(r.transactionId);
  const o = r.options;
  // Group raw options by code once, keeping their relative order.
  const raw = new Map<number, Uint8Array[]>();
  for (const x of o.raw ?? []) {
    const list = raw.get(x.code);
    if (list === undefined) raw.set(x.code, [x.data]);
    else list.push(x.data);
  }
  const done = new Set<number>();
  const add = (code: number): void => {
    if (done.has(code)) return;
    done.add(code);
    emitCode(w, o, code, raw);
  };
  for (const c of o.order ?? []) add(c);
  for (const c of TYPED_ORDER) add(c);
  for (const c of [...raw.keys()].sort((a, b) => a - b)) add(c);
  return w.parts;
}

/** Bytes `emitDhcpv6` writes for `r`. */
export function dhcpv6Len(r: Dhcpv6Repr): number {
  return encode(r).length;
}

/** Write `r` at buf[off] (size it with `dhcpv6Len`). Returns the bytes written. */
export function emitDhcpv6(r: Dhcpv6Repr, buf: Uint8Array, off: number): number {
  const parts = encode(r);
  buf.set(parts, off);
  return parts.length;
}

// ---- DUIDs ---------------------------------------------------------------------------------

export type Dhcpv6Duid =
  | { type: 'llt'; hwType: number; time: number; linkAddr: Uint8Array }
  | { type: 'en'; enterprise: number; id: Uint8Array }
  | { type: 'll'; hwType: number; linkAddr: Uint8Array }
  | { type: 'uuid'; uuid: Uint8Array }
  | { type: 'unknown'; duidType: number; data: Uint8Array };

/** Type a raw DUID (§11). Null when shorter than its type requires. */
export function parseDhcpv6Duid(raw: Uint8Array): Dhcpv6Duid | null {
  if (raw.length < 2) return null;
  const t = readU16(raw, 0);
  switch (t) {
    case Dhcpv6DuidType.LLT:
      if (raw.length < 8) return null;
      return { type: 'llt', hwType: readU16(raw, 2), time: readU32(raw, 4), linkAddr: raw.slice(8) };
    case Dhcpv6DuidType.EN:
      if (raw.length < 6) return null;
      return { type: 'en', enterprise: readU32(raw, 2), id: raw.slice(6) };
    case Dhcpv6DuidType.LL:
      if (raw.length < 4) return null;
      return { type: 'll', hwType: readU16(raw, 2), linkAddr: raw.slice(4) };
    case Dhcpv6DuidType.UUID:
      if (raw.length !== 18) return null;
      return { type: 'uuid', uuid: raw.slice(2) };
    default:
      return { type: 'unknown', duidType: t, data: raw.slice(2) };
  }
}

/** Raw octets of a DUID. */
export function encodeDhcpv6Duid(d: Dhcpv6Duid): Uint8Array {
  let out: Uint8Array;
  switch (d.type) {
    case 'llt':
      out = new Uint8Array(8 + d.linkAddr.length);
      writeU16(out, 0, Dhcpv6DuidType.LLT);
      writeU16(out, 2, d.hwType);
      writeU32(out, 4, d.time);
      out.set(d.linkAddr, 8);
      return out;
    case 'en':
      out = new Uint8Array(6 + d.id.length);
      writeU16(out, 0, Dhcpv6DuidType.EN);
      writeU32(out, 2, d.enterprise);
      out.set(d.id, 6);
      return out;
    case 'll':
      out = new Uint8Array(4 + d.linkAddr.length);
      writeU16(out, 0, Dhcpv6DuidType.LL);
      writeU16(out, 2, d.hwType);
      out.set(d.linkAddr, 4);
      return out;
    case 'uuid':
      out = new Uint8Array(18);
      writeU16(out, 0, Dhcpv6DuidType.UUID);
      out.set(d.uuid.subarray(0, 16), 2);
      return out;
    case 'unknown':
      out = new Uint8Array(2 + d.data.length);
      writeU16(out, 0, d.duidType);
      out.set(d.data, 2);
      return out;
  }
}

/** DUID-LL for an Ethernet MAC (hardware type 1). */
export function dhcpv6DuidLl(mac: Uint8Array): Uint8Array {
  return encodeDhcpv6Duid({ type: 'll', hwType: 1, linkAddr: mac });
}

/** DUID-LLT for an Ethernet MAC; `unixSeconds` is converted to the DUID epoch (2000-01-01). */
export function dhcpv6DuidLlt(mac: Uint8Array, unixSeconds: number): Uint8Array {
  return encodeDhcpv6Duid({ type: 'llt', hwType: 1, time: (unixSeconds - DHCPV6_DUID_EPOCH) >>> 0, linkAddr: mac });
}
