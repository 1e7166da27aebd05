import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_OOO_RANGES, RecvBuffer } from './recv-buffer.ts';
import { seqAdd } from './seq.ts';

const bytes = (n: number, start = 0): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

function make(limit: number, nxt: number) {
  const got: number[] = [];
  const chunks: number[] = [];
  const rb = new RecvBuffer(limit, {
    deliver: (c) => {
      chunks.push(c.length);
      for (const v of c) got.push(v);
    },
  });
  rb.nxt = nxt;
  return { rb, got, chunks };
}

describe('RecvBuffer', () => {
  it('hands in-order data straight through without allocating a ring', () => {
    const { rb, got } = make(65536, 100);
    const seg = bytes(500);
    rb.accept(100, seg, 100 + 65536);
    expect(rb.inOrder).toBe(500);
    expect(rb.nxt).toBe(600);
    expect(got).toEqual(Array.from(seg));
    expect(rb.storageBytes).toBe(0);
  });

  it('reassembles out-of-order segments and reports SACK blocks, latest first', () => {
    const { rb, got } = make(65536, 0);
    const d = bytes(5000);
    rb.accept(3000, d.subarray(3000, 4000), 65536);
    rb.accept(1000, d.subarray(1000, 2000), 65536);
    expect(rb.ooo).toBe(1000);
    const sack = new Uint32Array(8);
    expect(rb.sackBlocks(sack, 4)).toBe(2);
    expect(Array.from(sack.subarray(0, 4))).toEqual([1000, 2000, 3000, 4000]);
    rb.accept(2000, d.subarray(2000, 3000), 65536);
    expect(rb.rangeCount).toBe(1);
    rb.accept(0, d.subarray(0, 1000), 65536);
    expect(rb.filledGap).toBe(true);
    expect(rb.nxt).toBe(4000);
    expect(got).toEqual(Array.from(d.subarray(0, 4000)));
    expect(rb.rangeCount).toBe(0);
  });

  it('never keeps bytes past the advertised right edge', () => {
    const { rb, got } = make(65536, 0);
    rb.accept(0, bytes(1500), 1000);
    expect(rb.inOrder).toBe(1000);
    expect(rb.beyondWindow).toBe(500);
    rb.accept(2000, bytes(100), 1500);
    expect(rb.beyondWindow).toBe(100);
    expect(rb.rangeCount).toBe(0);
    expect(got).toHaveLength(1000);
  });

  it('trims the already-received front of an overlapping segment', () => {
    const { rb, got } = make(65536, 0);
    const d = bytes(300);
    rb.accept(0, d.subarray(0, 200), 65536);
    rb.accept(100, d.subarray(100, 300), 65536);
    expect(rb.dup).toBe(100);
    expect(rb.inOrder).toBe(100);
    expect(got).toEqual(Array.from(d));
  });

  it(`drops a segment that would need more than ${MAX_OOO_RANGES} ranges`, () => {
    const { rb } = make(1 << 20, 0);
    for (let i = 0; i < MAX_OOO_RANGES; i++) rb.accept(1000 + i * 200, bytes(100), 1 << 20);
    expect(rb.rangeCount).toBe(MAX_OOO_RANGES);
    rb.accept(100_000, bytes(100), 1 << 20);
    expect(rb.overflow).toBe(100);
    expect(rb.rangeCount).toBe(MAX_OOO_RANGES);
  });

  it('delivers every byte once, in order, for any arrival order (also across 2^32)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 25 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer(),
        (sizes, isn, seed) => {
          const total = sizes.reduce((a, b) => a + b, 0);
          const data = bytes(total, 3);
          const segs: [number, number][] = [];
          let off = 0;
          for (const s of sizes) {
            segs.push([off, s]);
            off += s;
          }
          // Shuffle deterministically and duplicate some.
          let x = seed | 1;
          const order = [...segs, ...segs.filter((_, i) => i % 3 === 0)];
          for (let i = order.length - 1; i > 0; i--) {
            x = (x * 1103515245 + 12345) | 0;
            const j = Math.abs(x) % (i + 1);
            [order[i], order[j]] = [order[j], order[i]];
          }
          order.push(...segs); // a final in-order retransmission pass fills any dropped range
          const { rb, got } = make(1 << 16, isn);
          for (const [o, n] of order) rb.accept(seqAdd(isn, o), data.subarray(o, o + n), seqAdd(isn, 1 << 16));
          return rb.nxt === seqAdd(isn, total) && got.length === total && got.every((v, i) => v === data[i]);
        },
      ),
    );
  });
});
