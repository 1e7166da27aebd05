import { describe, it, expect } from 'vitest';
import { WrappedBackend } from './wrap.ts';
import { pair } from '../pair.ts';
import { Verdict, type NetBackend } from '../backend.ts';

const frame = (n: number): Uint8Array => {
  const f = new Uint8Array(60);
  f[14] = n;
  return f;
};

class PassThrough extends WrappedBackend {}

class CountTx extends WrappedBackend {
  seen = 0;
  override send(f: Uint8Array): Verdict {
    this.seen++;
    return this.inner.send(f);
  }
}

/** Emits every rx frame twice; counts a private drop reason. */
class Doubler extends WrappedBackend {
  protected override onRx(f: Uint8Array): void {
    this.deliverRx(f);
    this.deliverRx(f);
  }
  protected override extraStats(): Record<string, number> {
    return { doubled: 1 };
  }
}

describe('WrappedBackend', () => {
  it('delegates type, capabilities, hostfwd and the data path', async () => {
    const [a, b] = pair({ mtu: 1400 });
    const w = new PassThrough(a);
    expect(w.type).toBe('pair');
    expect(w.capabilities().mtu).toBe(1400);
    await expect(w.hostfwd.add({ proto: 'tcp', host: { kind: 'inet', addr: '', port: 1 }, guestAddr: '', guestPort: 2 })).rejects.toMatchObject({
      code: 'GUESTNET_UNSUPPORTED',
    });
    const got: number[] = [];
    await w.init((f) => got.push(f[14]!));
    await b.init((f) => b.send(f));
    expect(w.send(frame(3))).toBe(Verdict.Delivered);
    expect(got).toEqual([3]);
    expect(w.stats()).toMatchObject({ txFrames: 1, rxFrames: 1 });
    await expect(w.init(() => {})).rejects.toMatchObject({ code: 'GUESTNET_BAD_BACKEND' });
    await w.close();
    await w.close();
    expect(b.send(frame(1))).toBe(Verdict.Dropped);
  });

  it('routes sendBatch through an overridden send, stopping after Queued', async () => {
    const [a, b] = pair({ queueFrames: 2 });
    const w = new CountTx(a);
    await w.init(() => {});
    await b.init(() => {});
    b.pauseRecv();
    expect(w.sendBatch([frame(1), frame(2), frame(3)])).toBe(2);
    expect(w.seen).toBe(2);
  });

  it('uses the inner pull queue when it does not intercept rx', async () => {
    const [a, b] = pair();
    const w = new PassThrough(a);
    await w.init(null);
    await b.init(() => {});
    b.send(frame(9));
    const buf = new Uint8Array(64);
    expect(w.peekRecvLen()).toBe(60);
    expect(w.recv(buf)).toBe(60);
    expect(buf[14]).toBe(9);
  });

  it('queues what it emits while the guest is paused and pauses the inner backend when full', async () => {
    const [a, b] = pair({ queueFrames: 100 });
    const w: NetBackend = new Doubler(a, { rxQueueFrames: 4 });
    const got: number[] = [];
    await w.init((f) => got.push(f[14]!));
    await b.init(() => {});
    w.pauseRecv();
    b.send(frame(1)); // a is paused by the guest: the frame waits inside a
    expect(got).toEqual([]);
    w.resumeRecv();
    expect(got).toEqual([1, 1]);
    // Pause from inside the rx handler: the second copy is queued here, then more frames arrive.
    let pauseOnce = true;
    const [c, d] = pair({ queueFrames: 100 });
    const x = new Doubler(c, { rxQueueFrames: 4 });
    const got2: number[] = [];
    await x.init((f) => {
      got2.push(f[14]!);
      if (pauseOnce) {
        pauseOnce = false;
        x.pauseRecv();
      }
    });
    await d.init(() => {});
    d.send(frame(1)); // copy 1 delivered, copy 2 queued (paused)
    d.send(frame(2)); // c is paused now: waits in c
    expect(got2).toEqual([1]);
    x.resumeRecv();
    expect(got2).toEqual([1, 1, 2, 2]);
    expect(x.stats().drops).toEqual({});
    expect(x.stats().extra).toEqual({ doubled: 1 });
  });

  it('pauses the inner backend when its own pull FIFO fills, and resumes when drained', async () => {
    const [a, b] = pair({ queueFrames: 100 });
    const w = new Doubler(a, { rxQueueFrames: 4 });
    await w.init(null);
    await b.init(() => {});
    for (let i = 0; i < 5; i++) b.send(frame(i)); // 10 copies, room for 4
    expect(w.stats().drops).toEqual({});
    const buf = new Uint8Array(64);
    const seen: number[] = [];
    for (let n; (n = w.recv(buf)) > 0; ) seen.push(buf[14]!);
    expect(seen).toEqual([0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
  });
});
