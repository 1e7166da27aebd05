/**
 * DNS messages (RFC 1035 §4), as a slirp-style forwarder and a tiny local resolver need them.
 *
 * Theory of operation:
 * - `DnsView` checks the 12-byte header once and exposes the id, flags and section counts by
 *   offset; a forwarder that only rewrites ids never parses further.
 * - `readDnsQuery` reads the id and the first question of a query without building a full repr;
 *   `emitDnsResponse` builds an answer to such a query (NXDOMAIN / SERVFAIL / REFUSED with no
 *   records, or A/AAAA/... answers), copying the question case-exactly (RFC 5452 §9 / 0x20
 *   randomisation rely on the echo) and compressing answer names against it.
 * - `parseDns` / `emitDns` convert whole messages to and from `DnsRepr`. Records of the simple
 *   types (A, AAAA, CNAME, PTR, NS, MX, TXT, SOA) are typed; every other type keeps its raw
 *   rdata (RFC 3597: unknown types are opaque and must not be compressed).
 * - Names are decoded with compression pointers (RFC 1035 §4.1.4) under three guards: a pointer
 *   must point below every byte of the name read so far (so no pointer can be reached twice and
 *   loops are impossible), at most `DNS_MAX_POINTERS` pointers per name, and at most 255 octets
 *   of wire name (§2.3.4). Extended label types (0x40/0x80, RFC 6891 §5) are rejected.
 * - Name text form: labels joined with '.', no trailing dot, root is ''. A '.' or '\' inside a
 *   label, and octets outside 0x21..0x7e, are written as master-file escapes (`\.`, `\\`,
 *   `\DDD`, RFC 1035 §5.1) so every wire name has exactly one text form and round-trips.
 *   Case is preserved; comparisons for compression are case-insensitive (RFC 4343).
 * - `DnsTcpReader` / `writeDnsTcpLength` handle the 2-byte length prefix of DNS over TCP
 *   (RFC 1035 §4.2.2, RFC 7766).
 *
 * Not done here: EDNS(0) semantics (an OPT record is kept as a raw record with name '' and the
 * UDP size in `class`), DNSSEC validation, name-to-IDN conversion, zone-file parsing.
 */
import { EMPTY, readU16, readU32, writeU16, writeU32 } from './addr.ts';

export const DnsField = { ID: 0, FLAGS: 2, QDCOUNT: 4, ANCOUNT: 6, NSCOUNT: 8, ARCOUNT: 10 } as const;
export const DNS_HEADER_LEN = 12;
export const DNS_PORT = 53;
/** Largest UDP message without EDNS(0) (RFC 1035 §4.2.1). */
export const DNS_UDP_MAX = 512;
/** Longest name on the wire, including the root label (RFC 1035 §2.3.4). */
export const DNS_MAX_NAME = 255;
export const DNS_MAX_LABEL = 63;
/** Pointer hops allowed per name; a real name needs at most one per label. */
export const DNS_MAX_POINTERS = 128;

/** Bits of the flags word (RFC 1035 §4.1.1, AD/CD from RFC 4035 §3.2). */
export const DnsFlag = {
  QR: 0x8000,
  AA: 0x0400,
  TC: 0x0200,
  RD: 0x0100,
  RA: 0x0080,
  Z: 0x0040,
  AD: 0x0020,
  CD: 0x0010,
} as const;

export const DnsOpcode = { QUERY: 0, IQUERY: 1, STATUS: 2, NOTIFY: 4, UPDATE: 5 } as const;

export const DnsRcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
} as const;

export const DnsType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  ANY: 255,
} as const;

export const DnsClass = { IN: 1, CH: 3, ANY: 255 } as const;

// ---- view ----------------------------------------------------------------------------------

/** Zero-copy view of a DNS message header. Reuse one per socket; `reset` per message. */
export class DnsView {
  bytes: Uint8Array = EMPTY;
  off = 0;
  len = 0;

  /** Point at bytes[off, off+len). False when shorter than the 12-byte header. */
  reset(bytes: Uint8Array, off: number, len: number): boolean {
    if (off < 0 || len < DNS_HEADER_LEN || off + len > bytes.length) return false;
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    return true;
  }

