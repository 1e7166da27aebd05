/**
 * BOOTP/DHCPv4 messages (RFC 951, RFC 2131) and the options (RFC 2132 and friends) a DHCP
 * server for a virtual network reads and writes.
 *
 * Theory of operation:
 * - `Dhcpv4View` checks the fixed 236-byte BOOTP header plus the magic cookie once (a message
 *   without the cookie is plain BOOTP, which we do not serve) and reads fields by offset.
 * - `Dhcpv4OptionCursor` walks one option area without allocating: pad (0) is skipped, end
 *   (255) stops, an option running past its area marks the walk malformed.
 * - `parseDhcpv4` walks the options area, then — if option 52 says so — the `file` and then the
 *   `sname` fields (RFC 2131 §4.1, in the order RFC 3396 §5 fixes), and concatenates every
 *   instance of the same code (RFC 3396 long options). Values are then typed into
 *   `Dhcpv4Options`; a value whose length does not fit its type stays raw in `options.raw` so
 *   nothing is silently lost. A malformed option area makes the whole message null.
 * - `emitDhcpv4` writes a complete BOOTP payload: the header, the cookie, the options (values
 *   over 255 octets split into consecutive instances, RFC 3396 §7), the end option, and zero
 *   padding up to the 300-octet BOOTP minimum that many clients still insist on.
 * - Option order is kept (`options.order`) so real messages round-trip byte for byte; options
 *   not listed there are written message type first, then by ascending code.
 * - Text options are latin1 (one char per octet). Trailing NULs are stripped on parse, as
 *   RFC 2132 §2 requires receivers to do.
 * - Domain search (119) uses DNS name encoding with optional compression relative to the
 *   option data (RFC 3397 §2); classless static routes (121) use RFC 3442's compact encoding.
 *
 * Not done here: emitting with option overload (we always have room: a server sizes its
 * replies), relay-agent information (82) sub-options, and the lease/state machine.
 */
import { EMPTY, readU16, readU32, writeU16, writeU32 } from './addr.ts';
import { decodeDnsName, dnsNameWireLen, encodeDnsName } from './dns.ts';

export const Dhcpv4Field = {
  OP: 0,
  HTYPE: 1,
  HLEN: 2,
  HOPS: 3,
  XID: 4,
  SECS: 8,
  FLAGS: 10,
  CIADDR: 12,
  YIADDR: 16,
  SIADDR: 20,
  GIADDR: 24,
  CHADDR: 28,
  SNAME: 44,
  FILE: 108,
  COOKIE: 236,
  OPTIONS: 240,
} as const;
export const DHCPV4_SNAME_LEN = 64;
export const DHCPV4_FILE_LEN = 128;
export const DHCPV4_CHADDR_LEN = 16;
/** Fixed header plus magic cookie. */
export const DHCPV4_HEADER_LEN = 240;
/** Smallest BOOTP message (RFC 951 §3; RFC 1542 §2.1). */
export const DHCPV4_MIN_LEN = 300;
export const DHCPV4_MAGIC_COOKIE = 0x63825363;
export const DHCPV4_SERVER_PORT = 67;
export const DHCPV4_CLIENT_PORT = 68;
/** The flags bit asking the server to broadcast its reply (RFC 2131 §2, figure 2). */
export const DHCPV4_FLAG_BROADCAST = 0x8000;

export const Dhcpv4Op = { BOOTREQUEST: 1, BOOTREPLY: 2 } as const;

export const Dhcpv4MessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;

export const Dhcpv4OptionCode = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS_SERVER: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  INTERFACE_MTU: 26,
  BROADCAST_ADDR: 28,
  VENDOR_SPECIFIC: 43,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAM_REQUEST_LIST: 55,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  VENDOR_CLASS_ID: 60,
  CLIENT_ID: 61,
  TFTP_SERVER_NAME: 66,
  BOOTFILE_NAME: 67,
  RELAY_AGENT_INFO: 82,
  DOMAIN_SEARCH: 119,
  CLASSLESS_ROUTES: 121,
  END: 255,
} as const;

