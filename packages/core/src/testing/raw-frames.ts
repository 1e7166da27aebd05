/**
 * Hand-built frames for the hostile-guest tests of slirp and uip (cve-classes.test.ts,
 * hostile.test.ts), shared here because backends do not import each other: each builder writes every header field itself, so a test can make any one of them lie (IHL, total
 * length, UDP length, TCP data offset, option lengths) while the checksums stay right — a frame
 * must be refused for the lie, not for a bad checksum. Allocates freely: test code only.
 */
import { checksum, ipv4PseudoSum, ipv6PseudoSum } from '@guestnet/wire';

export const ETH_IPV4 = 0x0800;
export const ETH_ARP = 0x0806;
export const ETH_IPV6 = 0x86dd;

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const put16 = (b: Uint8Array, o: number, v: number): void => {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
};
const put32 = (b: Uint8Array, o: number, v: number): void => {
  put16(b, o, v >>> 16);
  put16(b, o + 2, v & 0xffff);
};

export function ethFrame(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(dst.subarray(0, 6), 0);
  f.set(src.subarray(0, 6), 6);
  put16(f, 12, type);
  f.set(payload, 14);
  return f;
}

export interface Ip4Fields {
  src: number;
  dst: number;
  proto: number;
  id?: number;
  ttl?: number;
  /** More-fragments flag. */
  mf?: boolean;
  /** Fragment offset in bytes (a multiple of 8 unless a test lies). */
  fragOff?: number;
  /** IHL in 32-bit words (default: 5 + options). A lie leaves the header bytes as they are. */
  ihl?: number;
  /** Total-length field (default: the real length). */
  totalLen?: number;
  options?: Uint8Array;
}

/** An IPv4 packet: header (checksum over the bytes the IHL claims, when they exist) + payload. */
export function ipv4Packet(f: Ip4Fields, payload: Uint8Array): Uint8Array {
  const opts = f.options ?? new Uint8Array(0);
  const hl = 20 + opts.length;
  const p = new Uint8Array(hl + payload.length);
  const ihl = f.ihl ?? hl >>> 2;
  p[0] = 0x40 | (ihl & 15);
  put16(p, 2, f.totalLen ?? p.length);
  put16(p, 4, f.id ?? 0);
  put16(p, 6, (f.mf ? 0x2000 : 0) | (((f.fragOff ?? 0) >>> 3) & 0x1fff));
  p[8] = f.ttl ?? 64;
  p[9] = f.proto;
  put32(p, 12, f.src);
  put32(p, 16, f.dst);
  p.set(opts, 20);
  p.set(payload, hl);
  const cl = Math.min(Math.max(ihl << 2, 20), p.length);
  put16(p, 10, checksum(p, 0, cl));
  return p;
}

/** A UDP datagram over IPv4. `lengthField` lies about the length; the checksum covers what it claims (or everything). */
export function udp4(src: number, dst: number, sport: number, dport: number, data: Uint8Array, lengthField?: number): Uint8Array {
  const u = new Uint8Array(8 + data.length);
  put16(u, 0, sport);
  put16(u, 2, dport);
  const l = lengthField ?? u.length;
  put16(u, 4, l);
  u.set(data, 8);
  const covered = Math.min(l, u.length);
  const c = checksum(u, 0, covered, ipv4PseudoSum(src, dst, 17, l));
  put16(u, 6, c === 0 ? 0xffff : c);
  return u;
}

export interface TcpFields {
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  flags: number;
  window?: number;
  urgent?: number;
  /** Raw option bytes (padded to 4 by the caller when it wants a consistent data offset). */
  options?: Uint8Array;
  /** Data offset in words (default: 5 + options/4). */
  dataOffset?: number;
}

function tcpBytes(t: TcpFields, data: Uint8Array): Uint8Array {
  const opts = t.options ?? new Uint8Array(0);
  const hl = 20 + opts.length;
  const s = new Uint8Array(hl + data.length);
  put16(s, 0, t.sport);
  put16(s, 2, t.dport);
  put32(s, 4, t.seq ?? 1000);
  put32(s, 8, t.ack ?? 0);
  s[12] = ((t.dataOffset ?? Math.ceil(hl / 4)) & 15) << 4;
  s[13] = t.flags & 0xff;
  put16(s, 14, t.window ?? 65535);
  put16(s, 18, t.urgent ?? 0);
  s.set(opts, 20);
  s.set(data, hl);
  return s;
}