  get id(): number {
    return readU16(this.bytes, this.off + DnsField.ID);
  }
  set id(v: number) {
    writeU16(this.bytes, this.off + DnsField.ID, v);
  }
  get flags(): number {
    return readU16(this.bytes, this.off + DnsField.FLAGS);
  }
  set flags(v: number) {
    writeU16(this.bytes, this.off + DnsField.FLAGS, v);
  }
  get qr(): boolean {
    return (this.flags & DnsFlag.QR) !== 0;
  }
  get opcode(): number {
    return (this.flags >>> 11) & 0xf;
  }
  get aa(): boolean {
    return (this.flags & DnsFlag.AA) !== 0;
  }
  get tc(): boolean {
    return (this.flags & DnsFlag.TC) !== 0;
  }
  get rd(): boolean {
    return (this.flags & DnsFlag.RD) !== 0;
  }
  get ra(): boolean {
    return (this.flags & DnsFlag.RA) !== 0;
  }
  get rcode(): number {
    return this.flags & 0xf;
  }
  get qdcount(): number {
    return readU16(this.bytes, this.off + DnsField.QDCOUNT);
  }
  get ancount(): number {
    return readU16(this.bytes, this.off + DnsField.ANCOUNT);
  }
  get nscount(): number {
    return readU16(this.bytes, this.off + DnsField.NSCOUNT);
  }
  get arcount(): number {
    return readU16(this.bytes, this.off + DnsField.ARCOUNT);
  }
  /** Offset of the question section. */
  get payloadOffset(): number {
    return this.off + DNS_HEADER_LEN;
  }
  get payloadLen(): number {
    return this.len - DNS_HEADER_LEN;
  }
}

// ---- names ---------------------------------------------------------------------------------

/** A decoded name and the offset just after its wire form at the place it was read. */
export interface DnsNameResult {
  name: string;
  /** Offset after the name where it started: after the first pointer or the root label. */
  next: number;
}