/** Values of option 52 (RFC 2132 §9.3). */
export const Dhcpv4Overload = { FILE: 1, SNAME: 2, BOTH: 3 } as const;

// ---- view ----------------------------------------------------------------------------------

/** Zero-copy view of a DHCP message (the UDP payload). */
export class Dhcpv4View {
  bytes: Uint8Array = EMPTY;
  off = 0;
  len = 0;

  /** Point at bytes[off, off+len). False when shorter than 240 octets or without the cookie. */
  reset(bytes: Uint8Array, off: number, len: number): boolean {
    if (off < 0 || len < DHCPV4_HEADER_LEN || off + len > bytes.length) return false;
    if (readU32(bytes, off + Dhcpv4Field.COOKIE) !== DHCPV4_MAGIC_COOKIE) return false;
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    return true;
  }

  get op(): number {
    return this.bytes[this.off]!;
  }
  get htype(): number {
    return this.bytes[this.off + Dhcpv4Field.HTYPE]!;
  }
  get hlen(): number {
    return this.bytes[this.off + Dhcpv4Field.HLEN]!;
  }
  get hops(): number {
    return this.bytes[this.off + Dhcpv4Field.HOPS]!;
  }
  set hops(v: number) {
    this.bytes[this.off + Dhcpv4Field.HOPS] = v;
  }
  get xid(): number {
    return readU32(this.bytes, this.off + Dhcpv4Field.XID);
  }
  get secs(): number {
    return readU16(this.bytes, this.off + Dhcpv4Field.SECS);
  }
  get flags(): number {
    return readU16(this.bytes, this.off + Dhcpv4Field.FLAGS);
  }
  get broadcast(): boolean {
    return (this.flags & DHCPV4_FLAG_BROADCAST) !== 0;
  }
  get ciaddr(): number {
    return readU32(this.bytes, this.off + Dhcpv4Field.CIADDR);
  }
  get yiaddr(): number {
    return readU32(this.bytes, this.off + Dhcpv4Field.YIADDR);
  }
  get siaddr(): number {
    return readU32(this.bytes, this.off + Dhcpv4Field.SIADDR);
  }
  get giaddr(): number {
    return readU32(this.bytes, this.off + Dhcpv4Field.GIADDR);
  }
  set giaddr(v: number) {
    writeU32(this.bytes, this.off + Dhcpv4Field.GIADDR, v);
  }
  /** Offset of chaddr (16 octets; the first `hlen` are the hardware address). */
  get chaddrOffset(): number {
    return this.off + Dhcpv4Field.CHADDR;
  }
  get payloadOffset(): number {
    return this.off + Dhcpv4Field.OPTIONS;
  }
  get payloadLen(): number {
    return this.len - Dhcpv4Field.OPTIONS;
  }
}

/**
 * Allocation-free walk over one option area. After `next()` returns true, `code`, `valueOff`
 * and `valueLen` describe one option. At the end `ended` says whether an END option was seen
 * and `malformed` whether an option ran past the area.
 */
export class Dhcpv4OptionCursor {
  bytes: Uint8Array = EMPTY;
  pos = 0;
  end = 0;
  code = 0;
  valueOff = 0;
  valueLen = 0;
  ended = false;
  malformed = false;

  reset(bytes: Uint8Array, off: number, len: number): this {
    this.bytes = bytes;
    this.pos = off;
    this.end = Math.min(off + len, bytes.length);
    this.ended = false;
    this.malformed = false;
    return this;
  }

  next(): boolean {
    const b = this.bytes;
    while (this.pos < this.end) {
      const code = b[this.pos]!;
      if (code === Dhcpv4OptionCode.PAD) {
        this.pos++;
        continue;
      }
      if (code === Dhcpv4OptionCode.END) {
        this.ended = true;
        this.pos = this.end;
        return false;
      }
      if (this.pos + 2 > this.end || this.pos + 2 + b[this.pos + 1]! > this.end) {
        this.malformed = true;
        this.pos = this.end;
        return false;
      }
      this.code = code;
      this.valueLen = b[this.pos + 1]!;
      this.valueOff = this.pos + 2;
      this.pos += 2 + this.valueLen;
      return true;
    }
    return false;
  }
}

