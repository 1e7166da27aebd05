import { describe, it, expect } from 'vitest';
import { Xoshiro128ss, withFaultInjector, type FaultInjectorOptions } from './fault-injector.ts';
import { pair } from '../pair.ts';
import type { NetBackend } from '../backend.ts';

const frame = (n: number): Uint8Array => {
  const f = new Uint8Array(64);
  f[12] = 0x08;
  f[14] = n & 0xff;
  f[15] = n >> 8;
  return f;
};
const id = (f: Uint8Array): number => f[14]! | (f[15]! << 8);

/** Sends N frames through a fault injector on the tx side; returns what the far end got. */
async function runTx(opts: FaultInjectorOptions, n = 1000) {
  const [a, b] = pair();
  const fi = withFaultInjector(a, opts);
  const got: Uint8Array[] = [];
  await fi.init(() => {});
  await b.init((f) => got.push(f.slice()));
  const verdicts = new Set<string>();
  for (let i = 0; i < n; i++) verdicts.add(fi.send(frame(i)));
  return { fi, got, verdicts, extra: fi.stats().extra! };
}

describe('Xoshiro128ss', () => {
  it('matches the reference xoshiro128** output for state 1,2,3,4', () => {
    const g = Xoshiro128ss.fromState(1, 2, 3, 4);
    expect([g.nextU32(), g.nextU32(), g.nextU32(), g.nextU32()]).toEqual([11520, 0, 5927040, 70819200]);
  });

  it('gives the same sequence for the same seed and another for another seed', () => {
    const seq = (seed: number) => {
      const g = new Xoshiro128ss(seed);
      return Array.from({ length: 8 }, () => g.nextU32());
    };
    expect(seq(42)).toEqual(seq(42));
    expect(seq(42)).not.toEqual(seq(43));
  });
});

describe('withFaultInjector', () => {
  it('makes the same decisions for the same seed', async () => {
    const opts = { seed: 7, drop: 0.1, duplicate: 0.1, reorder: 0.1, corrupt: 0.1, reorderDelayFrames: 2 };
    const r1 = await runTx(opts);
    const r2 = await runTx(opts);
    expect(r2.got).toEqual(r1.got);
    expect(r2.extra).toEqual(r1.extra);
    const r3 = await runTx({ ...opts, seed: 8 });
    expect(r3.got).not.toEqual(r1.got);
    await Promise.all([r1.fi.close(), r2.fi.close(), r3.fi.close()]);
  });

  it('drops everything at drop=1, answering delivered as a lossy wire does', async () => {
    const { got, verdicts, extra, fi } = await runTx({ seed: 1, drop: 1 }, 100);
    expect(got).toHaveLength(0);
    expect([...verdicts]).toEqual(['delivered']);
    expect(extra['fault-dropped']).toBe(100);
    await fi.close();
  });

  it('counts exactly the frames it dropped', async () => {
    const { got, extra, fi } = await runTx({ seed: 3, drop: 0.3 });
    expect(extra['fault-dropped']).toBe(1000 - got.length);
    expect(extra['fault-dropped']).toBeGreaterThan(200);
    expect(extra['fault-dropped']).toBeLessThan(400);
    expect(got.map(id)).toEqual([...got.map(id)].sort((x, y) => x - y)); // order kept
    await fi.close();
  });

  it('counts exactly the frames it duplicated, each copy right after the original', async () => {
    const { got, extra, fi } = await runTx({ seed: 4, duplicate: 0.2 });
    expect(got.length).toBe(1000 + extra['fault-duplicated']!);
    let dups = 0;
    for (let i = 1; i < got.length; i++) if (id(got[i]!) === id(got[i - 1]!)) dups++;
    expect(dups).toBe(extra['fault-duplicated']);
    await fi.close();
  });

  it('flips exactly one bit in a copy, never in the caller buffer', async () => {
    const [a, b] = pair();
    const fi = withFaultInjector(a, { seed: 5, corrupt: 0.5 });
    const got: Uint8Array[] = [];
    await fi.init(() => {});
    await b.init((f) => got.push(f.slice()));
    let changed = 0;
    for (let i = 0; i < 500; i++) {
      const f = frame(i);
      const orig = f.slice();
      fi.send(f);
      expect(f).toEqual(orig);
      let bits = 0;
      for (let j = 0; j < f.length; j++) {
        let x = f[j]! ^ got[i]![j]!;
        for (; x; x &= x - 1) bits++;
      }
      expect(bits).toBeLessThanOrEqual(1);
      changed += bits;
    }
    expect(changed).toBe(fi.stats().extra!['fault-corrupted']);
    expect(changed).toBeGreaterThan(150);
    await fi.close();
  });

  it('holds a reordered frame for N later frames', async () => {
    // reorder=1: every frame is held for 2 later frames, so the stream is the same, delayed by 2.
    const { got, extra, fi } = await runTx({ seed: 6, reorder: 1, reorderDelayFrames: 2 }, 10);
    expect(got.map(id)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(extra['fault-reordered']).toBe(10);
    await fi.close();
  });

  it('reorders some frames, loses none, and flushes held frames on a timer', async () => {
    const { got, extra, fi } = await runTx({ seed: 9, reorder: 0.2, reorderDelayFrames: 3, reorderFlushMs: 10 });
    const ids = got.map(id);
    let outOfOrder = 0;
    for (let i = 1; i < ids.length; i++) if (ids[i]! < ids[i - 1]!) outOfOrder++;
    expect(outOfOrder).toBeGreaterThan(0);
    expect(extra['fault-reordered']).toBeGreaterThan(100);
    await new Promise((r) => setTimeout(r, 30));
    expect([...got.map(id)].sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    await fi.close();
  });

  it('applies faults only to the chosen direction', async () => {
    const [a, b] = pair();
    const fi = withFaultInjector(a, { seed: 1, drop: 1, directions: 'rx' });
    const atGuest: number[] = [];
    const atFar: number[] = [];
    await fi.init((f) => atGuest.push(id(f)));
    await b.init((f) => atFar.push(id(f)));
    fi.send(frame(1));
    b.send(frame(2));
    expect(atFar).toEqual([1]);
    expect(atGuest).toEqual([]);
    expect(fi.stats().extra!['fault-dropped']).toBe(1);
    await fi.close();
  });

  it('works in pull mode on rx (duplicates are queued for recv)', async () => {
    const [a, b] = pair();
    const fi: NetBackend = withFaultInjector(a, { seed: 2, duplicate: 1, directions: 'rx' });
    let readable = 0;
    await fi.init(null, { readable: () => readable++ });
    await b.init(() => {});
    b.send(frame(5));
    expect(readable).toBe(1);
    const buf = new Uint8Array(100);
    expect(fi.recv(buf)).toBe(64);
    expect(id(buf)).toBe(5);
    expect(fi.recv(buf)).toBe(64);
    expect(id(buf)).toBe(5);
    expect(fi.recv(buf)).toBe(0);
    await fi.close();
  });

  it('rejects a probability outside 0..1', () => {
    expect(() => withFaultInjector(pair()[0], { seed: 1, drop: 1.5 })).toThrow(/not a probability/);
  });
});
