import { describe, it, expect } from 'vitest';
import { connectBackends, negotiateVnet } from './connect.ts';
import { pair } from './pair.ts';
import { BaseBackend, type BaseBackendOptions } from './base-backend.ts';
import { type Offloads, type VnetHdrLen, Verdict } from './backend.ts';
import { GuestnetError } from './errors.ts';

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

/** A scriptable backend: records what it is sent, emits on demand, answers a chosen verdict. */
class FakeBackend extends BaseBackend {
  readonly type: string;
  readonly sent: number[] = [];
  verdict: Verdict = Verdict.Delivered;
  initError: Error | null = null;
  initGate: Promise<void> = Promise.resolve();
  closes = 0;
  /** Offloads to refuse at setCapabilities time (a kernel lacking one). */
  refuse: Partial<Offloads> = {};

  constructor(type: string, opts: BaseBackendOptions = {}) {
    super(opts);
    this.type = type;
  }
  protected async onInit(): Promise<void> {
    await this.initGate;
    if (this.initError) throw this.initError;
  }
  protected onSend(f: Uint8Array): Verdict {
    this.sent.push(id(f.subarray(this.caps.vnetHdrLen)));
    return this.verdict;
  }
  protected async onClose(): Promise<void> {
    this.closes++;
  }
  override setCapabilities(req: Parameters<BaseBackend['setCapabilities']>[0]) {
    const off = req.offloads ? { ...req.offloads } : undefined;
    if (off) for (const k of Object.keys(this.refuse) as (keyof Offloads)[]) if (this.refuse[k]) off[k] = false;
    return super.setCapabilities({ ...req, ...(off ? { offloads: off } : {}) });
  }
  emit(f: Uint8Array): boolean {
    return this.deliver(f);
  }
  fireDrain(): void {
    this.events.drain?.();
  }
  fireError(e: Error): void {
    this.events.error?.(e);
  }
  get isPaused(): boolean {
    return this.paused;
  }
}

const vnet = (lens: VnetHdrLen[], off: Partial<Offloads> = { csum: true, tso4: true, tso6: true }): BaseBackendOptions => ({
  supportedVnetHdrLens: lens,
  supportedOffloads: off,
});

async function cable() {
  // guestA <-pair-> a <=connect=> b <-pair-> guestB
  const [guestA, a] = pair();
  const [b, guestB] = pair();
  const gotA: number[] = [];
  const gotB: number[] = [];
  await guestA.init((f) => gotA.push(id(f)));
  await guestB.init((f) => gotB.push(id(f)));
  const conn = await connectBackends(a, b);
  return { guestA, guestB, a, b, gotA, gotB, conn };
}

