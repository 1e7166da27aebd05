/**
 * Stack tier, hostile-guest floods against slirp, each with memory measured: 100,000 SYNs to
 * closed ports and to an open port, UDP to 10,000 destinations, 100,000 fragments of distinct
 * datagrams, ARP and NDP floods from 100,000 invented addresses, and a guest that never ACKs.
 * Each test checks that live memory (heap + ArrayBuffers after a forced GC) stays under a bound
 * computed from the configured limits plus a fixed headroom, that the refusals are counted, and
 * that another flow keeps working during and after the flood.
 *
 * Host side: real sockets on 127.0.0.1 only. The UDP flood's 10,000 destinations are distinct
 * ports on the gateway (10.0.2.2 → 127.0.0.1); the host I/O records each destination and sends
 * the datagram to one sink port instead, so no other process's port on this machine is touched.
 * Time: a ManualClock wherever a timeout must pass (SYN-ACK retries, RTO backoff, UDP expiry),
 * advanced by an interval so ordinary traffic still sees time move.
 *
 * Also here, host-side faults that need no separate process (the test process's own fds are
 * counted before and after): an upstream server that resets mid-transfer, a silent and a
 * garbage-answering upstream resolver, a hostfwd client that vanishes mid-stream.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { ManualClock, type HostIo } from '@guestnet/core';
import { createNodeHostIo } from '@guestnet/core/node';
import { checksum, parseIpv4Addr, parseIpv6Addr } from '@guestnet/wire';
import { Cleanups, bindUdp, closeServer, echoServer, guestWith, listenTcp, sleep } from './testing/harness.ts';
import type { GuestTcpSocket } from './testing/test-guest.ts';
import type { SlirpBackend } from './slirp.ts';
import { ETH_ARP, ETH_IPV4, ETH_IPV6, arpBody, concatBytes, dnsQueryBytes, ethFrame, icmp6, ipv4Packet, ipv6Packet, udp4 } from '@guestnet/core/testing';
import { RawTcpPeer } from '@guestnet/core/testing';
import { KiB, MiB, formatFigures, liveBytes, type FloodFigure } from '@guestnet/core/testing';

const GW = parseIpv4Addr('10.0.2.2')!;
const SYN = 0x02;

/** The limits every flood runs against (smaller than the defaults, so the bounds are tight). */
const LIMITS = {
  'max-tcp-flows': 64,
  'max-udp-flows': 128,
  'max-flow-buffer': 256 * KiB,
  'max-total-buffer': 8 * MiB,
  'max-reassembly': 1 * MiB,
};
/** V8 code, inline caches and Map growth a flood may leave behind, whatever the limits. */
const HEADROOM = 8 * MiB;

const cleanups = new Cleanups();
afterEach(() => cleanups.run());
const figures: FloodFigure[] = [];
afterAll(() => {
  console.log(`slirp flood figures:\n${formatFigures(figures)}`);
});

const drops = (b: SlirpBackend, r: string): number => b.stats().drops[r] ?? 0;
const extra = (b: SlirpBackend, r: string): number => b.stats().extra?.[r] ?? 0;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A clock that follows real time in 5 ms steps; `jump` moves it far ahead at once. */
function tickingClock(): ManualClock {
  const clock = new ManualClock();
  const t = setInterval(() => clock.advance(5), 5);
  cleanups.add(() => clearInterval(t));
  return clock;
}

async function echoOnce(s: GuestTcpSocket, text: string): Promise<void> {
  const want = s.received + text.length;
  s.write(enc(text));
  await s.until(() => s.received >= want, `echo of ${text}`);
  expect(new TextDecoder().decode(s.data().subarray(want - text.length, want))).toBe(text);
}

/** Memory growth tracker: baseline now, `sample()` keeps the peak. */
function tracker(): { sample(): void; peak: number; now(): number } {
  const base = liveBytes();
  const t = {
    peak: 0,
    sample() {
      const d = liveBytes() - base;
      if (d > t.peak) t.peak = d;
    },
    now: () => liveBytes() - base,
  };
  return t;
}

