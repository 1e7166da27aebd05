import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { NeighborTable } from './neighbors.ts';
import { ip4, ip6 } from './config.ts';

const MAC_A = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56);
const MAC_B = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x57);
const A4 = (s: string): number => ip4(s)!;
const A6 = (s: string): Uint8Array => ip6(s)!;
const macN = (i: number): Uint8Array => Uint8Array.of(0x52, 0x54, 0, 0, (i >>> 8) & 255, i & 255);

describe('NeighborTable', () => {
  it('returns the learned MAC for an IPv4 address and null for an unknown one', () => {
    const t = new NeighborTable();
    expect(t.learn4(A4('10.0.2.15'), MAC_A)).toBe(true);
    expect(t.lookup4(A4('10.0.2.15'))).toEqual(MAC_A);
    expect(t.lookup4(A4('10.0.2.16'))).toBeNull();
  });

  it('falls back to the last seen guest MAC in macFor4/macFor6 but not in lookups', () => {
    const t = new NeighborTable();
    expect(t.macFor4(A4('10.0.2.99'))).toBeNull();
    expect(t.macFor6(A6('fec0::99'))).toBeNull();
    t.learn4(A4('10.0.2.15'), MAC_A);
    t.noteMac(MAC_B);
    expect(t.macFor4(A4('10.0.2.15'))).toEqual(MAC_A);
    expect(t.macFor4(A4('10.0.2.99'))).toEqual(MAC_B);
    expect(t.macFor6(A6('fec0::99'))).toEqual(MAC_B);
    expect(t.lookup6(A6('fec0::99'))).toBeNull();
    expect(t.lastMac).toEqual(MAC_B);
  });

  it('learning an address also makes its MAC the fallback', () => {
    const t = new NeighborTable();
    t.learn6(A6('fe80::5054:ff:fe12:3456'), MAC_A);
    expect(t.lastMac).toEqual(MAC_A);
    expect(t.macFor4(A4('10.0.2.15'))).toEqual(MAC_A);
  });

  it('updates the MAC of a known address in place', () => {
    const t = new NeighborTable();
    t.learn4(A4('10.0.2.15'), MAC_A);
    const first = t.lookup4(A4('10.0.2.15'));
    t.learn4(A4('10.0.2.15'), MAC_B);
    expect(t.lookup4(A4('10.0.2.15'))).toBe(first);
    expect(first).toEqual(MAC_B);
    expect(t.size4).toBe(1);
  });

  it('keeps a private copy of the MAC, not the caller’s buffer', () => {
    const t = new NeighborTable();
    const frame = new Uint8Array(20);
    frame.set(MAC_A, 6);
    t.learn4(A4('10.0.2.15'), frame, 6);
    frame.fill(0);
    expect(t.lookup4(A4('10.0.2.15'))).toEqual(MAC_A);
  });

  it('reads IPv6 addresses at an offset inside a frame', () => {
    const t = new NeighborTable();
    const frame = new Uint8Array(64);
    frame.set(A6('fec0::15'), 22);
    t.learn6(frame, MAC_A, 22);
    expect(t.lookup6(A6('fec0::15'))).toEqual(MAC_A);
    expect(t.macFor6(frame, 22)).toEqual(MAC_A);
  });

  it('refuses multicast, broadcast and all-zero MACs and non-unicast addresses', () => {
    const t = new NeighborTable();
    expect(t.learn4(A4('10.0.2.15'), Uint8Array.of(1, 0, 0x5e, 0, 0, 1))).toBe(false);
    expect(t.learn4(A4('10.0.2.15'), Uint8Array.of(255, 255, 255, 255, 255, 255))).toBe(false);
    expect(t.learn4(A4('10.0.2.15'), new Uint8Array(6))).toBe(false);
    expect(t.learn6(A6('fec0::15'), Uint8Array.of(0x33, 0x33, 0, 0, 0, 1))).toBe(false);
    expect(t.lastMac).toBeNull();
    expect(t.learn4(0, MAC_A)).toBe(false);
    expect(t.learn4(A4('255.255.255.255'), MAC_A)).toBe(false);
    expect(t.learn4(A4('224.0.0.251'), MAC_A)).toBe(false);
    expect(t.learn6(A6('::'), MAC_A)).toBe(false);
    expect(t.learn6(A6('ff02::1'), MAC_A)).toBe(false);
    expect(t.size4).toBe(0);
    expect(t.size6).toBe(0);
    // The MAC itself was fine: it still became the fallback.
    expect(t.lastMac).toEqual(MAC_A);
  });

  it('bounds the IPv4 table and evicts the least recently learned entry', () => {
    const t = new NeighborTable({ max4: 4 });
    for (let i = 1; i <= 4; i++) t.learn4(A4(`10.0.2.${i}`), macN(i));
    t.learn4(A4('10.0.2.1'), macN(1)); // refresh .1: .2 is now the oldest
    t.learn4(A4('10.0.2.5'), macN(5));
    expect(t.size4).toBe(4);
    expect(t.lookup4(A4('10.0.2.2'))).toBeNull();
    expect(t.lookup4(A4('10.0.2.1'))).toEqual(macN(1));
    expect(t.lookup4(A4('10.0.2.5'))).toEqual(macN(5));
    t.learn4(A4('10.0.2.6'), macN(6));
    expect(t.lookup4(A4('10.0.2.3'))).toBeNull();
    expect(t.size4).toBe(4);
  });

  it('bounds the IPv6 table and evicts the least recently learned entry', () => {
    const t = new NeighborTable({ max6: 3 });
    t.learn6(A6('fec0::1'), macN(1));
    t.learn6(A6('fec0::2'), macN(2));
    t.learn6(A6('fec0::3'), macN(3));
    t.learn6(A6('fec0::1'), macN(11));
    t.learn6(A6('fec0::4'), macN(4));
    expect(t.size6).toBe(3);
    expect(t.lookup6(A6('fec0::2'))).toBeNull();
    expect(t.lookup6(A6('fec0::1'))).toEqual(macN(11));
    expect(t.lookup6(A6('fec0::3'))).toEqual(macN(3));
    expect(t.lookup6(A6('fec0::4'))).toEqual(macN(4));
  });

  it('forgets single entries and clears everything', () => {
    const t = new NeighborTable();
    t.learn4(A4('10.0.2.15'), MAC_A);
    t.learn6(A6('fec0::15'), MAC_A);
    t.forget4(A4('10.0.2.15'));
    t.forget6(A6('fec0::15'));
    expect(t.lookup4(A4('10.0.2.15'))).toBeNull();
    expect(t.lookup6(A6('fec0::15'))).toBeNull();
    expect(t.size6).toBe(0);
    expect(t.lastMac).toEqual(MAC_A);
    t.learn4(A4('10.0.2.15'), MAC_A);
    t.clear();
    expect(t.size4).toBe(0);
    expect(t.lastMac).toBeNull();
  });

  it('agrees with a reference model under random learn/forget sequences (bounded, most recent kept)', () => {
    const addr = fc.integer({ min: 0, max: 40 });
    const op = fc.oneof(
      fc.record({ k: fc.constant('l4' as const), a: addr, m: fc.integer({ min: 1, max: 9 }) }),
      fc.record({ k: fc.constant('l6' as const), a: addr, m: fc.integer({ min: 1, max: 9 }) }),
      fc.record({ k: fc.constant('f6' as const), a: addr, m: fc.constant(0) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const max = 8;
        const t = new NeighborTable({ max4: max, max6: max });
        // Reference: insertion-ordered maps where re-learning moves the key to the end.
        const m4 = new Map<number, number>();
        const m6 = new Map<number, number>();
        const put = (m: Map<number, number>, a: number, v: number) => {
          m.delete(a);
          m.set(a, v);
          if (m.size > max) m.delete(m.keys().next().value!);
        };
        const v6 = (a: number) => {
          // Addresses that differ only in high bytes exercise hash chains as well.
          const b = A6('fec0::');
          b[2] = a;
          b[15] = a & 3;
          return b;
        };
        for (const o of ops) {
          if (o.k === 'l4') {
            t.learn4(A4(`10.0.2.${o.a + 1}`), macN(o.m));
            put(m4, o.a, o.m);
          } else if (o.k === 'l6') {
            t.learn6(v6(o.a), macN(o.m));
            put(m6, o.a, o.m);
          } else {
            t.forget6(v6(o.a));
            m6.delete(o.a);
          }
        }
        expect(t.size4).toBe(m4.size);
        expect(t.size6).toBe(m6.size);
        for (let a = 0; a <= 40; a++) {
          const e4 = m4.get(a);
          expect(t.lookup4(A4(`10.0.2.${a + 1}`))).toEqual(e4 === undefined ? null : macN(e4));
          const e6 = m6.get(a);
          expect(t.lookup6(v6(a))).toEqual(e6 === undefined ? null : macN(e6));
        }
      }),
      { numRuns: 300 },
    );
  });
});
