import { describe, it, expect } from 'vitest';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withPcap } from './pcap.ts';
import { pair } from '../pair.ts';
import { BaseBackend } from '../base-backend.ts';
import { Verdict } from '../backend.ts';

/** Returns each EPB as [epb_flags direction, frame bytes]; checks block framing on the way. */
function packets(file: Uint8Array): [number, number[]][] {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const out: [number, number[]][] = [];
  expect(dv.getUint32(0, true)).toBe(0x0a0d0d0a);
  for (let o = 0; o < file.length; ) {
    const type = dv.getUint32(o, true);
    const len = dv.getUint32(o + 4, true);
    expect(dv.getUint32(o + len - 4, true)).toBe(len);
    if (type === 6) {
      const cap = dv.getUint32(o + 20, true);
      const optAt = o + 28 + ((cap + 3) & ~3);
      expect(dv.getUint16(optAt, true)).toBe(2); // epb_flags
      out.push([dv.getUint32(optAt + 4, true), Array.from(file.subarray(o + 28, o + 28 + cap))]);
    }
    o += len;
  }
  return out;
}

const concat = (chunks: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
};

const frame = (n: number, len = 60): Uint8Array => {
  const f = new Uint8Array(len);
  f[14] = n;
  return f;
};

/** Answers every frame with a copy whose byte 14 is +100; speaks a 12-byte vnet header. */
class EchoBackend extends BaseBackend {
  readonly type = 'echo';
  constructor() {
    super({ supportedVnetHdrLens: [12] });
  }
  protected async onInit(): Promise<void> {}
  protected onSend(f: Uint8Array): Verdict {
    const r = f.slice();
    r[this.caps.vnetHdrLen + 14] = r[this.caps.vnetHdrLen + 14]! + 100;
    this.deliver(r);
    return Verdict.Delivered;
  }
  protected async onClose(): Promise<void> {}
}

describe('withPcap', () => {
  it('records tx as outbound and rx as inbound, request before the reply it causes', async () => {
    const chunks: Uint8Array[] = [];
    const be = withPcap(new EchoBackend(), (c) => chunks.push(c), { now: () => 0 });
    const got: number[] = [];
    await be.init((f) => got.push(f[14]!));
    be.send(frame(1));
    be.send(frame(2));
    expect(got).toEqual([101, 102]);
    expect(be.packets).toBe(4);
    await be.close();
    const p = packets(concat(chunks));
    expect(p.map(([dir, f]) => [dir, f[14]])).toEqual([
      [2, 1],
      [1, 101],
      [2, 2],
      [1, 102],
    ]);
    expect(be.stats().extra).toMatchObject({ 'pcap-packets': 4, 'pcap-write-errors': 0 });
  });

  it('strips a negotiated virtio-net header so the file holds Ethernet', async () => {
    const chunks: Uint8Array[] = [];
    const be = withPcap(new EchoBackend(), (c) => chunks.push(c));
    await be.init(() => {});
    be.setCapabilities({ vnetHdrLen: 12 });
    const f = new Uint8Array(12 + 60);
    f.fill(0xee, 0, 12);
    f[12 + 14] = 5;
    be.send(f);
    be.flush();
    const p = packets(concat(chunks));
    expect(p).toHaveLength(2);
    expect(p[0]![1]).toHaveLength(60);
    expect(p[0]![1][0]).toBe(0);
    expect(p[0]![1][14]).toBe(5);
    expect(p[1]![1][14]).toBe(105);
    await be.close();
  });

  it('records frames taken in pull mode', async () => {
    const chunks: Uint8Array[] = [];
    const [a, b] = pair();
    const be = withPcap(a, (c) => chunks.push(c));
    let readable = 0;
    await be.init(null, { readable: () => readable++ });
    await b.init(() => {});
    b.send(frame(7, 80));
    expect(readable).toBe(1);
    expect(be.peekRecvLen()).toBe(80);
    const buf = new Uint8Array(100);
    expect(be.recv(buf)).toBe(80);
    expect(buf[14]).toBe(7);
    await be.close();
    expect(packets(concat(chunks)).map(([d, f]) => [d, f.length])).toEqual([[1, 80]]);
  });

  it('writes a file given { path }, flushed on close', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'guestnet-pcap-'));
    try {
      const file = path.join(dir, 'cap.pcapng');
      const [a, b] = pair();
      const be = withPcap(a, { path: file });
      await be.init(() => {});
      await b.init((f) => b.send(f));
      for (let i = 0; i < 3; i++) be.send(frame(i));
      await be.close();
      const p = packets(readFileSync(file));
      expect(p.map(([d, f]) => [d, f[14]])).toEqual([
        [2, 0],
        [1, 0],
        [2, 1],
        [1, 1],
        [2, 2],
        [1, 2],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects init with GUESTNET_IO when the file cannot be created', async () => {
    const be = withPcap(pair()[0], { path: path.join(os.tmpdir(), 'no-such-dir-guestnet', 'x', 'cap.pcapng') });
    await expect(be.init(() => {})).rejects.toMatchObject({ code: 'GUESTNET_IO' });
  });
});