describe('slirp hostile guest: SYN floods', () => {
  it('100,000 SYNs to closed ports: at most max-tcp-flows held, every SYN refused and counted, an existing flow keeps echoing', async () => {
    const echo = await echoServer(cleanups);
    const closed: number[] = [];
    for (let i = 0; i < 8; i++) {
      const s = net.createServer();
      closed.push(await listenTcp(s));
      await closeServer(s);
    }
    const { guest, backend } = await guestWith(cleanups, LIMITS);
    await guest.dhcp();
    await guest.arp(GW);
    const keep = guest.connect(GW, echo.port);
    await keep.until(() => keep.established, 'the existing flow');
    const mem = tracker();
    let maxFlows = 0;
    const N = 100_000;
    for (let batch = 0; batch < 50; batch++) {
      for (let i = 0; i < 2000; i++) {
        const n = batch * 2000 + i;
        guest.sendRawTcp4(1024 + (n % 60_000), GW, closed[n % closed.length]!, SYN, n);
      }
      maxFlows = Math.max(maxFlows, backend.stats().flows.tcp!);
      if (batch % 10 === 0) mem.sample();
      if (batch === 25) await echoOnce(keep, 'during the flood');
      await sleep(2); // refusals come back and free their slots
    }
    await guest.until(() => backend.stats().flows.tcp === 1, 'refused flows released');
    mem.sample();
    const refusedByLimit = drops(backend, 'tcp-flow-limit');
    const refusedByHost = extra(backend, 'tcp-host-refused');
    expect(maxFlows).toBeLessThanOrEqual(LIMITS['max-tcp-flows']);
    expect(refusedByLimit + refusedByHost).toBe(N);
    expect(refusedByHost).toBeGreaterThan(0);
    await echoOnce(keep, 'after the flood');
    const bound = LIMITS['max-tcp-flows'] * 2 * LIMITS['max-flow-buffer'] + HEADROOM;
    expect(mem.peak).toBeLessThan(bound);
    figures.push({
      backend: 'slirp',
      flood: '100,000 SYNs to closed ports',
      limit: 'max-tcp-flows=64',
      peakBytes: mem.peak,
      afterBytes: mem.now(),
      bound,
      refusals: `tcp-flow-limit ${refusedByLimit}, tcp-host-refused ${refusedByHost}`,
    });
    expect(backend.stats().drops['internal-error']).toBeUndefined();
    keep.abort();
  });

  it('100,000 SYNs to an open port: half-open flows capped at max-tcp-flows, given up after the SYN-ACK retries, host sockets closed, new connections work', async () => {
    const echo = await echoServer(cleanups);
    const clock = tickingClock();
    const { guest, backend } = await guestWith(cleanups, LIMITS, { rt: { clock } });
    await guest.dhcp();
    await guest.arp(GW);
    const keep = guest.connect(GW, echo.port);
    await keep.until(() => keep.established, 'the existing flow');
    const mem = tracker();
    let maxFlows = 0;
    const guestIp = guest.ip;
    for (let batch = 0; batch < 20; batch++) {
      for (let i = 0; i < 5000; i++) {
        const n = batch * 5000 + i;
        // 100,000 distinct connections need more source addresses than one: ports run out.
        // Ports stay below 40000, where the scripted guest's own sockets (the kept flow) live.
        guest.ip = guestIp + Math.floor(n / 38_000);
        guest.sendRawTcp4(1024 + (n % 38_000), GW, echo.port, SYN, n);
      }
      guest.ip = guestIp;
      maxFlows = Math.max(maxFlows, backend.stats().flows.tcp!);
      if (batch % 5 === 0) mem.sample();
      if (batch === 10) await echoOnce(keep, 'during');
      await sleep(1);
    }
    await guest.until(() => echo.sockets.size >= LIMITS['max-tcp-flows'], 'host side of the half-open flows');
    mem.sample();
    expect(maxFlows).toBeLessThanOrEqual(LIMITS['max-tcp-flows']);
    expect(echo.sockets.size).toBeLessThanOrEqual(LIMITS['max-tcp-flows']);
    const refused = drops(backend, 'tcp-flow-limit');
    expect(refused).toBeGreaterThanOrEqual(100_000 - 2 * LIMITS['max-tcp-flows']);
    // SYN-ACK retransmissions (5, RFC 6298 backoff from 1 s) run out within ~63 s.
    clock.advance(120_000);
    await guest.until(() => backend.stats().flows.tcp === 1 && echo.sockets.size === 1, 'half-open flows given up and their host sockets closed');
    // Every SYN is accounted for: refused at the limit, or admitted and later closed.
    const closedFlows = Object.entries(backend.stats().extra ?? {})
      .filter(([k]) => k.startsWith('tcp-closed-'))
      .reduce((n, [, v]) => n + v, 0);
    expect(refused + closedFlows).toBe(100_000);
    expect(extra(backend, 'tcp-closed-timeout')).toBeGreaterThanOrEqual(LIMITS['max-tcp-flows'] - 1);
    mem.sample();
    await echoOnce(keep, 'after');
    const fresh = guest.connect(GW, echo.port);
    await fresh.until(() => fresh.established, 'a new connection');
    await echoOnce(fresh, 'fresh');
    const bound = LIMITS['max-tcp-flows'] * 2 * LIMITS['max-flow-buffer'] + HEADROOM;
    expect(mem.peak).toBeLessThan(bound);
    figures.push({
      backend: 'slirp',
      flood: '100,000 SYNs to an open port (never completed)',
      limit: 'max-tcp-flows=64',
      peakBytes: mem.peak,
      afterBytes: mem.now(),
      bound,
      refusals: `tcp-flow-limit ${refused}, tcp-closed-timeout ${extra(backend, 'tcp-closed-timeout')}`,
    });
    fresh.abort();
    keep.abort();
  });
});

