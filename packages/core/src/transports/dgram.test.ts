import { describe, it, expect, afterEach } from 'vitest';
import dgram from 'node:dgram';
import { attachDgram } from './dgram.ts';
import { pair } from '../pair.ts';

const frame = (n: number, len = 64): Uint8Array => {
  const f = new Uint8Array(len);
  f[12] = 0x08;
  f[14] = n;
  return f;
};

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function udp(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  cleanups.push(() => {
    try {
      s.close();
    } catch {
      /* closed by the test */
    }
  });
  return s;
}

const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 2));
  }
};

describe('attachDgram', () => {
  it('learns the peer from the first datagram and carries one frame per datagram both ways', async () => {
    const [a, b] = pair();
    const local = await udp();
    const vmm = await udp();
    const att = await attachDgram(local, 'learn', a);
    cleanups.push(() => att.close());
    const atB: number[] = [];
    await b.init((f) => atB.push(f[14]!));
    const atVmm: number[] = [];
    vmm.on('message', (m) => atVmm.push(m[14]!));

    b.send(frame(9)); // nobody to send to yet
    expect(att.counters.noPeer).toBe(1);

    const port = local.address().port;
    vmm.send(frame(1), port, '127.0.0.1');
    await until(() => atB.length === 1);
    expect(att.peer).toEqual({ address: '127.0.0.1', port: vmm.address().port });
    b.send(frame(2));
    b.send(frame(3, 1514));
    await until(() => atVmm.length === 2);
    expect(atVmm).toEqual([2, 3]);
    expect(att.counters).toMatchObject({ framesIn: 1, bytesIn: 64, framesOut: 2, bytesOut: 64 + 1514 });
  });

  it('drops oversize datagrams and counts them', async () => {
    const [a, b] = pair();
    const local = await udp();
    const vmm = await udp();
    const att = await attachDgram(local, { address: '127.0.0.1', port: vmm.address().port }, a, { maxFrameLen: 1518 });
    cleanups.push(() => att.close());
    const atB: number[] = [];
    await b.init((f) => atB.push(f[14]!));
    const port = local.address().port;
    vmm.send(frame(1, 1519), port, '127.0.0.1');
    vmm.send(frame(2, 1518), port, '127.0.0.1');
    await until(() => atB.length === 1);
    expect(atB).toEqual([2]);
    expect(att.counters.oversize).toBe(1);
  });

  it('drops datagrams from anyone but the configured remote', async () => {
    const [a, b] = pair();
    const local = await udp();
    const vmm = await udp();
    const stranger = await udp();
    const att = await attachDgram(local, { address: '127.0.0.1', port: vmm.address().port }, a);
    cleanups.push(() => att.close());
    const atB: number[] = [];
    await b.init((f) => atB.push(f[14]!));
    const port = local.address().port;
    stranger.send(frame(7), port, '127.0.0.1');
    await until(() => att.counters.foreign === 1);
    vmm.send(frame(8), port, '127.0.0.1');
    await until(() => atB.length === 1);
    expect(atB).toEqual([8]);
  });

  it('closes the socket and the backend on close()', async () => {
    const [a, b] = pair();
    const local = await udp();
    const att = await attachDgram(local, 'learn', a);
    await b.init(() => {});
    await att.close();
    expect((await att.done).reason).toBe('closed');
    expect(b.send(frame(1))).toBe('dropped');
    expect(b.stats().drops).toEqual({ 'peer-closed': 1 });
    expect(() => local.address()).toThrow();
  });
});
