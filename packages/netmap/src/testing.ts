/**
 * Test helpers shared by the netmap tests and worker scripts (not exported from the package
 * entry): Ethernet frames that carry a sequence number and a checksum, and a port that records
 * what it receives.
 */
import type { NetBackend } from '@guestnet/core';

/** 02:00:00:00:00:nn */
export function mac(n: number): Uint8Array {
  return Uint8Array.of(2, 0, 0, 0, (n >> 8) & 0xff, n & 0xff);
}
export const BROADCAST = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

/**
 * An Ethernet frame `dst ← src` of `len` bytes (≥ 26): ethertype 0x88b5 (local experimental),
 * then u32 sequence, u32 FNV-1a of the rest, then a payload derived from the sequence.
 * `hdr` bytes of zeroed virtio-net header go in front.
 */
export function testFrame(dst: Uint8Array, src: Uint8Array, len: number, seq: number, hdr = 0, out?: Uint8Array): Uint8Array {
  const f = out ?? new Uint8Array(hdr + len);
  f.fill(0, 0, hdr);
  const e = hdr;
  f.set(dst, e);
  f.set(src, e + 6);
  f[e + 12] = 0x88;
  f[e + 13] = 0xb5;
  writeU32(f, e + 14, seq);
  let x = (seq * 2654435761) >>> 0;
  for (let i = e + 22; i < e + len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    f[i] = x & 0xff;
  }
  writeU32(f, e + 18, fnv(f, e + 22, e + len));
  return f;
}

/** The sequence number of a test frame, or -1 if its checksum does not match. */
export function checkFrame(f: Uint8Array, hdr = 0): number {
  const e = hdr;
  if (f.length < e + 22 || f[e + 12] !== 0x88 || f[e + 13] !== 0xb5) return -1;
  if (readU32(f, e + 18) !== fnv(f, e + 22, f.length)) return -1;
  return readU32(f, e + 14);
}

function fnv(b: Uint8Array, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}
function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
function readU32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** Init `be` in push mode and keep copies of what it receives. */
export async function recorder(be: NetBackend): Promise<{ frames: Uint8Array[] }> {
  const r = { frames: [] as Uint8Array[] };
  await be.init((f) => r.frames.push(f.slice()));
  return r;
}

/** Resolve once `cond()` holds, checking on every macrotask turn; reject after `ms`. */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}