/** Node host I/O whose UDP sockets record each destination and deliver to `sinkPort` instead. */
function redirectingIo(sinkPort: number, passPort: number): { io: HostIo; destinations: Set<string> } {
  const base = createNodeHostIo();
  const destinations = new Set<string>();
  const io: HostIo = {
    ...base,
    async openUdp(family, h) {
      const s = await base.openUdp(family, h);
      return {
        send: (d, port, address) => {
          destinations.add(`${address}:${port}`);
          s.send(d, port === passPort ? port : sinkPort, '127.0.0.1');
        },
        close: () => s.close(),
        localPort: s.localPort,
      };
    },
  };
  return { io, destinations };
}

describe('slirp hostile guest: UDP, fragment and neighbour floods', () => {
  it('UDP to 10,000 destinations from 1,000 source ports: flows capped at max-udp-flows, the rest counted udp-flow-limit, expired flows free their sockets', async () => {
    const sink = dgram.createSocket('udp4');
    cleanups.add(() => sink.close());
    const sinkPort = await bindUdp(sink);
    let sunk = 0;
    sink.on('message', () => sunk++);
    const echo = dgram.createSocket('udp4');
    cleanups.add(() => echo.close());
    const echoPort = await bindUdp(echo);
    echo.on('message', (m, r) => echo.send(m, r.port, r.address));
    const clock = tickingClock();
    const { io, destinations } = redirectingIo(sinkPort, echoPort);
    const { guest, backend } = await guestWith(cleanups, LIMITS, { rt: { clock, io } });
    await guest.dhcp();
    await guest.arp(GW);
    const ping = async (text: string) => {
      guest.sendUdp(GW, echoPort, enc(text), 5555);
      const r = await guest.recvUdp((u) => u.srcPort === echoPort && u.dstPort === 5555, `UDP echo ${text}`);
      expect(new TextDecoder().decode(r.data)).toBe(text);
    };
    await ping('before');
    const mem = tracker();
    const data = new Uint8Array(64);
    for (let i = 0; i < 10_000; i++) {
      guest.sendUdp(GW, 20_000 + i, data, 30_000 + (i % 1000));
      if (i === 5000) mem.sample();
    }
    mem.sample();
    const st = backend.stats();
    expect(st.flows.udp).toBe(LIMITS['max-udp-flows']);
    // 127 flood sources admitted (the echo flow holds one slot), 10 datagrams each.
    const admitted = LIMITS['max-udp-flows'] - 1;
    expect(drops(backend, 'udp-flow-limit')).toBe(10_000 - admitted * 10);
    await ping('during');
    // Every admitted datagram left through a host socket (the sink's receive buffer may overflow
    // under this burst, so count at the socket, and only require that the sink saw traffic).
    await guest.until(() => destinations.size === admitted * 10 + 1 && sunk > 0, 'admitted datagrams sent to the host', 5000);
    expect([...destinations].every((d) => d.startsWith('127.0.0.1:'))).toBe(true);
    // udp-timeout (60 s) later every flood flow is gone; a new source gets a flow again.
    clock.advance(61_000);
    await guest.until(() => backend.stats().flows.udp === 0, 'flows expired');
    expect(extra(backend, 'udp-flow-expired')).toBe(LIMITS['max-udp-flows']);
    await ping('after');
    mem.sample();
    const bound = LIMITS['max-udp-flows'] * 16 * 1536 + HEADROOM;
    expect(mem.peak).toBeLessThan(bound);
    figures.push({
      backend: 'slirp',
      flood: 'UDP to 10,000 destinations (1,000 sources)',
      limit: 'max-udp-flows=128',
      peakBytes: mem.peak,
      afterBytes: mem.now(),
      bound,
      refusals: `udp-flow-limit ${drops(backend, 'udp-flow-limit')}`,
    });
  });

  it('100,000 first fragments of distinct datagrams: reassembly memory never above max-reassembly, evictions counted, unfragmented and fragmented traffic still flows', async () => {
    const sock = dgram.createSocket('udp4');
    cleanups.add(() => sock.close());
    const port = await bindUdp(sock);
    const got: Buffer[] = [];
    sock.on('message', (m, r) => {
      got.push(m);
      sock.send(m, r.port, r.address);
    });
    const { guest, backend } = await guestWith(cleanups, LIMITS);
    await guest.dhcp();
    await guest.arp(GW);
    const gwMac = backend.cfg.gatewayMac;
    const frags = (backend as unknown as { frags: { stats(): { bytes: number; datagrams: number } } }).frags;
    // One frame, patched per datagram: id and header checksum.
    const u = udp4(guest.ip, GW, 6000, 9, new Uint8Array(1472));
    const frame = ethFrame(gwMac, guest.mac, ETH_IPV4, ipv4Packet({ src: guest.ip, dst: GW, proto: 17, mf: true }, u.subarray(0, 1480)));
    const mem = tracker();
    let maxBytes = 0;
    let maxDatagrams = 0;
    for (let i = 0; i < 100_000; i++) {
      frame[18] = (i >>> 8) & 0xff;
      frame[19] = i & 0xff;
      frame[23] = i < 65536 ? 17 : 6; // ids repeat after 65,536: vary the protocol (part of the key)
      frame[24] = frame[25] = 0;
      const c = checksum(frame, 14, 20);
      frame[24] = c >>> 8;
      frame[25] = c & 0xff;
      backend.send(frame);
      if ((i & 4095) === 0) {
        const s = frags.stats();
        maxBytes = Math.max(maxBytes, s.bytes);
        maxDatagrams = Math.max(maxDatagrams, s.datagrams);
      }
      if (i === 50_000) {
        mem.sample();
        guest.sendUdp(GW, port, enc('during'), 6001);
        await guest.recvUdp((x) => x.dstPort === 6001, 'unfragmented echo during the flood');
      }
    }
    mem.sample();
    expect(maxBytes).toBeLessThanOrEqual(LIMITS['max-reassembly']);
    expect(maxDatagrams).toBeLessThanOrEqual(64);
    const evicted = drops(backend, 'frag-evicted') + drops(backend, 'frag-memory');
    expect(evicted).toBeGreaterThanOrEqual(100_000 - 64);
    // After the flood a fragmented datagram still reassembles and is relayed.
    const big = randomBytes(3000);
    guest.sendUdp(GW, port, big, 6002);
    const r = await guest.recvUdp((x) => x.dstPort === 6002, 'fragmented echo after the flood');
    expect(Buffer.compare(Buffer.from(r.data), big)).toBe(0);
    const bound = LIMITS['max-reassembly'] + HEADROOM;
    expect(mem.peak).toBeLessThan(bound);
    figures.push({
      backend: 'slirp',
      flood: '100,000 first fragments (distinct datagrams)',
      limit: 'max-reassembly=1 MiB, 64 datagrams',
      peakBytes: mem.peak,
      afterBytes: mem.now(),
      bound,
      refusals: `frag-evicted ${drops(backend, 'frag-evicted')}, frag-memory ${drops(backend, 'frag-memory')}`,
    });
  });

  it('ARP from 100,000 invented sender addresses and MACs: the neighbour table stays at 256 entries (neighbor-evicted counted) and the real guest keeps working', async () => {
    const echo = await echoServer(cleanups);
    const { guest, backend } = await guestWith(cleanups, LIMITS);
    await guest.dhcp();
    await guest.arp(GW);
    const keep = guest.connect(GW, echo.port);
    await keep.until(() => keep.established, 'the existing flow');
    const neighbors = (backend as unknown as { neighbors: { size4: number; size6: number } }).neighbors;
    const mem = tracker();
    const mac = Uint8Array.of(0x02, 0, 0, 0, 0, 0);
    const none = new Uint8Array(6);
    let maxSize = 0;
    for (let i = 0; i < 100_000; i++) {
      mac[3] = (i >>> 16) & 0xff;
      mac[4] = (i >>> 8) & 0xff;
      mac[5] = i & 0xff;
      const spa = (0x0a000000 + 0x10000 + i) >>> 0; // 10.1.x.y: anything the guest makes up
      // Half ask for the gateway (answered), half for nobody (ignored).
      backend.send(ethFrame(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff), mac, ETH_ARP, arpBody(1, mac, spa, none, i & 1 ? GW : spa + 1)));
      if ((i & 8191) === 0) maxSize = Math.max(maxSize, neighbors.size4);
      if (i === 50_000) mem.sample();
    }
    mem.sample();
    expect(maxSize).toBeLessThanOrEqual(256);
    expect(neighbors.size4).toBeLessThanOrEqual(256);
    expect(extra(backend, 'neighbor-evicted')).toBeGreaterThanOrEqual(100_000 - 256);
    // The guest's own traffic re-teaches its address.
    await echoOnce(keep, 'after the ARP flood');
    const bound = 256 * 1 * KiB + HEADROOM;
    expect(mem.peak).toBeLessThan(bound);
    figures.push({
      backend: 'slirp',
      flood: 'ARP from 100,000 invented senders',
      limit: '256 IPv4 neighbours',
      peakBytes: mem.peak,
      afterBytes: mem.now(),
      bound,
      refusals: `neighbor-evicted ${extra(backend, 'neighbor-evicted')}`,
    });
    keep.abort();
  });

  it('NDP neighbour solicitations from 100,000 invented sources: the IPv6 neighbour table stays at 256 entries and the router still answers', async () => {
    const { guest, backend } = await guestWith(cleanups, LIMITS);
    await guest.dhcp();
    await guest.slaac();
    const neighbors = (backend as unknown as { neighbors: { size4: number; size6: number } }).neighbors;
    const routerLl = parseIpv6Addr('fe80::2')!;
    const sn = parseIpv6Addr('ff02::1:ff00:2')!;
    const snMac = Uint8Array.of(0x33, 0x33, 0xff, 0, 0, 2);
    const mem = tracker();
    const src = parseIpv6Addr('fec0::1:0:0')!;
    const mac = Uint8Array.of(0x02, 0, 0, 0, 0, 0);
    let maxSize = 0;
    const before = extra(backend, 'neighbor-evicted');
    for (let i = 0; i < 100_000; i++) {
      src[13] = (i >>> 16) & 0xff;
      src[14] = (i >>> 8) & 0xff;
      src[15] = i & 0xff;
      mac[3] = src[13]!;
      mac[4] = src[14]!;
      mac[5] = src[15]!;
      const ns = concatBytes(new Uint8Array(4), routerLl, Uint8Array.of(1, 1), mac);
      backend.send(ethFrame(snMac, mac, ETH_IPV6, ipv6Packet(src, sn, 58, icmp6(src, sn, 135, 0, ns), { hopLimit: 255 })));
      if ((i & 8191) === 0) {
        maxSize = Math.max(maxSize, neighbors.size6);
        // The scripted guest logs every NA it receives; that log is the test's, not the stack's.
        guest.nas.length = 0;
        guest.icmp6.length = 0;
      }
      if (i === 50_000) mem.sample();
    }
    guest.nas.length = 0;
    guest.icmp6.length = 0;
    mem.sample();
    expect(maxSize).toBeLessThanOrEqual(256);
    expect(neighbors.size6).toBeLessThanOrEqual(256);
    expect(extra(backend, 'neighbor-evicted') - before).toBeGreaterThanOrEqual(100_000 - 256);
    guest.nas.length = 0;
    const m = await guest.ndpResolve(routerLl);
    expect([...m]).toEqual([...backend.cfg.gatewayMac]);
    const bound = 256 * 1 * KiB + HEADROOM;
    expect(mem.peak).toBeLessThan(bound);
    figures.push({
      backend: 'slirp',
      flood: 'NDP NS from 100,000 invented sources',
      limit: '256 IPv6 neighbours',
      peakBytes: mem.peak,
      afterBytes: mem.now(),
      bound,
      refusals: `neighbor-evicted ${extra(backend, 'neighbor-evicted') - before}`,
    });
    expect(backend.stats().drops['internal-error']).toBeUndefined();
  });
});