function appendLabel(out: string, bytes: Uint8Array, p: number, n: number): string {
  let s = out.length === 0 ? '' : out + '.';
  for (let i = 0; i < n; i++) {
    const c = bytes[p + i]!;
    if (c === 0x2e || c === 0x5c) s += '\\' + String.fromCharCode(c);
    else if (c > 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += '\\' + (c < 10 ? '00' : c < 100 ? '0' : '') + c;
  }
  return s;
}

/**
 * Decode the name at `pos` in a message occupying bytes[base, end). Pointer targets are offsets
 * from `base`. With `allowPointers` false (NDP DNSSL, DHCPv6 lists: RFC 8106 §5.2, RFC 8415
 * §10) a pointer is malformed. Returns null on any malformation; never reads outside [base, end).
 */
export function decodeDnsName(
  bytes: Uint8Array,
  base: number,
  pos: number,
  end: number,
  allowPointers = true,
): DnsNameResult | null {
  if (end > bytes.length || pos < base || pos >= end) return null;
  let name = '';
  let wireLen = 0;
  let p = pos;
  let next = -1;
  // Lowest offset of the name read so far; a pointer must go strictly below it.
  let low = pos;
  let hops = 0;
  for (;;) {
    if (p >= end) return null;
    const b = bytes[p]!;
    if (b === 0) {
      wireLen += 1;
      if (wireLen > DNS_MAX_NAME) return null;
      if (next < 0) next = p + 1;
      return { name, next };
    }
    const kind = b & 0xc0;
    if (kind === 0xc0) {
      if (!allowPointers || p + 1 >= end) return null;
      if (++hops > DNS_MAX_POINTERS) return null;
      const target = base + (((b & 0x3f) << 8) | bytes[p + 1]!);
      if (target >= low) return null;
      if (next < 0) next = p + 2;
      low = target;
      p = target;
      continue;
    }
    if (kind !== 0) return null; // 0x40 / 0x80: extended label types, not supported
    if (p + 1 + b > end) return null;
    wireLen += 1 + b;
    if (wireLen + 1 > DNS_MAX_NAME) return null;
    name = appendLabel(name, bytes, p + 1, b);
    p += 1 + b;
  }
}

/**
 * Split a text name into label byte arrays, undoing `\.`, `\\` and `\DDD` escapes. A trailing
 * dot is accepted; '' and '.' are the root. Null when a label is empty or longer than 63
 * octets, an escape is bad, or the wire form would exceed 255 octets.
 */
export function dnsNameLabels(name: string): Uint8Array[] | null {
  const labels: Uint8Array[] = [];
  if (name === '' || name === '.') return labels;
  const cur: number[] = [];
  let total = 1;
  const n = name.length;
  const flush = (): boolean => {
    if (cur.length === 0 || cur.length > DNS_MAX_LABEL) return false;
    total += 1 + cur.length;
    if (total > DNS_MAX_NAME) return false;
    labels.push(Uint8Array.from(cur));
    cur.length = 0;
    return true;
  };
  let i = 0;
  while (i < n) {
    const ch = name.charCodeAt(i);
    if (ch === 0x2e) {
      // An empty label (leading dot, '..') is invalid; a single trailing dot is allowed.
      if (!flush()) return null;
      i++;
      continue;
    }
    if (ch === 0x5c) {
      if (i + 1 >= n) return null;
      const d0 = name.charCodeAt(i + 1);
      if (d0 >= 0x30 && d0 <= 0x39) {
        if (i + 3 >= n) return null;
        const d1 = name.charCodeAt(i + 2);
        const d2 = name.charCodeAt(i + 3);
        if (!(d1 >= 0x30 && d1 <= 0x39 && d2 >= 0x30 && d2 <= 0x39)) return null;
        const v = (d0 - 0x30) * 100 + (d1 - 0x30) * 10 + (d2 - 0x30);
        if (v > 255) return null;
        cur.push(v);
        i += 4;
      } else {
        if (d0 > 0xff) return null;
        cur.push(d0);
        i += 2;
      }
      continue;
    }
    if (ch > 0xff) return null;
    cur.push(ch);
    i++;
  }
  if (cur.length > 0 && !flush()) return null;
  return labels;
}

/** Wire length of a text name (uncompressed), or -1 when invalid. */
export function dnsNameWireLen(name: string): number {
  const labels = dnsNameLabels(name);
  if (labels === null) return -1;
  let n = 1;
  for (const l of labels) n += 1 + l.length;
  return n;
}

function lowerLabelKey(labels: Uint8Array[], from: number): string {
  let s = '';
  for (let k = from; k < labels.length; k++) {
    const l = labels[k]!;
    s += String.fromCharCode(l.length);
    for (let j = 0; j < l.length; j++) {
      const c = l[j]!;
      s += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c + 32 : c);
    }
  }
  return s;
}

/**
 * Write `name` at buf[pos]. With a `compress` map (suffix key → offset from `base`), a known
 * suffix is replaced by a pointer and the suffixes written here are remembered (only at offsets
 * a 14-bit pointer can reach). Returns the offset after the name, or -1 if the name is invalid
 * or does not fit in `buf` up to `limit`.
 */
export function encodeDnsName(
  name: string,
  buf: Uint8Array,
  pos: number,
  base = 0,
  compress?: Map<string, number>,
  limit = buf.length,
): number {
  const labels = dnsNameLabels(name);
  if (labels === null) return -1;
  return encodeDnsLabels(labels, buf, pos, base, compress, limit);
}

function encodeDnsLabels(
  labels: Uint8Array[],
  buf: Uint8Array,
  pos: number,
  base: number,
  compress: Map<string, number> | undefined,
  limit: number,
): number {
  let p = pos;
  for (let k = 0; k < labels.length; k++) {
    if (compress !== undefined) {
      const key = lowerLabelKey(labels, k);
      const at = compress.get(key);
      if (at !== undefined) {
        if (p + 2 > limit) return -1;
        buf[p] = 0xc0 | (at >>> 8);
        buf[p + 1] = at & 0xff;
        return p + 2;
      }
      const rel = p - base;
      if (rel < 0x4000) compress.set(key, rel);
    }
    const l = labels[k]!;
    if (p + 1 + l.length > limit) return -1;
    buf[p] = l.length;
    buf.set(l, p + 1);
    p += 1 + l.length;
  }
  if (p + 1 > limit) return -1;
  buf[p] = 0;
  return p + 1;
}

