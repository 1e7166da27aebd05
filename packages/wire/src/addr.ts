/**
 * Address and byte helpers shared by every wire file.
 *
 * Representations (fixed for the whole package): IPv4 addresses are unsigned 32-bit numbers
 * (always normalised with `>>> 0`), IPv6 addresses are 16-byte Uint8Arrays, MAC addresses are
 * 6-byte Uint8Arrays. Big-endian accessors read and write by hand so no DataView or subarray is
 * created per packet.
 *
 * Text forms: dotted quad for IPv4 (leading zeros rejected, as inet_pton does, because "010" is
 * octal to some parsers and decimal to others); RFC 5952 canonical text for IPv6 output, RFC 4291
 * §2.2 forms (including `::` and an embedded dotted quad) for input. Zone ids (`%eth0`) and
 * brackets are not accepted here: strip them first.
 */

/** A shared zero-length array: the initial value of every view's `bytes`. Never write to it. */
export const EMPTY: Uint8Array = new Uint8Array(0);

/** Big-endian 16-bit read. */
export function readU16(bytes: Uint8Array, off: number): number {
  return (bytes[off]! << 8) | bytes[off + 1]!;
}

/** Big-endian 32-bit read, unsigned. */
export function readU32(bytes: Uint8Array, off: number): number {
  return ((bytes[off]! << 24) | (bytes[off + 1]! << 16) | (bytes[off + 2]! << 8) | bytes[off + 3]!) >>> 0;
}

/** Big-endian 16-bit write (the value is truncated to 16 bits). */
export function writeU16(bytes: Uint8Array, off: number, v: number): void {
  bytes[off] = v >>> 8;
  bytes[off + 1] = v;
}

/** Big-endian 32-bit write (the value is truncated to 32 bits). */
export function writeU32(bytes: Uint8Array, off: number, v: number): void {
  bytes[off] = v >>> 24;
  bytes[off + 1] = v >>> 16;
  bytes[off + 2] = v >>> 8;
  bytes[off + 3] = v;
}

