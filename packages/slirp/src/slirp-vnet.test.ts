/**
 * Stack tier, virtio-net header path: with a 12-byte header and csum + TSO4 negotiated, bulk
 * host→guest data arrives as GSO super-frames (TCPV4, gso_size = MSS, NEEDS_CSUM) and the guest
 * may send TSO super-frames with partial checksums; every byte arrives intact both ways.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { VirtioNetFlags, VirtioNetGso, parseIpv4Addr, parseIpv6Addr } from '@guestnet/wire';
import { Cleanups, closeServer, guestWith, listenTcp, sha } from './testing/harness.ts';

const GW = parseIpv4Addr('10.0.2.2')!;

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

describe('slirp stack: virtio-net header and offloads', () => {
  it('sends GSO super-frames to the guest and accepts TSO super-frames from it, 4 MB each way intact', async () => {
    const { guest, backend } = await guestWith(cleanups, {}, {
      before: (b) => {
        const caps = b.setCapabilities({ vnetHdrLen: 12, offloads: { csum: true, tso4: true } });
        expect(caps.offloads.tso4).toBe(true);
      },
      guest: { vnetHdrLen: 12, tso: true },
    });
    await guest.dhcp();
    await guest.arp(GW);
    // Every frame the backend sent carried a 12-byte header (num_buffers = 1).
    expect(guest.vnetRx.length).toBeGreaterThan(0);
    expect(guest.vnetRx.every((h) => h.numBuffers === 1)).toBe(true);
    const up = randomBytes(4 * 1024 * 1024);
    const down = randomBytes(4 * 1024 * 1024);
    const got: Buffer[] = [];
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('data', (d) => got.push(d));
      s.on('end', () => s.end(down));
    });
    const port = await listenTcp(server);
    cleanups.add(() => closeServer(server));
    const s = guest.connect(GW, port);
    await s.until(() => s.established, 'established');
    s.write(up);
    s.end();
    await s.until(() => s.peerFin, 'data and FIN', 60_000);
    expect(sha(Buffer.concat(got))).toBe(sha(up));
    expect(sha(s.data())).toBe(sha(down));
    expect(guest.malformed).toEqual([]);
    expect(guest.badChecksums).toEqual([]);
    // Host → guest: GSO TCPV4 super-frames, gso_size = the MSS, partial checksum to finish.
    const gso = guest.vnetRx.filter((h) => h.gsoType === VirtioNetGso.TCPV4);
    expect(gso.length).toBeGreaterThan(0);
    expect(Math.max(...gso.map((h) => h.frameLen))).toBeGreaterThan(1514);
    for (const h of gso) {
      // gso_size is the payload per segment: the 1460-byte MSS less the 12-byte timestamp option
      // every segment carries, so each resulting segment is exactly one MTU (hdr_len = 14+20+32).
      expect(h.gsoSize).toBe(1448);
      expect(h.hdrLen).toBe(66);
      expect(h.hdrLen - 14 + h.gsoSize).toBe(1500);
      expect(h.flags & VirtioNetFlags.NEEDS_CSUM).toBe(VirtioNetFlags.NEEDS_CSUM);
      expect(h.csumStart).toBe(34);
      expect(h.csumOffset).toBe(16);
      expect(h.frameLen).toBeGreaterThan(h.hdrLen);
    }
    expect(guest.vnetRx.every((h) => h.numBuffers === 1)).toBe(true);
    // Guest → host: the guest's TCP sent super-frames (TSO) and the stack took them.
    expect(guest.txMaxLen).toBeGreaterThan(12 + 1514);
    expect(backend.stats().drops['tcp-bad-checksum']).toBeUndefined();
    expect(backend.stats().drops['internal-error']).toBeUndefined();
  }, 60_000);

  it('sends TCPV6 GSO super-frames over IPv6 when tso6 is granted, 2 MB intact', async () => {
    const { guest } = await guestWith(cleanups, {}, {
      before: (b) => b.setCapabilities({ vnetHdrLen: 12, offloads: { csum: true, tso6: true } }),
      guest: { vnetHdrLen: 12 },
    });
    await guest.slaac();
    await guest.ndpResolve(parseIpv6Addr('fec0::2')!);
    const down = randomBytes(2 * 1024 * 1024);
    const server = net.createServer((s) => s.end(down));
    const port = await listenTcp(server, '::1');
    cleanups.add(() => closeServer(server));
    const s = guest.connect(parseIpv6Addr('fec0::2')!, port);
    await s.until(() => s.peerFin, 'data and FIN', 30_000);
    s.end();
    expect(sha(s.data())).toBe(sha(down));
    expect(guest.malformed).toEqual([]);
    expect(guest.badChecksums).toEqual([]);
    const gso = guest.vnetRx.filter((h) => h.gsoType === VirtioNetGso.TCPV6);
    expect(gso.length).toBeGreaterThan(0);
    for (const h of gso) {
      expect(h.csumStart).toBe(54);
      expect(h.hdrLen - 14 + h.gsoSize).toBeLessThanOrEqual(1500);
      expect(h.flags & VirtioNetFlags.NEEDS_CSUM).toBe(VirtioNetFlags.NEEDS_CSUM);
    }
  });
});