describe('slirp hostile guest: a guest that never ACKs', () => {
  it('holds at most max-flow-buffer for it, retransmits with RFC 6298 backoff, gives up (tcp-closed-timeout), closes the host socket, and other flows keep working', async () => {
    const payload = randomBytes(4 * MiB);
    let hostClosed = false;
    const server = net.createServer((s) => {
      s.on('error', () => {});
      s.on('close', () => (hostClosed = true));
      s.write(payload);
    });
    const port = await listenTcp(server);
    cleanups.add(() => closeServer(server));
    const echo = dgram.createSocket('udp4');
    cleanups.add(() => echo.close());
    const echoPort = await bindUdp(echo);
    echo.on('message', (m, r) => echo.send(m, r.port, r.address));
    const clock = new ManualClock();
    const { guest, backend } = await guestWith(cleanups, LIMITS, { rt: { clock } });
    await guest.dhcp();
    await guest.arp(GW);
    const ping = async (text: string) => {
      guest.sendUdp(GW, echoPort, enc(text), 5556);
      await guest.recvUdp((u) => u.srcPort === echoPort && u.dstPort === 5556 && new TextDecoder().decode(u.data) === text, `UDP echo ${text}`);
    };
    const mem = tracker();
    const p = new RawTcpPeer(guest, backend.cfg.gatewayMac, GW, port, 45000);
    await p.open(65535);
    // Let the host fill our buffers: the engine's send ring, then the socket is paused.
    await guest.until(() => {
      p.poll();
      return extra(backend, 'tcp-buffered-bytes') >= LIMITS['max-flow-buffer'] - 4 * 1460;
    }, 'send buffer full', 5000);
    await sleep(100);
    const buffered = extra(backend, 'tcp-buffered-bytes');
    expect(buffered).toBeLessThanOrEqual(LIMITS['max-flow-buffer'] + 64 * KiB);
    mem.sample();
    await ping('during');
    // Walk the clock forward; record when each retransmission of the first unacked byte leaves.
    const first = p.rcvNxt;
    const times: number[] = [];
    p.poll();
    for (let step = 0; step < 4000 && !hostClosed; step++) {
      clock.advance(250);
      for (const s of p.poll()) if (s.seq === first && s.data.length > 0) times.push(clock.now());
      if (step % 400 === 0) await sleep(1);
      if (extra(backend, 'tcp-closed-timeout') > 0) break;
    }
    await guest.until(() => hostClosed, 'host socket closed after the timeout');
    mem.sample();
    expect(extra(backend, 'tcp-closed-timeout')).toBe(1);
    expect(backend.stats().flows.tcp).toBe(0);
    expect(extra(backend, 'tcp-buffered-bytes')).toBe(0);
    // RFC 6298 §5.5: each expiry doubles the RTO (capped); ≥ 6 retransmissions before giving up.
    expect(times.length).toBeGreaterThanOrEqual(6);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]!).toBeGreaterThanOrEqual(gaps[i - 1]! - 250);
    expect(gaps[gaps.length - 1]!).toBeGreaterThan(gaps[0]! * 8);
    await ping('after');
    const bound = 2 * LIMITS['max-flow-buffer'] + HEADROOM;
    expect(mem.peak).toBeLessThan(bound);
    figures.push({
      backend: 'slirp',
      flood: 'guest never ACKs a 4 MiB download',
      limit: 'max-flow-buffer=256 KiB',
      peakBytes: mem.peak,
      afterBytes: mem.now(),
      bound,
      refusals: `${times.length} retransmissions (gaps ${gaps.map((g) => Math.round(g / 1000)).join(',')} s), tcp-closed-timeout 1`,
    });
  });
});