/** A TCP segment over IPv4 with a correct checksum over the whole segment. */
export function tcp4(src: number, dst: number, t: TcpFields, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const s = tcpBytes(t, data);
  put16(s, 16, checksum(s, 0, s.length, ipv4PseudoSum(src, dst, 6, s.length)));
  return s;
}

/** An ICMPv4 message with its checksum. */
export function icmp4(type: number, code: number, rest: Uint8Array): Uint8Array {
  const m = new Uint8Array(4 + rest.length);
  m[0] = type;
  m[1] = code;
  m.set(rest, 4);
  put16(m, 2, checksum(m, 0, m.length));
  return m;
}

/** An ARP request/reply body (28 bytes). */
export function arpBody(op: 1 | 2, senderMac: Uint8Array, senderIp: number, targetMac: Uint8Array, targetIp: number): Uint8Array {
  const a = new Uint8Array(28);
  put16(a, 0, 1);
  put16(a, 2, 0x0800);
  a[4] = 6;
  a[5] = 4;
  put16(a, 6, op);
  a.set(senderMac.subarray(0, 6), 8);
  put32(a, 14, senderIp);
  a.set(targetMac.subarray(0, 6), 18);
  put32(a, 24, targetIp);
  return a;
}

/** An IPv6 packet; `payloadLen` lies about the payload length. */
export function ipv6Packet(src: Uint8Array, dst: Uint8Array, nextHeader: number, payload: Uint8Array, opts: { payloadLen?: number; hopLimit?: number } = {}): Uint8Array {
  const p = new Uint8Array(40 + payload.length);
  p[0] = 0x60;
  put16(p, 4, opts.payloadLen ?? payload.length);
  p[6] = nextHeader;
  p[7] = opts.hopLimit ?? 64;
  p.set(src, 8);
  p.set(dst, 24);
  p.set(payload, 40);
  return p;
}

/** An ICMPv6 message with its checksum (pseudo header from src/dst). */
export function icmp6(src: Uint8Array, dst: Uint8Array, type: number, code: number, rest: Uint8Array): Uint8Array {
  const m = new Uint8Array(4 + rest.length);
  m[0] = type;
  m[1] = code;
  m.set(rest, 4);
  put16(m, 2, checksum(m, 0, m.length, ipv6PseudoSum(src, dst, 58, m.length)));
  return m;
}

/** A UDP datagram over IPv6 (lengthField may lie; checksum over what exists). */
export function udp6(src: Uint8Array, dst: Uint8Array, sport: number, dport: number, data: Uint8Array, lengthField?: number): Uint8Array {
  const u = new Uint8Array(8 + data.length);
  put16(u, 0, sport);
  put16(u, 2, dport);
  const l = lengthField ?? u.length;
  put16(u, 4, l);
  u.set(data, 8);
  const c = checksum(u, 0, Math.min(l, u.length), ipv6PseudoSum(src, dst, 17, l));
  put16(u, 6, c === 0 ? 0xffff : c);
  return u;
}

/** An IPv6 Fragment extension header (8 bytes). */
export function fragHeader6(nextHeader: number, fragOff: number, more: boolean, id: number): Uint8Array {
  const h = new Uint8Array(8);
  h[0] = nextHeader;
  put16(h, 2, (fragOff & 0xfff8) | (more ? 1 : 0));
  put32(h, 4, id);
  return h;
}

/** A DNS query message for `name` (type A). */
export function dnsQueryBytes(id: number, name: string): Uint8Array {
  const q: number[] = [id >>> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
  for (const l of name.split('.').filter(Boolean)) q.push(l.length, ...Buffer.from(l, 'ascii'));
  q.push(0, 0, 1, 0, 1);
  return Uint8Array.from(q);
}