// ---- repr ----------------------------------------------------------------------------------

/** One classless static route (RFC 3442). */
export interface Dhcpv4Route {
  dest: number;
  prefixLen: number;
  router: number;
}

export interface Dhcpv4Options {
  messageType?: number; // 53
  subnetMask?: number; // 1
  routers?: number[]; // 3
  dnsServers?: number[]; // 6
  hostname?: string; // 12
  domainName?: string; // 15
  interfaceMtu?: number; // 26
  broadcastAddr?: number; // 28
  requestedIp?: number; // 50
  leaseTime?: number; // 51
  serverId?: number; // 54
  paramRequestList?: number[]; // 55
  message?: string; // 56
  maxMessageSize?: number; // 57
  renewalTime?: number; // 58
  rebindingTime?: number; // 59
  vendorClassId?: string; // 60
  clientId?: Uint8Array; // 61
  tftpServerName?: string; // 66
  bootfileName?: string; // 67
  domainSearch?: string[]; // 119
  classlessRoutes?: Dhcpv4Route[]; // 121
  /** Options without a typed field here (or whose value did not decode): code → value. */
  raw?: Map<number, Uint8Array>;
  /** Codes in wire order (set by parse). Emit writes these first, then the rest. */
  order?: number[];
}

export interface Dhcpv4Repr {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  /** Raw flags; `DHCPV4_FLAG_BROADCAST` is the only defined bit. */
  flags: number;
  ciaddr: number;
  yiaddr: number;
  siaddr: number;
  giaddr: number;
  /** The hardware address: the first min(hlen, 16) octets of chaddr. */
  chaddr: Uint8Array;
  /** Server host name and boot file ('' when the field carried overloaded options). */
  sname: string;
  file: string;
  options: Dhcpv4Options;
}

type Kind = 'ip' | 'ips' | 'u8' | 'u16' | 'u32' | 'str' | 'codes' | 'bytes' | 'search' | 'routes';
type TypedKey = Exclude<keyof Dhcpv4Options, 'raw' | 'order'>;

/** code → field and value type. Ascending code order, used for emission. */
const TYPED: ReadonlyArray<readonly [number, TypedKey, Kind]> = [
  [1, 'subnetMask', 'ip'],
  [3, 'routers', 'ips'],
  [6, 'dnsServers', 'ips'],
  [12, 'hostname', 'str'],
  [15, 'domainName', 'str'],
  [26, 'interfaceMtu', 'u16'],
  [28, 'broadcastAddr', 'ip'],
  [50, 'requestedIp', 'ip'],
  [51, 'leaseTime', 'u32'],
  [53, 'messageType', 'u8'],
  [54, 'serverId', 'ip'],
  [55, 'paramRequestList', 'codes'],
  [56, 'message', 'str'],
  [57, 'maxMessageSize', 'u16'],
  [58, 'renewalTime', 'u32'],
  [59, 'rebindingTime', 'u32'],
  [60, 'vendorClassId', 'str'],
  [61, 'clientId', 'bytes'],
  [66, 'tftpServerName', 'str'],
  [67, 'bootfileName', 'str'],
  [119, 'domainSearch', 'search'],
  [121, 'classlessRoutes', 'routes'],
];
const BY_CODE = new Map(TYPED.map((t) => [t[0], t] as const));

function latin1(b: Uint8Array, from: number, to: number): string {
  let s = '';
  for (let i = from; i < to; i++) s += String.fromCharCode(b[i]!);
  return s;
}

function cString(b: Uint8Array, from: number, to: number): string {
  let e = from;
  while (e < to && b[e] !== 0) e++;
  return latin1(b, from, e);
}

