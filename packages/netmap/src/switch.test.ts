import { describe, it, expect, afterEach } from 'vitest';
import { pair, Verdict } from '@guestnet/core';
import { ValeSwitch } from './switch.ts';
import { formatPortRegion, openPortRegion, portRegionBytes, type RingGeometry } from './ring.ts';
import { portDoorbells, switchDoorbells } from './doorbell.ts';
import { NetmapPortBackend } from './port-backend.ts';
import { BROADCAST, checkFrame, mac, recorder, testFrame, until } from './testing.ts';

const SMALL: RingGeometry = { slots: 64, bufSize: 2048 };
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0)) await f();
});

function newSwitch(opts: ConstructorParameters<typeof ValeSwitch>[1] = {}): ValeSwitch {
  const sw = new ValeSwitch('vale-test', opts);
  cleanup.push(() => sw.close());
  return sw;
}

/** Attach a port region to `sw` and return the guest side's backend (not yet initialised). */
function port(sw: ValeSwitch, n: number, g: RingGeometry = SMALL): NetmapPortBackend {
  const mem = new SharedArrayBuffer(portRegionBytes(g));
  formatPortRegion(mem, g);
  const swView = openPortRegion(mem, 0, 'switch');
  sw.attachRegion(n, swView, switchDoorbells(swView));
  const view = openPortRegion(mem, 0, 'port');
  const be = new NetmapPortBackend(view, portDoorbells(view), { keepAlive: false });
  cleanup.push(() => be.close());
  return be;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

describe('ValeSwitch learning and flooding', () => {
  it('floods an unknown unicast frame to every other port, never back out of the ingress port', async () => {
    const sw = newSwitch();
    const [a, b, c] = [port(sw, 1), port(sw, 2), port(sw, 3)];
    const [ra, rb, rc] = await Promise.all([recorder(a), recorder(b), recorder(c)]);
    expect(a.send(testFrame(mac(9), mac(1), 60, 7))).toBe(Verdict.Delivered);
    await until(() => rb.frames.length === 1 && rc.frames.length === 1);
    await settle();
    expect(ra.frames).toHaveLength(0);
    expect(checkFrame(rb.frames[0]!)).toBe(7);
    expect(sw.portStats(1)).toMatchObject({ rxFrames: 1, rxBytes: 60, txFrames: 0 });
    expect(sw.portStats(2)).toMatchObject({ txFrames: 1, txBytes: 60 });
  });

  it('learns source MACs so a reply goes only to the port that sent', async () => {
    const sw = newSwitch();
    const [a, b, c] = [port(sw, 1), port(sw, 2), port(sw, 3)];
    const [ra, rb, rc] = await Promise.all([recorder(a), recorder(b), recorder(c)]);
    a.send(testFrame(mac(2), mac(1), 60, 1)); // unknown: flooded, A learnt
    await until(() => rb.frames.length === 1 && rc.frames.length === 1);
    b.send(testFrame(mac(1), mac(2), 60, 2)); // known: only to A, B learnt
    await until(() => ra.frames.length === 1);
    a.send(testFrame(mac(2), mac(1), 60, 3)); // known: only to B
    await until(() => rb.frames.length === 2);
    await settle();
    expect(rc.frames).toHaveLength(1);
    expect(checkFrame(rb.frames[1]!)).toBe(3);
    expect(sw.stats().macs).toBe(2);
  });

  it('floods broadcast and multicast even when every MAC is known', async () => {
    const sw = newSwitch();
    const [a, b, c] = [port(sw, 1), port(sw, 2), port(sw, 3)];
    const [, rb, rc] = await Promise.all([recorder(a), recorder(b), recorder(c)]);
    b.send(testFrame(BROADCAST, mac(2), 60, 0));
    c.send(testFrame(BROADCAST, mac(3), 60, 0));
    await settle();
    a.send(testFrame(BROADCAST, mac(1), 60, 1));
    a.send(testFrame(Uint8Array.of(0x01, 0x00, 0x5e, 0, 0, 1), mac(1), 60, 2));
    await until(() => rb.frames.length === 3 && rc.frames.length === 3);
    expect(rb.frames.slice(1).map((f) => checkFrame(f))).toEqual([1, 2]);
  });

  it('forgets a MAC after the aging time and floods again', async () => {
    let now = 0;
    const sw = newSwitch({ agingMs: 1000, now: () => now });
    const [a, b, c] = [port(sw, 1), port(sw, 2), port(sw, 3)];
    const [, rb, rc] = await Promise.all([recorder(a), recorder(b), recorder(c)]);
    b.send(testFrame(BROADCAST, mac(2), 60, 0));
    await until(() => rc.frames.length === 1);
    now = 999;
    a.send(testFrame(mac(2), mac(1), 60, 1));
    await until(() => rb.frames.length === 1);
    await settle();
    expect(rc.frames).toHaveLength(1);
    now = 2000;
    a.send(testFrame(mac(2), mac(1), 60, 2));
    await until(() => rb.frames.length === 2 && rc.frames.length === 2);
  });

  it('does not learn multicast source addresses', async () => {
    const sw = newSwitch();
    const [a, b] = [port(sw, 1), port(sw, 2)];
    const [, rb] = await Promise.all([recorder(a), recorder(b)]);
    a.send(testFrame(BROADCAST, Uint8Array.of(1, 2, 3, 4, 5, 6), 60, 0));
    await until(() => rb.frames.length === 1);
    expect(sw.stats().macs).toBe(0);
  });

  it('forgets the MACs of a detached port and floods to the others', async () => {
    const sw = newSwitch();
    const [a, b, c] = [port(sw, 1), port(sw, 2), port(sw, 3)];
    const [, rb, rc] = await Promise.all([recorder(a), recorder(b), recorder(c)]);
    b.send(testFrame(BROADCAST, mac(2), 60, 0));
    await until(() => rc.frames.length === 1);
    sw.detach(2);
    expect(sw.stats().macs).toBe(0);
    a.send(testFrame(mac(2), mac(1), 60, 5));
    await until(() => rc.frames.length === 2);
    expect(rb.frames).toHaveLength(0);
    expect(sw.has(2)).toBe(false);
  });
});

describe('ValeSwitch ports', () => {
  it('takes 254 ports numbered 0..253 and floods a broadcast to the 253 others', async () => {
    const sw = newSwitch();
    const g = { slots: 4, bufSize: 128 };
    const ports = Array.from({ length: 254 }, (_, i) => port(sw, i, g));
    const recs = await Promise.all(ports.map((p) => recorder(p)));
    expect(() => port(sw, 254, g)).toThrow(expect.objectContaining({ code: 'GUESTNET_BAD_CONFIG' }));
    expect(() => port(sw, -1, g)).toThrow(/0\.\.253/);
    expect(() => port(sw, 7, g)).toThrow(expect.objectContaining({ code: 'GUESTNET_EXISTS' }));
    expect(sw.freePort()).toBe(-1);
    ports[100]!.send(testFrame(BROADCAST, mac(100), 64, 1));
    await until(() => recs.every((r, i) => r.frames.length === (i === 100 ? 0 : 1)));
  });

  it('detaches a port whose guest side closes', async () => {
    const sw = newSwitch();
    const a = port(sw, 1);
    await recorder(a);
    await a.close();
    await a.close();
    await until(() => !sw.has(1));
    expect(a.send(testFrame(BROADCAST, mac(1), 60, 0))).toBe(Verdict.Dropped);
  });

  it('keeps forwarding between the others at full rate when one port never drains', async () => {
    const sw = newSwitch({ stallMs: 5 });
    const [a, b, slow] = [port(sw, 1), port(sw, 2), port(sw, 3, { slots: 16, bufSize: 2048 })];
    const [, rb] = await Promise.all([recorder(a), recorder(b)]);
    await slow.init(() => {});
    slow.pauseRecv(); // its guest stopped reading
    b.send(testFrame(BROADCAST, mac(2), 60, 0));
    slow.send(testFrame(BROADCAST, mac(3), 60, 0)); // learnt, so A → slow is unicast
    await settle();
    const N = 3000;
    let sent = 0;
    for (let i = 0; i < N; i++) {
      // Every 3rd frame to the slow port, every 10th broadcast, the rest to B.
      const dst = i % 10 === 0 ? BROADCAST : i % 3 === 0 ? mac(3) : mac(2);
      const f = testFrame(dst, mac(1), 60 + (i % 1400), i);
      let v = a.send(f);
      // `queued` took the frame; `dropped` (backpressure) did not: wait and send it again.
      while (v !== Verdict.Delivered) {
        await new Promise((r) => setTimeout(r, 1));
        v = v === Verdict.Queued ? Verdict.Delivered : a.send(f);
      }
      sent++;
    }
    const toB = Array.from({ length: N }, (_, i) => i).filter((i) => i % 10 === 0 || i % 3 !== 0);
    // B also got the slow port's learning broadcast (sequence 0) first.
    await until(() => rb.frames.length >= toB.length + 1, 10_000, 'frames at B');
    expect(rb.frames.map((f) => checkFrame(f))).toEqual([0, ...toB]);
    const slowStats = sw.portStats(3)!;
    expect(slowStats.drops['rx-ring-full']).toBeGreaterThan(0);
    expect(sw.portStats(2)!.drops['rx-ring-full'] ?? 0).toBe(0);
    expect(sent).toBe(N);
  });

  it('survives ports leaving in the middle of a stream', async () => {
    const sw = newSwitch();
    const [a, b, c] = [port(sw, 1), port(sw, 2), port(sw, 3)];
    const [, rb, rc] = await Promise.all([recorder(a), recorder(b), recorder(c)]);
    b.send(testFrame(BROADCAST, mac(2), 60, 0));
    await until(() => rc.frames.length === 1);
    for (let i = 1; i <= 400; i++) {
      if (i === 200) await b.close();
      const v = a.send(testFrame(mac(2), mac(1), 200, i));
      if (v !== Verdict.Delivered) await new Promise((r) => setTimeout(r, 1));
      if (i % 50 === 0) await settle();
    }
    await until(() => !sw.has(2));
    await settle();
    // Before B left its frames went to B only; afterwards B's MAC is unknown and floods to C.
    expect(rb.frames.length).toBeGreaterThan(0);
    expect(rb.frames.length).toBeLessThan(200);
    await until(() => rc.frames.length > 1);
    expect(rc.frames.every((f) => checkFrame(f) >= 0)).toBe(true);
  });

  it('converts between ports with and without a virtio-net header', async () => {
    const sw = newSwitch();
    const [a, b] = [port(sw, 1), port(sw, 2)];
    a.setCapabilities({ vnetHdrLen: 12 });
    const [ra, rb] = await Promise.all([recorder(a), recorder(b)]);
    a.send(testFrame(BROADCAST, mac(1), 60, 4, 12));
    await until(() => rb.frames.length === 1);
    expect(rb.frames[0]!.length).toBe(60);
    expect(checkFrame(rb.frames[0]!)).toBe(4);
    b.send(testFrame(BROADCAST, mac(2), 60, 5));
    await until(() => ra.frames.length === 1);
    expect(ra.frames[0]!.length).toBe(72);
    expect(checkFrame(ra.frames[0]!, 12)).toBe(5);
    // An offloaded frame (NEEDS_CSUM) cannot reach a port without a header.
    const f = testFrame(BROADCAST, mac(1), 60, 6, 12);
    f[0] = 1;
    a.send(f);
    await until(() => (sw.portStats(2)!.drops['vnet-mismatch'] ?? 0) === 1);
  });
});

describe('ValeSwitch uplink', () => {
  it('switches frames to and from any NetBackend (a pair() endpoint)', async () => {
    const sw = newSwitch();
    const [up, host] = pair();
    cleanup.push(() => host.close());
    await sw.attachBackend(0, up);
    const rhost = await recorder(host);
    const g1 = port(sw, 1);
    const r1 = await recorder(g1);
    g1.send(testFrame(BROADCAST, mac(1), 300, 1));
    await until(() => rhost.frames.length === 1);
    expect(checkFrame(rhost.frames[0]!)).toBe(1);
    host.send(testFrame(mac(1), mac(0x99), 1500, 2));
    await until(() => r1.frames.length === 1);
    expect(checkFrame(r1.frames[0]!)).toBe(2);
    expect(sw.portStats(0)).toMatchObject({ kind: 'backend', rxFrames: 1, txFrames: 1 });
    sw.detach(0);
    expect(up.send(new Uint8Array(60))).toBe(Verdict.Dropped); // closed with the port
  });
});