/** True when `a[aOff, aOff+len)` equals `b[bOff, bOff+len)`. */
export function bytesEqual(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

// ---- IPv4 ----------------------------------------------------------------------------------

export function ipv4ToString(n: number): string {
  return `${(n >>> 24) & 0xff}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

/** Strict dotted quad (`a.b.c.d`, each 0–255, no leading zeros, no shorthand); null otherwise. */
export function parseIpv4Addr(s: string): number | null {
  let n = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0x2e; // a virtual trailing '.' ends the last part
    if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && part === 0) return null; // leading zero
      part = part * 10 + (c - 0x30);
      if (++digits > 3 || part > 255) return null;
    } else if (c === 0x2e) {
      if (digits === 0 || ++parts > 4) return null;
      n = n * 256 + part;
      part = 0;
      digits = 0;
    } else {
      return null;
    }
  }
  return parts === 4 ? n >>> 0 : null;
}

/** The netmask for a prefix length 0–32 (`24` → 0xffffff00). */
export function ipv4PrefixMask(prefixLen: number): number {
  return prefixLen <= 0 ? 0 : prefixLen >= 32 ? 0xffffffff : (0xffffffff << (32 - prefixLen)) >>> 0;
}

/** True when `addr` lies in `net/prefixLen` (host bits of `net` are ignored). */
export function ipv4InSubnet(addr: number, net: number, prefixLen: number): boolean {
  const m = ipv4PrefixMask(prefixLen);
  return ((addr & m) >>> 0) === ((net & m) >>> 0);
}

// ---- IPv6 ----------------------------------------------------------------------------------

/** RFC 5952 canonical text: lower case, no leading zeros, the longest run (≥ 2) of zero groups as
 * `::` (the first one on a tie), and dotted-quad tail for IPv4-mapped addresses (§5). */
export function ipv6ToString(b: Uint8Array, off = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[off + 2 * i]! << 8) | b[off + 2 * i + 1]!);
  const mapped = g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff;
  const n = mapped ? 6 : 8;
  let bestStart = -1;
  let bestLen = 1; // a single zero group is never compressed (§4.2.2)
  for (let i = 0; i < n; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < n && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  let out = '';
  for (let i = 0; i < n; i++) {
    if (i === bestStart) {
      out += i === 0 ? '::' : ':';
      i += bestLen - 1;
      continue;
    }
    out += g[i]!.toString(16);
    if (i < n - 1) out += ':';
  }
  if (mapped) {
    if (!out.endsWith(':')) out += ':';
    out += `${b[off + 12]}.${b[off + 13]}.${b[off + 14]}.${b[off + 15]}`;
  }
  return out;
}

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  c |= 0x20;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/** Parse RFC 4291 §2.2 text (`2001:db8::1`, `::`, `::ffff:1.2.3.4`); null when malformed. */
export function parseIpv6Addr(s: string): Uint8Array | null {
  if (s.length < 2 || s.length > 45) return null;
  const head: number[] = [];
  const tail: number[] = [];
  let cur = head;
  let gap = false;
  let i = 0;
  if (s.startsWith('::')) {
    gap = true;
    cur = tail;
    i = 2;
    if (i === s.length) return new Uint8Array(16);
  } else if (s.charCodeAt(0) === 0x3a) {
    return null;
  }
  while (i < s.length) {
    // An embedded dotted quad may end the address (RFC 4291 §2.2 form 3).
    let j = i;
    let v = 0;
    let isDot = false;
    while (j < s.length && s.charCodeAt(j) !== 0x3a) {
      if (s.charCodeAt(j) === 0x2e) isDot = true;
      j++;
    }
    if (isDot) {
      if (j !== s.length) return null;
      const v4 = parseIpv4Addr(s.slice(i, j));
      if (v4 === null) return null;
      cur.push(v4 >>> 16, v4 & 0xffff);
      i = j;
      break;
    }
    if (j === i || j - i > 4) return null;
    for (let k = i; k < j; k++) {
      const h = hexVal(s.charCodeAt(k));
      if (h < 0) return null;
      v = (v << 4) | h;
    }
    cur.push(v);
    if (j === s.length) {
      i = j;
      break;
    }
    // s[j] is ':'
    if (s.charCodeAt(j + 1) === 0x3a) {
      if (gap) return null; // a second '::'
      gap = true;
      cur = tail;
      i = j + 2;
      if (i === s.length) break;
    } else {
      i = j + 1;
      if (i === s.length) return null; // trailing single ':'
    }
  }
  const total = head.length + tail.length;
  if (gap ? total > 7 : total !== 8) return null;
  const out = new Uint8Array(16);
  for (let k = 0; k < head.length; k++) {
    out[2 * k] = head[k]! >>> 8;
    out[2 * k + 1] = head[k]!;
  }
  const base = 8 - tail.length;
  for (let k = 0; k < tail.length; k++) {
    out[2 * (base + k)] = tail[k]! >>> 8;
    out[2 * (base + k) + 1] = tail[k]!;
  }
  return out;
}

/** True when two IPv6 addresses (at the given offsets) are equal. */
export function ipv6Equal(a: Uint8Array, b: Uint8Array, aOff = 0, bOff = 0): boolean {
  return bytesEqual(a, aOff, b, bOff, 16);
}

// ---- MAC -----------------------------------------------------------------------------------

/** `aa:bb:cc:dd:ee:ff`, lower case. */
export function macToString(b: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) {
    const x = b[off + i]!;
    s += (x < 16 ? '0' : '') + x.toString(16) + (i < 5 ? ':' : '');
  }
  return s;
}

/** Six two-digit hex groups separated by ':' or '-' (one separator style per string); null otherwise. */
export function parseMac(s: string): Uint8Array | null {
  if (s.length !== 17) return null;
  const sep = s.charCodeAt(2);
  if (sep !== 0x3a && sep !== 0x2d) return null;
  const out = new Uint8Array(6);
  for (let i = 0; i < 6; i++) {
    const hi = hexVal(s.charCodeAt(3 * i));
    const lo = hexVal(s.charCodeAt(3 * i + 1));
    if (hi < 0 || lo < 0) return null;
    if (i < 5 && s.charCodeAt(3 * i + 2) !== sep) return null;
    out[i] = (hi << 4) | lo;
  }
  return out;
}

/** True when two MAC addresses (at the given offsets) are equal. */
export function macEqual(a: Uint8Array, b: Uint8Array, aOff = 0, bOff = 0): boolean {
  return bytesEqual(a, aOff, b, bOff, 6);
}