function decodeSearch(d: Uint8Array): string[] | null {
  const names: string[] = [];
  let p = 0;
  while (p < d.length) {
    const r = decodeDnsName(d, 0, p, d.length);
    if (r === null) return null;
    names.push(r.name);
    p = r.next;
  }
  return names;
}

function decodeRoutes(d: Uint8Array): Dhcpv4Route[] | null {
  const routes: Dhcpv4Route[] = [];
  let p = 0;
  while (p < d.length) {
    const w = d[p]!;
    if (w > 32) return null;
    const sig = (w + 7) >>> 3;
    if (p + 1 + sig + 4 > d.length) return null;
    let dest = 0;
    for (let k = 0; k < 4; k++) dest = (dest << 8) | (k < sig ? d[p + 1 + k]! : 0);
    routes.push({ dest: dest >>> 0, prefixLen: w, router: readU32(d, p + 1 + sig) });
    p += 1 + sig + 4;
  }
  return routes;
}

/** Typed value of `d`, or undefined when the length does not fit the type. */
function decodeValue(kind: Kind, d: Uint8Array): unknown {
  const n = d.length;
  switch (kind) {
    case 'ip':
    case 'u32':
      return n === 4 ? readU32(d, 0) : undefined;
    case 'ips': {
      if (n === 0 || n % 4 !== 0) return undefined;
      const out: number[] = [];
      for (let i = 0; i < n; i += 4) out.push(readU32(d, i));
      return out;
    }
    case 'u8':
      return n === 1 ? d[0] : undefined;
    case 'u16':
      return n === 2 ? readU16(d, 0) : undefined;
    case 'str': {
      let e = n;
      while (e > 0 && d[e - 1] === 0) e--;
      return latin1(d, 0, e);
    }
    case 'codes':
      return Array.from(d);
    case 'bytes':
      return d;
    case 'search':
      return decodeSearch(d) ?? undefined;
    case 'routes':
      return decodeRoutes(d) ?? undefined;
  }
}

/**
 * Collect every option of the message, RFC 3396-concatenated, in first-seen order. Null when
 * an option area is malformed.
 */
function collectOptions(v: Dhcpv4View): { values: Map<number, Uint8Array>; overload: number } | null {
  const chunks = new Map<number, Uint8Array[]>();
  const c = new Dhcpv4OptionCursor();
  const b = v.bytes;
  const walk = (off: number, len: number): boolean => {
    c.reset(b, off, len);
    while (c.next()) {
      const list = chunks.get(c.code);
      const piece = b.subarray(c.valueOff, c.valueOff + c.valueLen);
      if (list === undefined) chunks.set(c.code, [piece]);
      else list.push(piece);
    }
    return !c.malformed;
  };
  if (!walk(v.off + Dhcpv4Field.OPTIONS, v.len - Dhcpv4Field.OPTIONS)) return null;
  const ov = chunks.get(Dhcpv4OptionCode.OVERLOAD);
  const overload = ov !== undefined && ov[0]!.length >= 1 ? ov[0]![0]! & 3 : 0;
  if (overload & Dhcpv4Overload.FILE && !walk(v.off + Dhcpv4Field.FILE, DHCPV4_FILE_LEN)) return null;
  if (overload & Dhcpv4Overload.SNAME && !walk(v.off + Dhcpv4Field.SNAME, DHCPV4_SNAME_LEN)) return null;
  chunks.delete(Dhcpv4OptionCode.OVERLOAD);
  const values = new Map<number, Uint8Array>();
  for (const [code, list] of chunks) {
    let n = 0;
    for (const p of list) n += p.length;
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of list) {
      out.set(p, o);
      o += p.length;
    }
    values.set(code, out);
  }
  return { values, overload };
}