// ---- records -------------------------------------------------------------------------------

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

export type DnsRdata =
  | { kind: 'a'; addr: number }
  | { kind: 'aaaa'; addr: Uint8Array }
  | { kind: 'name'; name: string } // CNAME, PTR, NS
  | { kind: 'mx'; preference: number; exchange: string }
  | { kind: 'txt'; strings: string[] } // each string is latin1 (one char per octet)
  | {
      kind: 'soa';
      mname: string;
      rname: string;
      serial: number;
      refresh: number;
      retry: number;
      expire: number;
      minimum: number;
    }
  | { kind: 'raw'; data: Uint8Array };

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  rdata: DnsRdata;
}

export interface DnsRepr {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  ad: boolean;
  cd: boolean;
  rcode: number;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  authorities: DnsRecord[];
  additionals: DnsRecord[];
}

function latin1(bytes: Uint8Array, off: number, len: number): string {
  let s = '';
  for (let i = 0; i < len; i++) s += String.fromCharCode(bytes[off + i]!);
  return s;
}

/** Decode rdata at [p, p+rdlen) inside the message [base, end). Null when it does not fit the type. */
function parseRdata(bytes: Uint8Array, base: number, end: number, type: number, p: number, rdlen: number): DnsRdata | null {
  const rend = p + rdlen;
  switch (type) {
    case DnsType.A:
      if (rdlen !== 4) return null;
      return { kind: 'a', addr: readU32(bytes, p) };
    case DnsType.AAAA:
      if (rdlen !== 16) return null;
      return { kind: 'aaaa', addr: bytes.slice(p, p + 16) };
    case DnsType.CNAME:
    case DnsType.PTR:
    case DnsType.NS: {
      const r = decodeDnsName(bytes, base, p, end);
      if (r === null || r.next !== rend) return null;
      return { kind: 'name', name: r.name };
    }
    case DnsType.MX: {
      if (rdlen < 3) return null;
      const r = decodeDnsName(bytes, base, p + 2, end);
      if (r === null || r.next !== rend) return null;
      return { kind: 'mx', preference: readU16(bytes, p), exchange: r.name };
    }
    case DnsType.TXT: {
      const strings: string[] = [];
      let q = p;
      while (q < rend) {
        const n = bytes[q]!;
        if (q + 1 + n > rend) return null;
        strings.push(latin1(bytes, q + 1, n));
        q += 1 + n;
      }
      return { kind: 'txt', strings };
    }
    case DnsType.SOA: {
      const m = decodeDnsName(bytes, base, p, end);
      if (m === null) return null;
      const r = decodeDnsName(bytes, base, m.next, end);
      if (r === null || r.next + 20 !== rend) return null;
      const q = r.next;
      return {
        kind: 'soa',
        mname: m.name,
        rname: r.name,
        serial: readU32(bytes, q),
        refresh: readU32(bytes, q + 4),
        retry: readU32(bytes, q + 8),
        expire: readU32(bytes, q + 12),
        minimum: readU32(bytes, q + 16),
      };
    }
    default:
      return { kind: 'raw', data: bytes.slice(p, rend) };
  }
}

function parseRecords(bytes: Uint8Array, base: number, end: number, pos: number, count: number, out: DnsRecord[]): number {
  let p = pos;
  for (let i = 0; i < count; i++) {
    const n = decodeDnsName(bytes, base, p, end);
    if (n === null || n.next + 10 > end) return -1;
    p = n.next;
    const type = readU16(bytes, p);
    const cls = readU16(bytes, p + 2);
    const ttl = readU32(bytes, p + 4);
    const rdlen = readU16(bytes, p + 8);
    p += 10;
    if (p + rdlen > end) return -1;
    const rdata = parseRdata(bytes, base, end, type, p, rdlen);
    if (rdata === null) return -1;
    out.push({ name: n.name, type, class: cls, ttl, rdata });
    p += rdlen;
  }
  return p;
}

/**
 * Parse a whole message. Null when any section is malformed or runs past the end. Bytes after
 * the last record are ignored (some middleboxes pad).
 */