const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;

describe('slirp host-side faults', () => {
  it('an upstream server that resets mid-transfer: the guest gets RST, the flow is freed (tcp-host-reset), no fd left open', async () => {
    const sent = randomBytes(200_000);
    const server = net.createServer((s) => {
      s.on('error', () => {});
      s.write(sent, () => setTimeout(() => s.resetAndDestroy(), 50));
    });
    const port = await listenTcp(server);
    cleanups.add(() => closeServer(server));
    const { guest, backend } = await guestWith(cleanups, LIMITS);
    await guest.dhcp();
    await guest.arp(GW);
    const fds0 = fdCount();
    const s = guest.connect(GW, port);
    await s.until(() => s.closedReason !== null, 'the reset to reach the guest');
    expect(s.closedReason).toBe('reset');
    expect(s.received).toBeLessThanOrEqual(sent.length);
    await guest.until(() => backend.stats().flows.tcp === 0, 'flow freed');
    expect(extra(backend, 'tcp-host-reset')).toBe(1);
    await sleep(50);
    expect(fdCount()).toBeLessThanOrEqual(fds0);
  });

  it('a silent upstream resolver: after the 2 s timeout the guest gets SERVFAIL (libslirp: nothing), counted dns-timeout', async () => {
    const silent = dgram.createSocket('udp4');
    cleanups.add(() => silent.close());
    const port = await bindUdp(silent);
    let asked = 0;
    silent.on('message', () => asked++);
    const clock = new ManualClock();
    const { guest, backend } = await guestWith(cleanups, { ...LIMITS, 'dns-upstream': [`127.0.0.1#${port}`] }, { rt: { clock } });
    await guest.dhcp();
    await guest.arp(GW);
    guest.sendUdp(parseIpv4Addr('10.0.2.3')!, 53, dnsQueryBytes(0x5151, 'silent.test'), 7100);
    await guest.until(() => asked === 1, 'the query upstream');
    clock.advance(1_900);
    expect(guest.udp.some((u) => u.dstPort === 7100)).toBe(false);
    clock.advance(200);
    const r = await guest.recvUdp((u) => u.dstPort === 7100, 'SERVFAIL');
    expect((r.data[0]! << 8) | r.data[1]!).toBe(0x5151);
    expect(r.data[3]! & 0x0f).toBe(2); // SERVFAIL
    expect(drops(backend, 'dns-timeout')).toBe(1);
  });

  it('an upstream resolver answering garbage: each answer dropped and counted, one log line, and the guest still gets SERVFAIL', async () => {
    const bad = dgram.createSocket('udp4');
    cleanups.add(() => bad.close());
    const port = await bindUdp(bad);
    bad.on('message', (m, r) => {
      bad.send(randomBytes(5), r.port, r.address); // not DNS at all
      const wrongId = Buffer.from(m);
      wrongId[0]! ^= 0xff;
      wrongId[2]! |= 0x80;
      bad.send(wrongId, r.port, r.address); // a response to a query nobody asked
      const otherQ = Buffer.from(m);
      otherQ[2]! |= 0x80;
      otherQ[13] = 0x7a; // a different question
      bad.send(otherQ, r.port, r.address);
    });
    const logs: string[] = [];
    const clock = new ManualClock();
    const { guest, backend } = await guestWith(cleanups, { ...LIMITS, 'dns-upstream': [`127.0.0.1#${port}`] }, { rt: { clock, log: (_l, m) => logs.push(m) } });
    await guest.dhcp();
    await guest.arp(GW);
    guest.sendUdp(parseIpv4Addr('10.0.2.3')!, 53, dnsQueryBytes(0x6262, 'garbage.test'), 7101);
    await guest.until(() => drops(backend, 'dns-bad-response') + drops(backend, 'dns-unexpected-response') === 3, 'three bad answers');
    expect(drops(backend, 'dns-bad-response')).toBe(1);
    expect(drops(backend, 'dns-unexpected-response')).toBe(2);
    expect(logs.filter((l) => l.startsWith('dns: dropped an answer'))).toEqual([`dns: dropped an answer from 127.0.0.1#${port}: not a DNS response (1 so far)`]);
    expect(guest.udp.some((u) => u.dstPort === 7101)).toBe(false);
    clock.advance(2_100);
    const r = await guest.recvUdp((u) => u.dstPort === 7101, 'SERVFAIL');
    expect(r.data[3]! & 0x0f).toBe(2);
  });

  it('a hostfwd client that vanishes mid-stream: the guest connection is reset, the flow freed, the listener serves the next client, no fd left open', async () => {
    const { guest, backend } = await guestWith(cleanups, LIMITS);
    await guest.dhcp();
    const bound = await backend.hostfwd!.add({ proto: 'tcp', host: { kind: 'inet', addr: '127.0.0.1', port: 0 }, guestAddr: '', guestPort: 8080 });
    const hostPort = bound.host.kind === 'inet' ? bound.host.port : 0;
    const served: GuestTcpSocket[] = [];
    guest.listen(8080, (s) => {
      served.push(s);
      s.write(randomBytes(2 * MiB));
    });
    const fds0 = fdCount();
    const c = net.connect(hostPort, '127.0.0.1');
    c.on('error', () => {});
    let got = 0;
    await new Promise<void>((resolve) =>
      c.on('data', (d) => {
        got += d.length;
        if (got >= 64 * KiB) {
          c.resetAndDestroy();
          resolve();
        }
      }),
    );
    await guest.until(() => served.length === 1 && served[0]!.closedReason !== null, 'the guest side to close');
    expect(served[0]!.closedReason).toBe('reset');
    await guest.until(() => backend.stats().flows.tcp === 0, 'flow freed');
    await sleep(50);
    expect(fdCount()).toBeLessThanOrEqual(fds0);
    // The next client is served in full.
    const c2 = net.connect(hostPort, '127.0.0.1');
    let got2 = 0;
    await new Promise<void>((resolve, reject) => {
      c2.on('error', reject);
      c2.on('data', (d) => {
        got2 += d.length;
        if (got2 >= 2 * MiB) resolve();
      });
    });
    c2.destroy();
    expect(got2).toBe(2 * MiB);
  });
});
