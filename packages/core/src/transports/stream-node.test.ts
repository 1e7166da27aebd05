import { describe, it, expect, afterEach } from 'vitest';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { attachStream, type StreamAttachment } from './stream-node.ts';
import { StreamFrameDecoder, encodeStreamFrame } from './stream.ts';
import { pair } from '../pair.ts';
import { Verdict } from '../backend.ts';

const frame = (n: number, len = 64): Uint8Array => {
  const f = new Uint8Array(len);
  f[12] = 0x08;
  f[14] = n & 0xff;
  f[15] = (n >> 8) & 0xff;
  f[len - 1] = 0x5a;
  return f;
};
const id = (f: Uint8Array): number => f[14]! | (f[15]! << 8);

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A "VMM" client on one side of a real socket, a pair() end attached on the other. */
async function setup(where: 'tcp' | 'unix', opts: Parameters<typeof pair>[0] = {}) {
  const [a, b] = pair(opts);
  let attachment!: Promise<StreamAttachment>;
  const server = net.createServer((sock) => {
    attachment = attachStream(sock, a);
  });
  const sockPath = path.join(os.tmpdir(), `guestnet-stream-${process.pid}-${Math.random().toString(36).slice(2)}.sock`);
  await new Promise<void>((r) => (where === 'tcp' ? server.listen(0, '127.0.0.1', r) : server.listen(sockPath, r)));
  cleanups.push(() => new Promise((r) => server.close(r)));
  const addr = server.address();
  const client = where === 'tcp' ? net.connect((addr as net.AddressInfo).port, '127.0.0.1') : net.connect(sockPath);
  cleanups.push(() => client.destroy());
  await new Promise<void>((r) => client.once('connect', r));
  while (!attachment) await new Promise((r) => setTimeout(r, 1));
  const att = await attachment;
  cleanups.push(() => att.close());
  const fromStream: Uint8Array[] = [];
  const dec = new StreamFrameDecoder((f) => fromStream.push(f.slice()), () => {});
  client.on('data', (c: Buffer) => dec.push(c));
  return { a, b, client, att, fromStream };
}

const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 2));
  }
};

describe('attachStream', () => {
  for (const where of ['tcp', 'unix'] as const) {
    it(`carries frames both ways over a ${where} socket`, async () => {
      const { b, client, att, fromStream } = await setup(where);
      const atB: number[] = [];
      await b.init((f) => {
        atB.push(id(f));
        b.send(frame(id(f) + 1000, f.length)); // echo back, shifted
      });
      // Two frames in one write, the third split across writes.
      client.write(Buffer.concat([encodeStreamFrame(frame(1)), encodeStreamFrame(frame(2, 1514))]));
      const third = encodeStreamFrame(frame(3, 100));
      client.write(third.subarray(0, 3));
      await new Promise((r) => setTimeout(r, 10));
      client.write(third.subarray(3));
      await until(() => fromStream.length === 3);
      expect(atB).toEqual([1, 2, 3]);
      expect(fromStream.map(id)).toEqual([1001, 1002, 1003]);
      expect(fromStream.map((f) => f.length)).toEqual([64, 1514, 100]);
      expect(att.counters).toMatchObject({ framesIn: 3, framesOut: 3, bytesIn: 64 + 1514 + 100 });
    });
  }

  it('pauses the socket while the backend is full and loses nothing', async () => {
    const { b, client, att } = await setup('tcp', { queueFrames: 8 });
    const atB: number[] = [];
    await b.init((f) => atB.push(id(f)));
    b.pauseRecv();
    const N = 200;
    client.write(Buffer.concat(Array.from({ length: N }, (_, i) => encodeStreamFrame(frame(i)))));
    await until(() => att.counters.txPauses > 0);
    expect(att.counters.framesIn).toBe(8); // stopped at the Queued verdict
    // Let the guest side drain, a few frames at a time.
    while (atB.length < N) {
      b.resumeRecv();
      b.pauseRecv();
      await new Promise((r) => setTimeout(r, 1));
    }
    b.resumeRecv();
    expect(atB).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(b.stats().drops).toEqual({});
    expect(att.counters.framesIn).toBe(N);
  });

  it('pauses the backend while the socket is full and resumes on drain', async () => {
    const { b, client, att, fromStream } = await setup('tcp', { queueFrames: 64 });
    const N = 3000;
    let sent = 0;
    let done!: () => void;
    const allSent = new Promise<void>((r) => (done = r));
    // The guest-side sender honours Queued/drain as a VMM would.
    const pump = (): void => {
      while (sent < N) {
        const v = b.send(frame(sent, 1514));
        if (v === Verdict.Dropped) throw new Error('dropped');
        sent++;
        if (v === Verdict.Queued) return;
      }
      done();
    };
    await b.init(() => {}, { drain: pump });
    client.pause(); // the VMM stops reading
    pump();
    await until(() => att.counters.rxPauses > 0);
    const before = fromStream.length;
    expect(before).toBe(0);
    expect(sent).toBeLessThan(N);
    client.resume();
    await allSent;
    await until(() => fromStream.length === N, 15000);
    expect(fromStream.map(id)).toEqual(Array.from({ length: N }, (_, i) => i & 0xffff));
    expect(b.stats().drops).toEqual({});
  });

  it('ends with reason protocol and closes the backend on a bad length', async () => {
    const { a, b, client, att } = await setup('tcp');
    await b.init(() => {});
    const closed = new Promise((r) => client.once('close', r));
    client.write(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 1, 2, 3));
    const end = await att.done;
    expect(end.reason).toBe('protocol');
    expect(end.error?.message).toMatch(/frame length/);
    await closed;
    expect(b.send(frame(1))).toBe(Verdict.Dropped);
    expect(b.stats().drops).toEqual({ 'peer-closed': 1 });
    expect(a.send(frame(1))).toBe(Verdict.Dropped);
  });

  it('ends with reason end when the VMM closes its side', async () => {
    const { b, client, att } = await setup('unix');
    await b.init(() => {});
    client.end();
    expect((await att.done).reason).toBe('end');
    expect(b.send(frame(1))).toBe(Verdict.Dropped);
  });
});