export function parseDns(v: DnsView): DnsRepr | null {
  const bytes = v.bytes;
  const base = v.off;
  const end = v.off + v.len;
  const flags = v.flags;
  const questions: DnsQuestion[] = [];
  let p = base + DNS_HEADER_LEN;
  const qd = v.qdcount;
  for (let i = 0; i < qd; i++) {
    const n = decodeDnsName(bytes, base, p, end);
    if (n === null || n.next + 4 > end) return null;
    p = n.next;
    questions.push({ name: n.name, type: readU16(bytes, p), class: readU16(bytes, p + 2) });
    p += 4;
  }
  const answers: DnsRecord[] = [];
  const authorities: DnsRecord[] = [];
  const additionals: DnsRecord[] = [];
  p = parseRecords(bytes, base, end, p, v.ancount, answers);
  if (p < 0) return null;
  p = parseRecords(bytes, base, end, p, v.nscount, authorities);
  if (p < 0) return null;
  p = parseRecords(bytes, base, end, p, v.arcount, additionals);
  if (p < 0) return null;
  return {
    id: v.id,
    qr: (flags & DnsFlag.QR) !== 0,
    opcode: (flags >>> 11) & 0xf,
    aa: (flags & DnsFlag.AA) !== 0,
    tc: (flags & DnsFlag.TC) !== 0,
    rd: (flags & DnsFlag.RD) !== 0,
    ra: (flags & DnsFlag.RA) !== 0,
    ad: (flags & DnsFlag.AD) !== 0,
    cd: (flags & DnsFlag.CD) !== 0,
    rcode: flags & 0xf,
    questions,
    answers,
    authorities,
    additionals,
  };
}

function reprFlags(r: DnsRepr): number {
  return (
    (r.qr ? DnsFlag.QR : 0) |
    ((r.opcode & 0xf) << 11) |
    (r.aa ? DnsFlag.AA : 0) |
    (r.tc ? DnsFlag.TC : 0) |
    (r.rd ? DnsFlag.RD : 0) |
    (r.ra ? DnsFlag.RA : 0) |
    (r.ad ? DnsFlag.AD : 0) |
    (r.cd ? DnsFlag.CD : 0) |
    (r.rcode & 0xf)
  );
}

/** Write one record; returns the offset after it or -1. */
function emitRecord(
  rec: DnsRecord,
  buf: Uint8Array,
  pos: number,
  base: number,
  compress: Map<string, number> | undefined,
  limit: number,
): number {
  let p = encodeDnsName(rec.name, buf, pos, base, compress, limit);
  if (p < 0 || p + 10 > limit) return -1;
  writeU16(buf, p, rec.type);
  writeU16(buf, p + 2, rec.class);
  writeU32(buf, p + 4, rec.ttl);
  const lenAt = p + 8;
  p += 10;
  const start = p;
  const d = rec.rdata;
  switch (d.kind) {
    case 'a':
      if (p + 4 > limit) return -1;
      writeU32(buf, p, d.addr);
      p += 4;
      break;
    case 'aaaa':
      if (p + 16 > limit || d.addr.length !== 16) return -1;
      buf.set(d.addr, p);
      p += 16;
      break;
    case 'name':
      p = encodeDnsName(d.name, buf, p, base, compress, limit);
      break;
    case 'mx':
      if (p + 2 > limit) return -1;
      writeU16(buf, p, d.preference);
      p = encodeDnsName(d.exchange, buf, p + 2, base, compress, limit);
      break;
    case 'txt':
      for (const s of d.strings) {
        if (s.length > 255 || p + 1 + s.length > limit) return -1;
        buf[p] = s.length;
        for (let i = 0; i < s.length; i++) buf[p + 1 + i] = s.charCodeAt(i);
        p += 1 + s.length;
      }
      break;
    case 'soa':
      p = encodeDnsName(d.mname, buf, p, base, compress, limit);
      if (p < 0) return -1;
      p = encodeDnsName(d.rname, buf, p, base, compress, limit);
      if (p < 0 || p + 20 > limit) return -1;
      writeU32(buf, p, d.serial);
      writeU32(buf, p + 4, d.refresh);
      writeU32(buf, p + 8, d.retry);
      writeU32(buf, p + 12, d.expire);
      writeU32(buf, p + 16, d.minimum);
      p += 20;
      break;
    case 'raw':
      if (p + d.data.length > limit) return -1;
      buf.set(d.data, p);
      p += d.data.length;
      break;
  }
  if (p < 0 || p - start > 0xffff) return -1;
  writeU16(buf, lenAt, p - start);
  return p;
}

