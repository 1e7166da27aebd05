import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checksum, foldSum, sum16, updateChecksum16, updateChecksum32 } from './checksum.ts';

function naive(bytes: Uint8Array, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) s += (bytes[off + i]! << 8) | (i + 1 < len ? bytes[off + i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

describe('checksum', () => {
  it('matches the RFC 1071 §3 example', () => {
    // 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 (folded), checksum 220d.
    const b = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);
    expect(foldSum(sum16(b, 0, b.length))).toBe(0xddf2);
    expect(checksum(b, 0, b.length)).toBe(0x220d);
  });

  it('checksums a real IPv4 header to the value on the wire', () => {
    // 45 00 00 73 00 00 40 00 40 11 [b8 61] c0 a8 00 01 c0 a8 00 c7
    const h = Uint8Array.from([0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0, 0xc7]);
    expect(checksum(h, 0, 20)).toBe(0xb861);
  });

  it('agrees with a naive sum at every alignment and length', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.nat(7), (data, shift) => {
        const buf = new Uint8Array(data.length + 8);
        buf.set(data, shift);
        expect(checksum(buf, shift, data.length)).toBe(naive(buf, shift, data.length));
        const sub = buf.subarray(1);
        if (shift >= 1) expect(checksum(sub, shift - 1, data.length)).toBe(naive(buf, shift, data.length));
      }),
      { numRuns: 400 },
    );
  });

  it('updates incrementally like a full recompute (RFC 1624)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 20, maxLength: 20 }), fc.nat(0xffff), fc.nat(0xffffffff), (h, w, v) => {
        h[10] = 0;
        h[11] = 0;
        const c0 = checksum(h, 0, 20);
        const old16 = (h[2]! << 8) | h[3]!;
        h[2] = w >>> 8;
        h[3] = w & 0xff;
        const c1 = checksum(h, 0, 20);
        const inc16 = updateChecksum16(c0, old16, w);
        expect(inc16 === c1 || (inc16 ^ c1) === 0xffff).toBe(true);
        const old32 = ((h[12]! << 24) | (h[13]! << 16) | (h[14]! << 8) | h[15]!) >>> 0;
        h[12] = v >>> 24; h[13] = (v >>> 16) & 0xff; h[14] = (v >>> 8) & 0xff; h[15] = v & 0xff;
        const c2 = checksum(h, 0, 20);
        const inc = updateChecksum32(c1, old32, v);
        // One's complement has two zeros; both encodings verify.
        expect(inc === c2 || (inc ^ c2) === 0xffff).toBe(true);
      }),
    );
  });
});
