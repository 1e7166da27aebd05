/**
 * Hand-built test frames (Ethernet, ARP, IPv4, ICMP echo, TCP) and the checks the e2e tests
 * apply to the kernel's answers. Test code only: allocation per frame is fine here.
 */

export function macBytes(mac: string): Uint8Array {
  return Uint8Array.from(mac.split(':'), (p) => parseInt(p, 16));
}

export function ip4Bytes(a: string): Uint8Array {
  return Uint8Array.from(a.split('.'), (p) => Number(p));
}

/** RFC 1071 one's-complement sum over `b[off, off+len)` plus `init`, folded, not inverted. */
export function sum16(b: Uint8Array, off: number, len: number, init = 0): number {
  let s = init;
  for (let i = 0; i + 1 < len; i += 2) s += (b[off + i]! << 8) | b[off + i + 1]!;
  if (len & 1) s += b[off + len - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

export function checksum(b: Uint8Array, off: number, len: number, init = 0): number {
  return ~sum16(b, off, len, init) & 0xffff;
}

function put16(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 8;
  b[off + 1] = v & 0xff;
}

export function get16(b: Uint8Array, off: number): number {
  return (b[off]! << 8) | b[off + 1]!;
}

export function get32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

function put32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = (v >>> 16) & 0xff;
  b[off + 2] = (v >>> 8) & 0xff;
  b[off + 3] = v & 0xff;
}

export function ethernet(dst: string, src: string, type: number, payload: Uint8Array, hdr = 0): Uint8Array {
  const f = new Uint8Array(hdr + 14 + payload.length);
  f.set(macBytes(dst), hdr);
  f.set(macBytes(src), hdr + 6);
  put16(f, hdr + 12, type);
  f.set(payload, hdr + 14);
  return f;
}

/** ARP (RFC 826) over Ethernet/IPv4: op 1 request, 2 reply. */
export function arp(op: 1 | 2, sha: string, spa: string, tha: string, tpa: string): Uint8Array {
  const p = new Uint8Array(28);
  put16(p, 0, 1);
  put16(p, 2, 0x0800);
  p[4] = 6;
  p[5] = 4;
  put16(p, 6, op);
  p.set(macBytes(sha), 8);
  p.set(ip4Bytes(spa), 14);
  p.set(macBytes(tha), 18);
  p.set(ip4Bytes(tpa), 24);
  return p;
}

export function ipv4(src: string, dst: string, proto: number, payload: Uint8Array, id = 1): Uint8Array {
  const p = new Uint8Array(20 + payload.length);
  p[0] = 0x45;
  put16(p, 2, p.length);
  put16(p, 4, id);
  put16(p, 6, 0x4000); // DF
  p[8] = 64;
  p[9] = proto;
  p.set(ip4Bytes(src), 12);
  p.set(ip4Bytes(dst), 16);
  put16(p, 10, checksum(p, 0, 20));
  p.set(payload, 20);
  return p;
}

export function icmpEcho(type: 8 | 0, id: number, seq: number, data: Uint8Array): Uint8Array {
  const p = new Uint8Array(8 + data.length);
  p[0] = type;
  put16(p, 4, id);
  put16(p, 6, seq);
  p.set(data, 8);
  put16(p, 2, checksum(p, 0, p.length));
  return p;
}

export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

/** A TCP segment with a correct checksum (RFC 793 pseudo-header). `opts` must be 4-byte padded. */
export function tcp(src: string, dst: string, sport: number, dport: number, seq: number, ack: number, flags: number, window: number, opts: Uint8Array = new Uint8Array(0), data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const hl = 20 + opts.length;
  const p = new Uint8Array(hl + data.length);
  put16(p, 0, sport);
  put16(p, 2, dport);
  put32(p, 4, seq >>> 0);
  put32(p, 8, ack >>> 0);
  p[12] = (hl / 4) << 4;
  p[13] = flags;
  put16(p, 14, window);
  p.set(opts, 20);
  p.set(data, hl);
  const pseudo = new Uint8Array(12);
  pseudo.set(ip4Bytes(src), 0);
  pseudo.set(ip4Bytes(dst), 4);
  pseudo[9] = 6;
  put16(pseudo, 10, p.length);
  put16(p, 16, checksum(p, 0, p.length, sum16(pseudo, 0, 12)));
  return p;
}

/** True when the IPv4 header at `off` has a valid checksum. */
export function ipv4HeaderOk(f: Uint8Array, off: number): boolean {
  const ihl = (f[off]! & 0x0f) * 4;
  return sum16(f, off, ihl) === 0xffff;
}

/** A random-ish but reproducible payload. */
export function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < len; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}