export interface DnsEmitOptions {
  /** Compress names (RFC 1035 §4.1.4). Default true. */
  compress?: boolean;
  /** Do not write past off+maxLen (e.g. 512 for plain UDP). Default: the rest of `buf`. */
  maxLen?: number;
}

/**
 * Write a whole message at buf[off]. Returns the bytes written, or -1 when a name is invalid,
 * a count exceeds 65535 or the message does not fit in `maxLen`.
 */
export function emitDns(r: DnsRepr, buf: Uint8Array, off: number, opts: DnsEmitOptions = {}): number {
  const limit = Math.min(buf.length, off + (opts.maxLen ?? buf.length - off));
  if (off + DNS_HEADER_LEN > limit) return -1;
  if (r.questions.length > 0xffff || r.answers.length > 0xffff || r.authorities.length > 0xffff || r.additionals.length > 0xffff) {
    return -1;
  }
  const compress = opts.compress === false ? undefined : new Map<string, number>();
  writeU16(buf, off, r.id);
  writeU16(buf, off + 2, reprFlags(r));
  writeU16(buf, off + 4, r.questions.length);
  writeU16(buf, off + 6, r.answers.length);
  writeU16(buf, off + 8, r.authorities.length);
  writeU16(buf, off + 10, r.additionals.length);
  let p = off + DNS_HEADER_LEN;
  for (const q of r.questions) {
    p = encodeDnsName(q.name, buf, p, off, compress, limit);
    if (p < 0 || p + 4 > limit) return -1;
    writeU16(buf, p, q.type);
    writeU16(buf, p + 2, q.class);
    p += 4;
  }
  for (const sec of [r.answers, r.authorities, r.additionals]) {
    for (const rec of sec) {
      p = emitRecord(rec, buf, p, off, compress, limit);
      if (p < 0) return -1;
    }
  }
  return p - off;
}

// ---- query fast path and responses ---------------------------------------------------------

export interface DnsQueryInfo {
  id: number;
  flags: number;
  opcode: number;
  qdcount: number;
  /** First question; name '' with type/class 0 when qdcount is 0. */
  name: string;
  type: number;
  class: number;
  /** Absolute offset just after the first question. */
  questionEnd: number;
}

/** Read the header and first question of a message at bytes[off, off+len). Null when malformed. */
export function readDnsQuery(bytes: Uint8Array, off: number, len: number): DnsQueryInfo | null {
  if (off < 0 || len < DNS_HEADER_LEN || off + len > bytes.length) return null;
  const flags = readU16(bytes, off + 2);
  const qdcount = readU16(bytes, off + 4);
  const info: DnsQueryInfo = {
    id: readU16(bytes, off),
    flags,
    opcode: (flags >>> 11) & 0xf,
    qdcount,
    name: '',
    type: 0,
    class: 0,
    questionEnd: off + DNS_HEADER_LEN,
  };
  if (qdcount === 0) return info;
  const n = decodeDnsName(bytes, off, off + DNS_HEADER_LEN, off + len);
  if (n === null || n.next + 4 > off + len) return null;
  info.name = n.name;
  info.type = readU16(bytes, n.next);
  info.class = readU16(bytes, n.next + 2);
  info.questionEnd = n.next + 4;
  return info;
}

export interface DnsResponseOptions {
  /** Authoritative answer bit. Default false. */
  aa?: boolean;
  /** Recursion available bit. Default true (we answer as a recursive resolver would). */
  ra?: boolean;
  /** Size limit; answers that do not fit are dropped and TC set (RFC 2181 §9). Default 512. */
  maxLen?: number;
}

/**
 * Build the response to the query at query[qOff, qOff+qLen) into buf[off]: same id, opcode, RD
 * and CD, QR set, the given rcode, the first question echoed with its original case, and
 * `answers` (names equal to the question become pointers to it). A query whose question cannot
 * be read gets FORMERR with no question. Returns the bytes written, or -1 when the query is
 * shorter than a header or `buf` cannot hold even the header and question.
 */