describe('connectBackends', () => {
  it('forwards frames both ways between two pairs and counts them per direction', async () => {
    const { guestA, guestB, gotA, gotB, conn } = await cable();
    for (let i = 0; i < 5; i++) expect(guestA.send(frame(i))).toBe(Verdict.Delivered);
    expect(guestB.send(frame(100, 80))).toBe(Verdict.Delivered);
    expect(gotB).toEqual([0, 1, 2, 3, 4]);
    expect(gotA).toEqual([100]);
    const s = conn.stats();
    expect(s.aToB).toMatchObject({ frames: 5, bytes: 300, dropped: 0, pauses: 0 });
    expect(s.bToA).toMatchObject({ frames: 1, bytes: 80 });
    expect(s.vnetHdrLen).toBe(0);
    expect(s.a.rxFrames).toBe(5);
    expect(s.b.txFrames).toBe(5);
    await conn.close();
  });

  it('keeps a long ping-pong between the far ends bounded in stack depth', async () => {
    const [guestA, a] = pair();
    const [b, guestB] = pair();
    let n = 0;
    await guestA.init((f) => {
      if (++n < 50_000) guestA.send(f);
    });
    await guestB.init((f) => {
      if (++n < 50_000) guestB.send(f);
    });
    const conn = await connectBackends(a, b);
    guestA.send(frame(1));
    await new Promise((r) => setTimeout(r, 10));
    expect(n).toBe(50_000);
    await conn.close();
  });

  it('pauses the source on Queued and resumes it on drain, losing and reordering nothing', async () => {
    const [guestA, a] = pair();
    const [b, guestB] = pair({ queueFrames: 4 });
    const gotB: number[] = [];
    await guestA.init(() => {});
    await guestB.init((f) => gotB.push(id(f)));
    const conn = await connectBackends(a, b);
    guestB.pauseRecv(); // the far guest stops taking frames: b's link fills after 4
    for (let i = 0; i < 10; i++) guestA.send(frame(i));
    expect(gotB).toEqual([]);
    let s = conn.stats();
    expect(s.aToB.pauses).toBe(1);
    expect(s.aToB.frames).toBe(4); // the rest wait inside a, which is paused
    expect(s.b.drops.backpressure ?? 0).toBe(0);
    guestB.resumeRecv(); // b drains → a resumes → a flushes what it held
    expect(gotB).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    s = conn.stats();
    expect(s.aToB.frames).toBe(10);
    expect(s.aToB.dropped).toBe(0);
    await conn.close();
  });

  it('resumes the other side when a fake destination raises drain', async () => {
    const a = new FakeBackend('fa');
    const b = new FakeBackend('fb');
    const conn = await connectBackends(a, b);
    b.verdict = Verdict.Queued;
    a.emit(frame(1));
    expect(a.isPaused).toBe(true);
    a.emit(frame(2)); // held by a while paused
    expect(b.sent).toEqual([1]);
    b.verdict = Verdict.Delivered;
    b.fireDrain();
    expect(a.isPaused).toBe(false);
    expect(b.sent).toEqual([1, 2]);
    // The other direction the same way.
    a.verdict = Verdict.Queued;
    b.emit(frame(3));
    expect(b.isPaused).toBe(true);
    a.fireDrain();
    expect(b.isPaused).toBe(false);
    expect(conn.stats().bToA.pauses).toBe(1);
    await conn.close();
  });

  it('counts frames the destination dropped', async () => {
    const a = new FakeBackend('fa');
    const b = new FakeBackend('fb');
    const conn = await connectBackends(a, b);
    b.verdict = Verdict.Dropped;
    a.emit(frame(1));
    expect(conn.stats().aToB).toMatchObject({ frames: 1, dropped: 1, pauses: 0 });
    expect(a.isPaused).toBe(false);
    await conn.close();
  });

  it('negotiates a 12-byte header and the shared offloads on both ends', async () => {
    const a = new FakeBackend('tapish', vnet([10, 12], { csum: true, tso4: true, tso6: true, ufo: true }));
    const b = new FakeBackend('slirpish', vnet([10, 12], { csum: true, tso4: true, tso6: true }));
    const conn = await connectBackends(a, b);
    const want = { csum: true, tso4: true, tso6: true, ecn: false, ufo: false };
    expect(a.capabilities()).toMatchObject({ vnetHdrLen: 12, offloads: want });
    expect(b.capabilities()).toMatchObject({ vnetHdrLen: 12, offloads: want });
    expect(conn.stats()).toMatchObject({ vnetHdrLen: 12, offloads: want });
    // Frames go through untouched, header included.
    const f = new Uint8Array(12 + 60);
    f.set(frame(7), 12);
    a.emit(f);
    expect(b.sent).toEqual([7]);
    await conn.close();
  });

  it('falls back to a 10-byte header when one side speaks only that', async () => {
    const a = new FakeBackend('a', vnet([10]));
    const b = new FakeBackend('b', vnet([10, 12], { csum: true, tso4: true }));
    expect(negotiateVnet(a, b)).toEqual({ vnetHdrLen: 10, offloads: { csum: true, tso4: true, tso6: false, ecn: false, ufo: false } });
    const conn = await connectBackends(a, b);
    expect(a.capabilities().vnetHdrLen).toBe(10);
    expect(b.capabilities().vnetHdrLen).toBe(10);
    await conn.close();
  });

  it('runs plain frames when one side has no virtio-net header', async () => {
    const [, a] = pair();
    const b = new FakeBackend('b', vnet([10, 12]));
    const conn = await connectBackends(a, b);
    expect(b.capabilities()).toMatchObject({ vnetHdrLen: 0, offloads: { csum: false, tso4: false, tso6: false } });
    expect(conn.stats().vnetHdrLen).toBe(0);
    await conn.close();
  });

  it('runs plain frames when the headers match but no offload is shared', async () => {
    const a = new FakeBackend('a', vnet([12], { csum: true }));
    const b = new FakeBackend('b', vnet([12], { tso4: true }));
    const conn = await connectBackends(a, b);
    expect(a.capabilities().vnetHdrLen).toBe(0);
    expect(b.capabilities().vnetHdrLen).toBe(0);
    await conn.close();
  });

  it('never grants TSO without checksum offload', () => {
    const a = new FakeBackend('a', vnet([12], { csum: false, tso4: true, tso6: true }));
    const b = new FakeBackend('b', vnet([12], { csum: true, tso4: true, tso6: true }));
    expect(negotiateVnet(a, b).vnetHdrLen).toBe(0);
  });

  it('settles on what both granted when one side refuses a declared offload', async () => {
    const a = new FakeBackend('a', vnet([12]));
    a.refuse = { tso6: true };
    const b = new FakeBackend('b', vnet([12]));
    const conn = await connectBackends(a, b);
    const want = { csum: true, tso4: true, tso6: false, ecn: false, ufo: false };
    expect(a.capabilities().offloads).toEqual(want);
    expect(b.capabilities().offloads).toEqual(want);
    expect(conn.stats().offloads).toEqual(want);
    await conn.close();
  });

  it("keeps plain frames with vnetHdr 'off' even when both could offload", async () => {
    const a = new FakeBackend('a', vnet([12]));
    const b = new FakeBackend('b', vnet([12]));
    const conn = await connectBackends(a, b, { vnetHdr: 'off' });
    expect(a.capabilities().vnetHdrLen).toBe(0);
    expect(b.capabilities().vnetHdrLen).toBe(0);
    await conn.close();
  });

  it("rejects vnetHdr 'on' without a common header and leaves both closed", async () => {
    const a = new FakeBackend('a', vnet([12]));
    const b = new FakeBackend('b');
    const err = await connectBackends(a, b, { vnetHdr: 'on' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GuestnetError);
    expect((err as GuestnetError).code).toBe('GUESTNET_UNSUPPORTED');
    expect(a.send(frame(1))).toBe(Verdict.Dropped);
    expect(a.stats().drops.closed).toBe(1);
  });

  it('closes the other backend and rejects when one init fails', async () => {
    const a = new FakeBackend('a');
    const b = new FakeBackend('b');
    b.initError = new GuestnetError('GUESTNET_ADDR_IN_USE', 'port taken');
    await expect(connectBackends(a, b)).rejects.toThrow('port taken');
    expect(a.closes).toBe(1);
    expect(a.send(frame(1))).toBe(Verdict.Dropped);
  });

  it('drops frames that arrive before the other end is ready, counted not-ready', async () => {
    const a = new FakeBackend('a');
    const b = new FakeBackend('b');
    let open!: () => void;
    b.initGate = new Promise((r) => (open = r));
    const pending = connectBackends(a, b);
    await new Promise((r) => setTimeout(r, 0)); // a is running, b is still starting
    a.emit(frame(1));
    open();
    const conn = await pending;
    a.emit(frame(2));
    expect(b.sent).toEqual([2]);
    expect(conn.stats().aToB).toMatchObject({ notReady: 1, frames: 1 });
    await conn.close();
  });

  it('reports asynchronous backend errors with the side they came from', async () => {
    const a = new FakeBackend('a');
    const b = new FakeBackend('b');
    const seen: string[] = [];
    const conn = await connectBackends(a, b, { onError: (e, side) => seen.push(`${side}:${e.message}`) });
    b.fireError(new Error('device gone'));
    expect(seen).toEqual(['b:device gone']);
    await conn.close();
  });

  it('closes both backends once, however often close is called', async () => {
    const a = new FakeBackend('a');
    const b = new FakeBackend('b');
    const conn = await connectBackends(a, b);
    await Promise.all([conn.close(), conn.close()]);
    await conn.close();
    expect(a.closes).toBe(1);
    expect(b.closes).toBe(1);
    expect(a.emit(frame(1))).toBe(false);
    expect(b.sent).toEqual([]);
  });
});