/** Decode the message a validated view points at. Null when an option area is malformed. */
export function parseDhcpv4(v: Dhcpv4View): Dhcpv4Repr | null {
  const col = collectOptions(v);
  if (col === null) return null;
  const options: Dhcpv4Options = {};
  const opts = options as Record<string, unknown>;
  let raw: Map<number, Uint8Array> | undefined;
  for (const [code, data] of col.values) {
    const t = BY_CODE.get(code);
    const val = t === undefined ? undefined : decodeValue(t[2], data);
    if (t !== undefined && val !== undefined) opts[t[1]] = val;
    else (raw ??= new Map()).set(code, data);
  }
  if (raw !== undefined) options.raw = raw;
  if (col.values.size > 0) options.order = [...col.values.keys()];
  const b = v.bytes;
  const o = v.off;
  const hlen = v.hlen;
  return {
    op: v.op,
    htype: v.htype,
    hlen,
    hops: v.hops,
    xid: v.xid,
    secs: v.secs,
    flags: v.flags,
    ciaddr: v.ciaddr,
    yiaddr: v.yiaddr,
    siaddr: v.siaddr,
    giaddr: v.giaddr,
    chaddr: b.slice(o + Dhcpv4Field.CHADDR, o + Dhcpv4Field.CHADDR + Math.min(hlen, DHCPV4_CHADDR_LEN)),
    sname: col.overload & Dhcpv4Overload.SNAME ? '' : cString(b, o + Dhcpv4Field.SNAME, o + Dhcpv4Field.SNAME + DHCPV4_SNAME_LEN),
    file: col.overload & Dhcpv4Overload.FILE ? '' : cString(b, o + Dhcpv4Field.FILE, o + Dhcpv4Field.FILE + DHCPV4_FILE_LEN),
    options,
  };
}

// ---- emit ----------------------------------------------------------------------------------

function encodeSearch(names: readonly string[]): Uint8Array {
  let cap = 0;
  for (const n of names) cap += Math.max(dnsNameWireLen(n), 0);
  const buf = new Uint8Array(cap);
  const map = new Map<string, number>();
  let p = 0;
  for (const n of names) {
    const e = encodeDnsName(n, buf, p, 0, map);
    if (e > 0) p = e; // invalid names are skipped
  }
  return buf.slice(0, p);
}

function encodeRoutes(routes: readonly Dhcpv4Route[]): Uint8Array {
  const out: number[] = [];
  for (const r of routes) {
    const w = Math.max(0, Math.min(32, r.prefixLen));
    const sig = (w + 7) >>> 3;
    out.push(w);
    for (let k = 0; k < sig; k++) out.push((r.dest >>> (24 - 8 * k)) & 0xff);
    out.push((r.router >>> 24) & 0xff, (r.router >>> 16) & 0xff, (r.router >>> 8) & 0xff, r.router & 0xff);
  }
  return Uint8Array.from(out);
}

function u32Bytes(list: readonly number[]): Uint8Array {
  const out = new Uint8Array(list.length * 4);
  for (let i = 0; i < list.length; i++) writeU32(out, i * 4, list[i]!);
  return out;
}

function strBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function encodeValue(kind: Kind, val: unknown): Uint8Array {
  switch (kind) {
    case 'ip':
    case 'u32':
      return u32Bytes([val as number]);
    case 'ips':
      return u32Bytes(val as number[]);
    case 'u8':
      return Uint8Array.of(val as number);
    case 'u16':
      return Uint8Array.of(((val as number) >>> 8) & 0xff, (val as number) & 0xff);
    case 'str':
      return strBytes(val as string);
    case 'codes':
      return Uint8Array.from(val as number[]);
    case 'bytes':
      return val as Uint8Array;
    case 'search':
      return encodeSearch(val as string[]);
    case 'routes':
      return encodeRoutes(val as Dhcpv4Route[]);
  }
}

