import { describe, it, expect, afterEach } from 'vitest';
import { createBackend, registerBackend, unregisterBackend, Verdict, type NetBackend } from '@guestnet/core';
import { createPipe } from './pipe.ts';
import { descriptor } from './index.ts';
import { getLocalSwitch, localSwitchNames, parseValePortName } from './local.ts';
import { BROADCAST, checkFrame, mac, recorder, testFrame, until } from './testing.ts';

const open: NetBackend[] = [];
afterEach(async () => {
  for (const b of open.splice(0)) await b.close();
});
function track<T extends NetBackend>(b: T): T {
  open.push(b);
  return b;
}

describe('NetmapPortBackend over a pipe', () => {
  it('answers queued when the ring runs short, takes the frame, and raises drain once the reader frees space', async () => {
    const [m, s] = createPipe({ slots: 8, bufSize: 2048 }, { keepAlive: false });
    track(m);
    track(s);
    let drains = 0;
    await m.init(() => {}, { drain: () => drains++ });
    await s.init(null);
    const verdicts: string[] = [];
    for (let i = 0; i < 7; i++) verdicts.push(m.send(testFrame(mac(2), mac(1), 100, i)));
    // 7 usable slots; MTU 1500 frames need 1 slot of reserve: the 7th frame leaves none.
    expect(verdicts.slice(0, 6)).toEqual(Array(6).fill(Verdict.Delivered));
    expect(verdicts[6]).toBe(Verdict.Queued);
    expect(m.send(testFrame(mac(2), mac(1), 100, 99))).toBe(Verdict.Dropped);
    expect(m.stats().drops.backpressure).toBe(1);
    await until(() => s.peekRecvLen() === 100);
    const buf = new Uint8Array(2048);
    for (let i = 0; i < 7; i++) {
      expect(s.recv(buf)).toBe(100);
      expect(checkFrame(buf.subarray(0, 100))).toBe(i);
    }
    expect(s.recv(buf)).toBe(0);
    await until(() => drains === 1);
    expect(m.send(testFrame(mac(2), mac(1), 100, 7))).toBe(Verdict.Delivered);
  });

  it('pull mode: raises readable, reports the next length and drops a frame too long for the buffer', async () => {
    const [m, s] = createPipe({ slots: 16, bufSize: 256 }, { keepAlive: false });
    track(m);
    track(s);
    let readable = 0;
    await m.init(() => {});
    await s.init(null, { readable: () => readable++ });
    expect(s.peekRecvLen()).toBe(0);
    m.send(testFrame(BROADCAST, mac(1), 1000, 1)); // 4 slots with NS_MOREFRAG
    m.send(testFrame(BROADCAST, mac(1), 60, 2));
    await until(() => readable >= 1);
    expect(s.peekRecvLen()).toBe(1000);
    expect(s.recv(new Uint8Array(500))).toBe(-1);
    expect(s.stats().drops['rx-truncated']).toBe(1);
    const buf = new Uint8Array(2000);
    expect(s.recv(buf)).toBe(60);
    expect(checkFrame(buf.subarray(0, 60))).toBe(2);
    expect(s.stats()).toMatchObject({ rxFrames: 1, rxBytes: 60 });
  });

  it('push mode: delivers in order both ways, and holds frames in the ring while paused', async () => {
    const [m, s] = createPipe({ slots: 64, bufSize: 2048 }, { keepAlive: false });
    track(m);
    track(s);
    const [rm, rs] = await Promise.all([recorder(m), recorder(s)]);
    s.pauseRecv();
    for (let i = 0; i < 10; i++) m.send(testFrame(mac(2), mac(1), 60 + i * 300, i));
    s.send(testFrame(mac(1), mac(2), 70, 100));
    await until(() => rm.frames.length === 1);
    expect(checkFrame(rm.frames[0]!)).toBe(100);
    await new Promise((r) => setTimeout(r, 5));
    expect(rs.frames).toHaveLength(0);
    s.resumeRecv();
    await until(() => rs.frames.length === 10);
    expect(rs.frames.map((f) => checkFrame(f))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(rs.frames.map((f) => f.length)).toEqual(Array.from({ length: 10 }, (_, i) => 60 + i * 300));
  });

  it('carries a 65535-byte frame with a 12-byte virtio-net header', async () => {
    const [m, s] = createPipe({ slots: 64, bufSize: 2048 }, { keepAlive: false });
    track(m);
    track(s);
    for (const b of [m, s]) b.setCapabilities({ vnetHdrLen: 12, mtu: 65535, offloads: { tso4: true, csum: true } });
    expect(m.capabilities()).toMatchObject({ vnetHdrLen: 12, mtu: 65535, maxFrameLen: 65535 + 14 + 12 });
    const rs = await recorder(s);
    await m.init(() => {});
    const f = testFrame(mac(2), mac(1), 65535, 42, 12);
    expect(m.send(f)).not.toBe(Verdict.Dropped);
    await until(() => rs.frames.length === 1);
    expect(rs.frames[0]!.length).toBe(65535 + 12);
    expect(checkFrame(rs.frames[0]!, 12)).toBe(42);
  });

  it('drops runts and oversized frames with a reason, and closes idempotently', async () => {
    const [m, s] = createPipe({ slots: 8, bufSize: 2048 }, { keepAlive: false });
    track(s);
    await m.init(() => {});
    expect(m.send(new Uint8Array(10))).toBe(Verdict.Dropped);
    expect(m.send(new Uint8Array(70_000))).toBe(Verdict.Dropped);
    expect(m.stats().drops).toMatchObject({ runt: 1, 'too-big': 1 });
    await m.close();
    await m.close();
    expect(m.send(new Uint8Array(60))).toBe(Verdict.Dropped);
    expect(m.stats().drops.closed).toBe(1);
  });
});

describe('createBackend(netmap config strings)', () => {
  it('parses VALE port names: numbers 0..253 or names', () => {
    expect(parseValePortName('vale0:1')).toEqual({ switchName: 'vale0', port: 1 });
    expect(parseValePortName('vale-lab:uplink')).toEqual({ switchName: 'vale-lab', port: 'uplink' });
    expect(parseValePortName('eth0')).toBeNull();
    expect(() => parseValePortName('vale0:254')).toThrow(/0\.\.253/);
  });

  it('joins an in-process switch on demand for vale0:1 and netmap:vale0:2, and drops it with its last port', async () => {
    registerBackend(descriptor);
    try {
      const a = track(await createBackend('vale-cb:1,attach=local,slots=64'));
      const b = track(await createBackend('netmap:vale-cb:2,attach=local'));
      const c = track(await createBackend('backend=netmap,port=vale-cb:named,attach=local'));
      const [ra, rb, rc] = await Promise.all([recorder(a), recorder(b), recorder(c)]);
      expect(localSwitchNames()).toContain('vale-cb');
      expect(getLocalSwitch('vale-cb')!.switch.has(0)).toBe(true); // "named" took the lowest free port
      a.send(testFrame(BROADCAST, mac(1), 60, 1));
      await until(() => rb.frames.length === 1 && rc.frames.length === 1);
      expect(ra.frames).toHaveLength(0);
      await a.close();
      await b.close();
      await c.close();
      expect(getLocalSwitch('vale-cb')).toBeUndefined();
    } finally {
      unregisterBackend('netmap');
    }
  });

  it('connects pipe0{1 to pipe0}1', async () => {
    registerBackend(descriptor);
    try {
      const m = track(await createBackend('pipe-cb{1'));
      const s = track(await createBackend('pipe-cb}1'));
      const [rm, rs] = await Promise.all([recorder(m), recorder(s)]);
      m.send(testFrame(mac(2), mac(1), 60, 5));
      s.send(testFrame(mac(1), mac(2), 61, 6));
      await until(() => rm.frames.length === 1 && rs.frames.length === 1);
      expect(checkFrame(rs.frames[0]!)).toBe(5);
      expect(checkFrame(rm.frames[0]!)).toBe(6);
      const again = await createBackend('pipe-cb{1');
      await expect(again.init(() => {})).rejects.toMatchObject({ code: 'GUESTNET_EXISTS' });
    } finally {
      unregisterBackend('netmap');
    }
  });

  it('rejects names that are neither VALE ports nor pipes', async () => {
    registerBackend(descriptor);
    try {
      await expect(createBackend('netmap:eth0')).rejects.toMatchObject({ code: 'GUESTNET_BAD_CONFIG' });
      await expect(createBackend('vale0:300')).rejects.toThrow(/0\.\.253/);
    } finally {
      unregisterBackend('netmap');
    }
  });
});
