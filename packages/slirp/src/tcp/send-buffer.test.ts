import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SEND_BUFFER_MIN_STORAGE, SendBuffer } from './send-buffer.ts';

const bytes = (n: number, start = 0): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

describe('SendBuffer', () => {
  it('holds no storage until written, then grows only as needed', () => {
    const b = new SendBuffer(256 * 1024);
    expect(b.storageBytes).toBe(0);
    b.append(bytes(100), 0, 100);
    expect(b.storageBytes).toBe(SEND_BUFFER_MIN_STORAGE);
    b.append(bytes(10_000), 0, 10_000);
    expect(b.storageBytes).toBe(16384);
    expect(b.length).toBe(10_100);
  });

  it('takes at most the free space and reports what it took', () => {
    const b = new SendBuffer(5000);
    expect(b.append(bytes(8000), 0, 8000)).toBe(5000);
    expect(b.free).toBe(0);
    expect(b.append(bytes(1), 0, 1)).toBe(0);
    expect(b.storageBytes).toBe(5000);
  });

  it('copies out at an offset across the ring wrap', () => {
    const b = new SendBuffer(4096);
    b.append(bytes(4000), 0, 4000);
    b.ack(3000);
    b.append(bytes(2000, 4000), 0, 2000); // wraps
    const dst = new Uint8Array(3000);
    b.copyOut(0, dst, 0, 3000);
    expect(dst).toEqual(bytes(3000, 3000));
    const part = new Uint8Array(10);
    b.copyOut(995, part, 2, 8);
    expect(part.subarray(2)).toEqual(bytes(8, 3995));
  });

  it('releases its storage on trim only when empty', () => {
    const b = new SendBuffer(65536);
    b.append(bytes(50_000), 0, 50_000);
    b.trim();
    expect(b.storageBytes).toBeGreaterThan(0);
    b.ack(50_000);
    b.trim();
    expect(b.storageBytes).toBe(0);
  });

  it('behaves like a byte queue under any sequence of appends and acks', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3000 })), { maxLength: 60 }),
        fc.integer({ min: 1024, max: 9000 }),
        (ops, cap) => {
          const b = new SendBuffer(cap);
          const model: number[] = [];
          let next = 0;
          for (const [isAppend, n] of ops) {
            if (isAppend) {
              const src = bytes(n, next);
              const took = b.append(src, 0, n);
              if (took !== Math.min(n, cap - model.length)) return false;
              for (let i = 0; i < took; i++) model.push(src[i]);
              next += took;
            } else {
              const k = Math.min(n, model.length);
              b.ack(k);
              model.splice(0, k);
            }
            if (b.length !== model.length) return false;
          }
          const out = new Uint8Array(model.length);
          b.copyOut(0, out, 0, model.length);
          return out.every((v, i) => v === model[i]);
        },
      ),
    );
  });
});