/** The options of `o` as [code, value] pairs in emission order. */
function optionList(o: Dhcpv4Options): Array<[number, Uint8Array]> {
  const rec = o as Record<string, unknown>;
  const out: Array<[number, Uint8Array]> = [];
  const done = new Set<number>();
  const add = (code: number): void => {
    if (done.has(code) || code === Dhcpv4OptionCode.PAD || code === Dhcpv4OptionCode.END || code === Dhcpv4OptionCode.OVERLOAD) return;
    const t = BY_CODE.get(code);
    if (t !== undefined && rec[t[1]] !== undefined) {
      out.push([code, encodeValue(t[2], rec[t[1]])]);
      done.add(code);
      return;
    }
    const r = o.raw?.get(code);
    if (r !== undefined) {
      out.push([code, r]);
      done.add(code);
    }
  };
  for (const c of o.order ?? []) add(c);
  add(Dhcpv4OptionCode.MESSAGE_TYPE);
  for (const t of TYPED) add(t[0]);
  if (o.raw !== undefined) for (const c of [...o.raw.keys()].sort((a, b) => a - b)) add(c);
  return out;
}

function optionsLen(list: ReadonlyArray<[number, Uint8Array]>): number {
  let n = 0;
  // RFC 3396 §7: a value over 255 octets becomes several instances; an empty one is 2 octets.
  for (const [, v] of list) n += v.length === 0 ? 2 : v.length + 2 * Math.ceil(v.length / 255);
  return n;
}

/** Bytes `emitDhcpv4` writes for `r`: header, options, end, padding to 300. */
export function dhcpv4Len(r: Dhcpv4Repr): number {
  return Math.max(DHCPV4_MIN_LEN, DHCPV4_HEADER_LEN + optionsLen(optionList(r.options)) + 1);
}

function putField(buf: Uint8Array, off: number, size: number, s: string): void {
  buf.fill(0, off, off + size);
  const n = Math.min(s.length, size);
  for (let i = 0; i < n; i++) buf[off + i] = s.charCodeAt(i);
}

/**
 * Write a complete BOOTP payload for `r` at buf[off] (size it with `dhcpv4Len`). Returns the
 * bytes written, at least 300.
 */
export function emitDhcpv4(r: Dhcpv4Repr, buf: Uint8Array, off: number): number {
  buf[off] = r.op;
  buf[off + Dhcpv4Field.HTYPE] = r.htype;
  buf[off + Dhcpv4Field.HLEN] = r.hlen;
  buf[off + Dhcpv4Field.HOPS] = r.hops;
  writeU32(buf, off + Dhcpv4Field.XID, r.xid);
  writeU16(buf, off + Dhcpv4Field.SECS, r.secs);
  writeU16(buf, off + Dhcpv4Field.FLAGS, r.flags);
  writeU32(buf, off + Dhcpv4Field.CIADDR, r.ciaddr);
  writeU32(buf, off + Dhcpv4Field.YIADDR, r.yiaddr);
  writeU32(buf, off + Dhcpv4Field.SIADDR, r.siaddr);
  writeU32(buf, off + Dhcpv4Field.GIADDR, r.giaddr);
  buf.fill(0, off + Dhcpv4Field.CHADDR, off + Dhcpv4Field.CHADDR + DHCPV4_CHADDR_LEN);
  buf.set(r.chaddr.subarray(0, DHCPV4_CHADDR_LEN), off + Dhcpv4Field.CHADDR);
  putField(buf, off + Dhcpv4Field.SNAME, DHCPV4_SNAME_LEN, r.sname);
  putField(buf, off + Dhcpv4Field.FILE, DHCPV4_FILE_LEN, r.file);
  writeU32(buf, off + Dhcpv4Field.COOKIE, DHCPV4_MAGIC_COOKIE);
  let p = off + DHCPV4_HEADER_LEN;
  for (const [code, v] of optionList(r.options)) {
    let i = 0;
    do {
      const n = Math.min(255, v.length - i);
      buf[p] = code;
      buf[p + 1] = n;
      buf.set(v.subarray(i, i + n), p + 2);
      p += 2 + n;
      i += n;
    } while (i < v.length);
  }
  buf[p++] = Dhcpv4OptionCode.END;
  const end = Math.max(off + DHCPV4_MIN_LEN, p);
  buf.fill(0, p, end);
  return end - off;
}
