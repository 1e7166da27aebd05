import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Table6, type Keyed6 } from './table6.ts';

interface E extends Keyed6 {
  id: number;
}
const addr = fc.uint8Array({ minLength: 16, maxLength: 16 });

describe('Table6', () => {
  it('finds entries from packet bytes at an offset, and 2-tuple keys never match 4-tuple lookups', () => {
    const t = new Table6<E>();
    const a = Uint8Array.from({ length: 16 }, (_, i) => i);
    const b = Uint8Array.from({ length: 16 }, (_, i) => 100 + i);
    const four: E = { id: 1, a6: a, aPort: 5, b6: b, bPort: 80 };
    const two: E = { id: 2, a6: a, aPort: 5, b6: null, bPort: 0 };
    t.add(four);
    t.add(two);
    const pkt = new Uint8Array(40);
    pkt.set(a, 8);
    pkt.set(b, 24);
    expect(t.get(pkt, 8, 5, pkt, 24, 80)).toBe(four);
    expect(t.get(pkt, 8, 5, null, 0, 0)).toBe(two);
    expect(t.get(pkt, 8, 5, pkt, 24, 81)).toBeUndefined();
    expect(t.delete(four)).toBe(true);
    expect(t.delete(four)).toBe(false);
    expect(t.get(pkt, 8, 5, pkt, 24, 80)).toBeUndefined();
    expect(t.size).toBe(1);
  });

  it('agrees with a string-keyed Map under random adds, deletes and lookups', () => {
    const key = (a: Uint8Array, ap: number, b: Uint8Array | null, bp: number) => `${a.join(',')}|${ap}|${b ? b.join(',') : '-'}|${bp}`;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('add', 'del', 'get'), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 3 }), fc.boolean()), { maxLength: 200 }),
        fc.array(addr, { minLength: 6, maxLength: 6 }),
        (ops, addrs) => {
          const t = new Table6<E>();
          const model = new Map<string, E>();
          let id = 0;
          for (const [op, ai, port, four] of ops) {
            const a = addrs[ai]!;
            const b = four ? addrs[(ai + 1) % 6]! : null;
            const bp = four ? port + 1 : 0;
            const k = key(a, port, b, bp);
            if (op === 'add' && !model.has(k)) {
              const e: E = { id: id++, a6: a.slice(), aPort: port, b6: b ? b.slice() : null, bPort: bp };
              t.add(e);
              model.set(k, e);
            } else if (op === 'del') {
              const e = model.get(k);
              if (e) {
                expect(t.delete(e)).toBe(true);
                model.delete(k);
              }
            }
            expect(t.get(a, 0, port, b, 0, bp)).toBe(model.get(k));
            expect(t.size).toBe(model.size);
          }
        },
      ),
    );
  });
});