export function emitDnsResponse(
  query: Uint8Array,
  qOff: number,
  qLen: number,
  rcode: number,
  answers: readonly DnsRecord[],
  buf: Uint8Array,
  off: number,
  opts: DnsResponseOptions = {},
): number {
  if (qOff < 0 || qLen < DNS_HEADER_LEN || qOff + qLen > query.length) return -1;
  const limit = Math.min(buf.length, off + (opts.maxLen ?? DNS_UDP_MAX));
  if (off + DNS_HEADER_LEN > limit) return -1;
  const q = readDnsQuery(query, qOff, qLen);
  const qflags = readU16(query, qOff + 2);
  const flagsBase =
    DnsFlag.QR |
    (qflags & (0xf << 11)) |
    (opts.aa === true ? DnsFlag.AA : 0) |
    (qflags & DnsFlag.RD) |
    (opts.ra === false ? 0 : DnsFlag.RA) |
    (qflags & DnsFlag.CD);
  writeU16(buf, off, readU16(query, qOff));
  writeU16(buf, off + 6, 0);
  writeU16(buf, off + 8, 0);
  writeU16(buf, off + 10, 0);
  if (q === null || q.qdcount === 0) {
    writeU16(buf, off + 2, flagsBase | DnsRcode.FORMERR);
    writeU16(buf, off + 4, 0);
    return DNS_HEADER_LEN;
  }
  const compress = new Map<string, number>();
  let p = encodeDnsName(q.name, buf, off + DNS_HEADER_LEN, off, compress, limit);
  if (p < 0 || p + 4 > limit) return -1;
  writeU16(buf, p, q.type);
  writeU16(buf, p + 2, q.class);
  p += 4;
  const questionEnd = p;
  let count = 0;
  let tc = 0;
  for (const rec of answers) {
    const np = emitRecord(rec, buf, p, off, compress, limit);
    if (np < 0) {
      // Partial answers mislead resolvers: drop them all and let the client retry over TCP.
      p = questionEnd;
      count = 0;
      tc = DnsFlag.TC;
      break;
    }
    p = np;
    count++;
  }
  writeU16(buf, off + 2, flagsBase | tc | (rcode & 0xf));
  writeU16(buf, off + 4, 1);
  writeU16(buf, off + 6, count);
  return p - off;
}

// ---- TCP framing ---------------------------------------------------------------------------

/** Write the 2-byte big-endian length prefix of DNS over TCP (RFC 1035 §4.2.2). */
export function writeDnsTcpLength(buf: Uint8Array, off: number, msgLen: number): void {
  writeU16(buf, off, msgLen);
}

/** Read the 2-byte length prefix at bytes[off]. */
export function readDnsTcpLength(bytes: Uint8Array, off: number): number {
  return readU16(bytes, off);
}

/**
 * Reassembles DNS messages from a TCP byte stream. `push` appends a chunk (copied); `next`
 * returns one complete message (a fresh array the caller may keep) or null. Memory is bounded
 * by one maximal message (2 + 65535 octets) plus the largest pushed chunk.
 */
export class DnsTcpReader {
  private buf: Uint8Array = new Uint8Array(1024);
  private start = 0;
  private end = 0;

  push(chunk: Uint8Array): void {
    if (this.start > 0 && this.end + chunk.length > this.buf.length) {
      this.buf.copyWithin(0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
    }
    if (this.end + chunk.length > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < this.end + chunk.length) cap *= 2;
      const nb = new Uint8Array(cap);
      nb.set(this.buf.subarray(0, this.end));
      this.buf = nb;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }

  next(): Uint8Array | null {
    if (this.end - this.start < 2) return null;
    const n = readU16(this.buf, this.start);
    if (this.end - this.start < 2 + n) return null;
    const msg = this.buf.slice(this.start + 2, this.start + 2 + n);
    this.start += 2 + n;
    if (this.start === this.end) this.start = this.end = 0;
    return msg;
  }

  /** Bytes buffered but not yet returned. */
  get pending(): number {
    return this.end - this.start;
  }
}
