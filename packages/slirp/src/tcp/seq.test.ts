import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { seqAdd, seqGe, seqGt, seqLe, seqLt, seqMax, seqMin, seqSub } from './seq.ts';

describe('sequence arithmetic', () => {
  it('orders numbers across the 2^32 wrap', () => {
    expect(seqLt(0xfffffff0, 0x10)).toBe(true);
    expect(seqGt(0x10, 0xfffffff0)).toBe(true);
    expect(seqLe(5, 5)).toBe(true);
    expect(seqGe(5, 5)).toBe(true);
    expect(seqLt(5, 5)).toBe(false);
    expect(seqMax(0xffffffff, 1)).toBe(1);
    expect(seqMin(0xffffffff, 1)).toBe(0xffffffff);
  });

  it('adds and subtracts modulo 2^32 with a signed distance', () => {
    expect(seqAdd(0xffffffff, 1)).toBe(0);
    expect(seqAdd(0, -1)).toBe(0xffffffff);
    expect(seqSub(0x10, 0xfffffff0)).toBe(0x20);
    expect(seqSub(0xfffffff0, 0x10)).toBe(-0x20);
  });

  it('a + d is after a for every 0 < d < 2^31, and seqSub inverts seqAdd', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 1, max: 0x7fffffff }), (a, d) => {
        const b = seqAdd(a, d);
        return seqGt(b, a) && seqLt(a, b) && seqSub(b, a) === d && b >= 0 && b <= 0xffffffff;
      }),
    );
  });
});
