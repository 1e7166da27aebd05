/**
 * Stack tier: two scripted guests on one switch resolve each other with ARP and ping over IPv4,
 * while a third port sees only the broadcast ARP request (the switch learnt the rest).
 */
import { describe, it, expect, afterEach } from 'vitest';
import { checksum } from '@guestnet/wire';
import type { NetBackend } from '@guestnet/core';
import { createLocalSwitch } from './local.ts';
import { until } from './testing.ts';

const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

/** A minimal IPv4 host: answers ARP for its address and ICMP echo requests; records echo replies. */
class ScriptedGuest {
  readonly mac: Uint8Array;
  readonly ip: Uint8Array;
  readonly arpCache = new Map<string, Uint8Array>();
  readonly replies: number[] = [];
  readonly seen: Uint8Array[] = [];
  readonly be: NetBackend;
  constructor(be: NetBackend, n: number) {
    this.be = be;
    this.mac = Uint8Array.of(2, 0, 0, 0, 0, n);
    this.ip = Uint8Array.of(10, 0, 0, n);
  }
  async start(): Promise<void> {
    await this.be.init((f) => this.input(f));
  }
  arpRequest(target: Uint8Array): void {
    const f = new Uint8Array(42);
    f.fill(0xff, 0, 6);
    f.set(this.mac, 6);
    f.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1], 12);
    f.set(this.mac, 22);
    f.set(this.ip, 28);
    f.set(target, 38);
    this.be.send(f);
  }
  ping(dstMac: Uint8Array, dst: Uint8Array, id: number): void {
    this.be.send(this.icmp(dstMac, dst, 8, id));
  }
  private icmp(dstMac: Uint8Array, dst: Uint8Array, type: number, id: number): Uint8Array {
    const f = new Uint8Array(14 + 20 + 8 + 32);
    f.set(dstMac, 0);
    f.set(this.mac, 6);
    f.set([0x08, 0x00], 12);
    const ip = 14;
    f.set([0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 1, 0, 0], ip);
    f.set(this.ip, ip + 12);
    f.set(dst, ip + 16);
    const c = checksum(f, ip, 20);
    f[ip + 10] = c >> 8;
    f[ip + 11] = c & 0xff;
    const ic = ip + 20;
    f[ic] = type;
    f[ic + 4] = id >> 8;
    f[ic + 5] = id & 0xff;
    const cc = checksum(f, ic, 40);
    f[ic + 2] = cc >> 8;
    f[ic + 3] = cc & 0xff;
    return f;
  }
  private input(f: Uint8Array): void {
    this.seen.push(f.slice());
    const type = (f[12]! << 8) | f[13]!;
    if (type === 0x0806 && f.length >= 42) {
      const op = f[21];
      const sha = f.slice(22, 28);
      const spa = f.slice(28, 32);
      this.arpCache.set(spa.join('.'), sha);
      if (op === 1 && f.subarray(38, 42).every((b, i) => b === this.ip[i])) {
        const r = new Uint8Array(42);
        r.set(sha, 0);
        r.set(this.mac, 6);
        r.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2], 12);
        r.set(this.mac, 22);
        r.set(this.ip, 28);
        r.set(sha, 32);
        r.set(spa, 38);
        this.be.send(r);
      }
    } else if (type === 0x0800 && f[14 + 9] === 1 && f.subarray(30, 34).every((b, i) => b === this.ip[i])) {
      // Checksums must have survived the trip.
      if (checksum(f, 14, 20) !== 0 || checksum(f, 34, f.length - 34) !== 0) return;
      const id = (f[38]! << 8) | f[39]!;
      if (f[34] === 8) this.be.send(this.icmp(f.slice(6, 12), f.slice(26, 30), 0, id));
      else if (f[34] === 0) this.replies.push(id);
    }
  }
}

describe('two guests on a switch', () => {
  it('resolve each other with ARP and ping; a bystander sees only the ARP broadcast', async () => {
    const sw = createLocalSwitch('vale-guests');
    closers.push(() => sw.close());
    const g = [1, 2, 3].map((n) => new ScriptedGuest(sw.openPort(n, { keepAlive: false, geometry: { slots: 64, bufSize: 2048 } }), n));
    await Promise.all(g.map((x) => x.start()));
    const [a, b, c] = g as [ScriptedGuest, ScriptedGuest, ScriptedGuest];
    a.arpRequest(b.ip);
    await until(() => a.arpCache.has('10.0.0.2'));
    expect(a.arpCache.get('10.0.0.2')).toEqual(b.mac);
    for (let id = 1; id <= 5; id++) a.ping(a.arpCache.get('10.0.0.2')!, b.ip, id);
    await until(() => a.replies.length === 5);
    expect(a.replies).toEqual([1, 2, 3, 4, 5]);
    expect(c.seen).toHaveLength(1);
    expect((c.seen[0]![12]! << 8) | c.seen[0]![13]!).toBe(0x0806);
    expect(sw.switch.portStats(2)).toMatchObject({ rxFrames: 6, txFrames: 6 });
  });
});
