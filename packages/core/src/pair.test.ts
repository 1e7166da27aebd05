import { describe, it, expect } from 'vitest';
import { pair } from './pair.ts';
import { Verdict } from './backend.ts';
import type { NetBackend } from './backend.ts';

const frame = (n: number, len = 60): Uint8Array => {
  const f = new Uint8Array(len);
  f.fill(0xaa, 0, 12);
  f[12] = 0x08;
  f[13] = 0x00;
  f[14] = n & 0xff;
  f[15] = (n >> 8) & 0xff;
  return f;
};
const id = (f: Uint8Array): number => f[14]! | (f[15]! << 8);

async function started(opts?: Parameters<typeof pair>[0]) {
  const [a, b] = pair(opts);
  const gotA: number[] = [];
  const gotB: number[] = [];
  const drains = { a: 0, b: 0 };
  await a.init((f) => gotA.push(id(f)), { drain: () => drains.a++ });
  await b.init((f) => gotB.push(id(f)), { drain: () => drains.b++ });
  return { a, b, gotA, gotB, drains };
}

describe('pair', () => {
  it('delivers a frame sent on one end to the other and counts it on both', async () => {
    const { a, b, gotA, gotB } = await started();
    expect(a.type).toBe('pair');
    expect(a.send(frame(1))).toBe(Verdict.Delivered);
    expect(b.send(frame(2, 100))).toBe(Verdict.Delivered);
    expect(gotB).toEqual([1]);
    expect(gotA).toEqual([2]);
    expect(a.stats()).toMatchObject({ txFrames: 1, txBytes: 60, rxFrames: 1, rxBytes: 100 });
    expect(b.stats()).toMatchObject({ txFrames: 1, txBytes: 100, rxFrames: 1, rxBytes: 60 });
  });

  it('never hands the sender buffer to the receiver', async () => {
    const [a, b] = pair();
    let seen: Uint8Array | null = null;
    await a.init(() => {});
    await b.init((f) => {
      seen = f;
      f[20] = 0x55; // a receiver that rewrites in place must not touch the sender's memory
    });
    const buf = frame(7);
    a.send(buf);
    expect(seen).not.toBe(buf);
    expect(buf[20]).toBe(0);
  });

  it('keeps queued frames intact when the sender reuses its buffer after send', async () => {
    const { a, b, gotB } = await started();
    b.pauseRecv();
    const buf = frame(1);
    a.send(buf);
    buf[14] = 99; // caller reuses the buffer
    a.send(buf);
    expect(gotB).toEqual([]);
    b.resumeRecv();
    expect(gotB).toEqual([1, 99]);
  });

  it('bounds stack depth when two stacks answer each other from inside rx (trampoline)', async () => {
    const [a, b] = pair();
    let depth = 0;
    let maxDepth = 0;
    let exchanges = 0;
    const echo = (self: () => NetBackend) => (f: Uint8Array) => {
      depth++;
      maxDepth = Math.max(maxDepth, depth);
      if (++exchanges < 200_000) self().send(f);
      depth--;
    };
    await a.init(echo(() => a));
    await b.init(echo(() => b));
    a.send(frame(1));
    // Every frame the first send triggered was delivered before it returned, one level deep.
    expect(exchanges).toBe(200_000);
    expect(maxDepth).toBe(1);
    expect(a.stats().rxFrames + b.stats().rxFrames).toBe(200_000);
  });

  it('preserves send order across both directions in the trampoline', async () => {
    const [a, b] = pair();
    const log: string[] = [];
    await a.init((f) => log.push(`a<${id(f)}`));
    await b.init((f) => {
      log.push(`b<${id(f)}`);
      if (id(f) === 1) {
        b.send(frame(10));
        b.send(frame(11));
        a.send(frame(2));
      }
    });
    a.send(frame(1));
    expect(log).toEqual(['b<1', 'a<10', 'a<11', 'b<2']);
  });

  it('delivers from a macrotask batch in async mode', async () => {
    const { a, gotB } = await started({ async: true });
    expect(a.send(frame(1))).toBe(Verdict.Delivered);
    expect(a.send(frame(2))).toBe(Verdict.Delivered);
    expect(gotB).toEqual([]);
    await Promise.resolve(); // not a microtask
    expect(gotB).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(gotB).toEqual([1, 2]);
  });

  it('yields to the event loop between rounds of an async ping-pong', async () => {
    const [a, b] = pair({ async: true });
    let rounds = 0;
    await a.init((f) => {
      rounds++;
      a.send(f);
    });
    await b.init((f) => b.send(f));
    a.send(frame(1));
    await new Promise((r) => setTimeout(r, 20)); // a timer fires although the ping-pong never ends
    expect(rounds).toBeGreaterThan(0);
    await a.close();
    await b.close();
    const r0 = rounds;
    await new Promise((r) => setTimeout(r, 5));
    expect(rounds).toBe(r0);
  });

  it('answers Queued when a paused peer fills, drops after that, and drains on resume', async () => {
    const { a, b, gotB, drains } = await started({ queueFrames: 4 });
    b.pauseRecv();
    expect([1, 2, 3].map((n) => a.send(frame(n)))).toEqual(['delivered', 'delivered', 'delivered']);
    expect(a.send(frame(4))).toBe(Verdict.Queued);
    expect(a.send(frame(5))).toBe(Verdict.Dropped);
    expect(a.stats().drops).toEqual({ backpressure: 1 });
    expect(drains.a).toBe(0);
    b.resumeRecv();
    expect(gotB).toEqual([1, 2, 3, 4]);
    expect(drains.a).toBe(1);
    expect(a.send(frame(6))).toBe(Verdict.Delivered);
    expect(gotB).toEqual([1, 2, 3, 4, 6]);
    expect(b.stats().drops).toEqual({});
  });

  it('backpressures in async mode when the sender outruns the batch', async () => {
    const { a, gotB, drains } = await started({ async: true, queueFrames: 2 });
    expect(a.send(frame(1))).toBe(Verdict.Delivered);
    expect(a.send(frame(2))).toBe(Verdict.Queued);
    expect(a.send(frame(3))).toBe(Verdict.Dropped);
    await new Promise((r) => setImmediate(r));
    expect(gotB).toEqual([1, 2]);
    expect(drains.a).toBe(1);
  });

  it('serves pull mode: readable, peekRecvLen, recv, and drain when emptied', async () => {
    const [a, b] = pair({ queueFrames: 2 });
    let readable = 0;
    let drained = 0;
    await a.init(() => {}, { drain: () => drained++ });
    await b.init(null, { readable: () => readable++ });
    expect(a.send(frame(1, 70))).toBe(Verdict.Delivered);
    expect(readable).toBe(1);
    expect(a.send(frame(2, 80))).toBe(Verdict.Queued);
    expect(b.peekRecvLen()).toBe(70);
    const buf = new Uint8Array(2000);
    expect(b.recv(buf)).toBe(70);
    expect(id(buf)).toBe(1);
    expect(drained).toBe(0);
    expect(b.recv(buf)).toBe(80);
    expect(id(buf)).toBe(2);
    expect(drained).toBe(1);
    expect(b.recv(buf)).toBe(0);
    expect(b.stats()).toMatchObject({ rxFrames: 2, rxBytes: 150 });
  });

  it('drops sends to a closed peer with reason peer-closed', async () => {
    const { a, b } = await started();
    await b.close();
    expect(a.send(frame(1))).toBe(Verdict.Dropped);
    expect(a.stats().drops).toEqual({ 'peer-closed': 1 });
    expect(b.send(frame(1))).toBe(Verdict.Dropped);
    expect(b.stats().drops).toEqual({ closed: 1 });
    await b.close(); // idempotent
  });

  it('drops sends before the peer is initialised with reason peer-down', async () => {
    const [a] = pair();
    await a.init(() => {});
    expect(a.send(frame(1))).toBe(Verdict.Dropped);
    expect(a.stats().drops).toEqual({ 'peer-down': 1 });
  });

  it('drops frames longer than the link allows', async () => {
    const { a, gotB } = await started({ mtu: 1500 });
    expect(a.send(frame(1, 1518))).toBe(Verdict.Delivered);
    expect(a.send(frame(2, 1519))).toBe(Verdict.Dropped);
    expect(a.stats().drops).toEqual({ oversize: 1 });
    expect(gotB).toEqual([1]);
  });

  it('counts a throwing rx handler on the receiving end and keeps the link up', async () => {
    const [a, b] = pair();
    let n = 0;
    await a.init(() => {});
    await b.init(() => {
      if (++n === 1) throw new Error('guest bug');
    });
    expect(a.send(frame(1))).toBe(Verdict.Delivered);
    expect(a.send(frame(2))).toBe(Verdict.Delivered);
    expect(b.stats().drops).toEqual({ 'rx-handler-error': 1 });
    expect(n).toBe(2);
  });
});
