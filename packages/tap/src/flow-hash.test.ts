import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { flowHash } from './flow-hash.ts';

function ipv4Frame(opts: { src?: number; dst?: number; proto?: number; sport?: number; dport?: number; frag?: number; payload?: number }): Uint8Array {
  const f = new Uint8Array(14 + 20 + 8 + (opts.payload ?? 0));
  f[12] = 0x08;
  f[14] = 0x45;
  f[20] = (opts.frag ?? 0) >> 8;
  f[21] = (opts.frag ?? 0) & 0xff;
  f[23] = opts.proto ?? 6;
  f.set([10, 0, 0, opts.src ?? 1, 10, 0, 0, opts.dst ?? 2], 26);
  f[34] = (opts.sport ?? 1000) >> 8;
  f[35] = (opts.sport ?? 1000) & 0xff;
  f[36] = (opts.dport ?? 80) >> 8;
  f[37] = (opts.dport ?? 80) & 0xff;
  return f;
}

describe('flowHash', () => {
  it('gives every segment of a flow the same hash, whatever the payload', () => {
    const a = ipv4Frame({ payload: 0 });
    const b = ipv4Frame({ payload: 1400 }).fill(0x55, 42);
    expect(flowHash(a, 0)).toBe(flowHash(b, 0));
  });

  it('changes with ports, addresses and protocol', () => {
    const base = flowHash(ipv4Frame({}), 0);
    expect(flowHash(ipv4Frame({ sport: 1001 }), 0)).not.toBe(base);
    expect(flowHash(ipv4Frame({ dport: 81 }), 0)).not.toBe(base);
    expect(flowHash(ipv4Frame({ dst: 3 }), 0)).not.toBe(base);
    expect(flowHash(ipv4Frame({ proto: 17 }), 0)).not.toBe(base);
  });

  it('ignores the bytes where ports would be in a non-first IPv4 fragment', () => {
    expect(flowHash(ipv4Frame({ frag: 185, sport: 1 }), 0)).toBe(flowHash(ipv4Frame({ frag: 185, sport: 2 }), 0));
  });

  it('skips a vnet header given as the offset', () => {
    const f = ipv4Frame({});
    const h = new Uint8Array(12 + f.length);
    h.set(f, 12);
    h[0] = 1; // header bytes do not count
    expect(flowHash(h, 12)).toBe(flowHash(f, 0));
  });

  it('hashes IPv6 flows and non-IP frames (by destination MAC)', () => {
    const v6 = new Uint8Array(14 + 40 + 8);
    v6[12] = 0x86;
    v6[13] = 0xdd;
    v6[20] = 17;
    const other = Uint8Array.from(v6);
    other[55] = 9; // a destination address byte
    expect(flowHash(v6, 0)).not.toBe(flowHash(other, 0));
    const arpA = new Uint8Array(42).fill(0xff, 0, 6);
    arpA[12] = 0x08;
    arpA[13] = 0x06;
    const arpB = Uint8Array.from(arpA);
    arpB[20] = 7; // not part of the key
    expect(flowHash(arpA, 0)).toBe(flowHash(arpB, 0));
  });

  it('never throws and returns a uint32 for arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.nat(20), (b, off) => {
        const h = flowHash(b, off);
        return Number.isInteger(h) && h >= 0 && h <= 0xffffffff;
      }),
    );
  });
});
