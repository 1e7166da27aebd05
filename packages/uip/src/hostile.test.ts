/**
 * Stack tier, a hostile guest against uip: libslirp's CVE classes where they apply to uip (lying
 * lengths at every layer, fragments — which uip never reassembles —, DHCP options past the
 * packet, TCP options with bad lengths, urgent pointers past the data, zero and shrinking
 * windows), then floods with memory measured: 100,000 SYNs to closed ports and to an open port,
 * UDP to 10,000 destinations, fragment, ARP and NDP floods, and a guest that never ACKs.
 *
 * The guest is made of hand-built frames (testing/raw-guest.ts): uip's guest address is fixed, so
 * no handshake is needed before the first frame. Host side: real sockets on 127.0.0.1 only; the
 * UDP flood's host I/O records each destination and delivers to one sink port instead.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { createHash, randomBytes } from 'node:crypto';
import { ManualClock, type HostIo } from '@guestnet/core';
import { createNodeHostIo } from '@guestnet/core/node';
import { checksum, parseIpv4Addr, parseIpv6Addr } from '@guestnet/wire';
import { UipBackend, type UipRuntime } from './uip.ts';
import { RawGuest } from './testing/raw-guest.ts';
import { F, RawTcpPeer } from '@guestnet/core/testing';
import { ETH_ARP, ETH_IPV4, ETH_IPV6, arpBody, concatBytes, ethFrame, icmp4, icmp6, ipv4Packet, ipv6Packet, tcp4, udp4 } from '@guestnet/core/testing';
import { KiB, MiB, formatFigures, liveBytes, type FloodFigure } from '@guestnet/core/testing';

const HOST = parseIpv4Addr('192.168.33.1')!;
const GUEST = parseIpv4Addr('192.168.33.15')!;
const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56);
const LIMITS = { 'max-tcp-flows': 64, 'max-udp-flows': 128, 'max-flow-buffer': 256 * KiB };
const HEADROOM = 8 * MiB;
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const figures: FloodFigure[] = [];
afterAll(() => {
  console.log(`uip flood figures:\n${formatFigures(figures)}`);
});

interface Env {
  b: UipBackend;
  g: RawGuest;
  hostMac: Uint8Array;
}

async function env(opts: Record<string, unknown> = {}, rt: UipRuntime = {}): Promise<Env> {
  const b = new UipBackend({ 'dns-upstream': ['127.0.0.1#1'], ...opts }, rt);
  const g = new RawGuest(b, GUEST, GUEST_MAC);
  await g.start();
  cleanups.push(() => b.close());
  return { b, g, hostMac: b.cfg.hostMac };
}

const drops = (b: UipBackend, r: string): number => b.stats().drops[r] ?? 0;
const extra = (b: UipBackend, r: string): number => b.stats().extra?.[r] ?? 0;
function expectDrop(b: UipBackend, reason: string, fn: () => void, n = 1): void {
  const before = drops(b, reason);
  fn();
  expect(drops(b, reason) - before, `drops['${reason}']`).toBe(n);
}
const ip4 = (e: Env, f: Parameters<typeof ipv4Packet>[0], l4: Uint8Array): Uint8Array => ethFrame(e.hostMac, GUEST_MAC, ETH_IPV4, ipv4Packet(f, l4));

let seqNo = 0;
async function stillServes(e: Env): Promise<void> {
  const seq = ++seqNo;
  const body = new Uint8Array(12);
  body[2] = seq >>> 8;
  body[3] = seq & 0xff;
  e.b.send(ip4(e, { src: GUEST, dst: HOST, proto: 1 }, icmp4(8, 0, body)));
  await e.g.until(() => e.g.echoSeqs.includes(seq), `echo reply ${seq}`, 5000);
  expect(e.b.stats().drops['internal-error']).toBeUndefined();
}

async function udpEcho(): Promise<{ port: number; got: Buffer[] }> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  cleanups.push(() => s.close());
  const got: Buffer[] = [];
  s.on('message', (m, r) => {
    got.push(m);
    s.send(m, r.port, r.address);
  });
  return { port: s.address().port, got };
}

async function udpRoundTrip(e: Env, port: number, text: string, sport = 5555): Promise<void> {
  e.b.send(ip4(e, { src: GUEST, dst: HOST, proto: 17 }, udp4(GUEST, HOST, sport, port, enc(text))));
  await e.g.until(() => e.g.udp.some((u) => u.dport === sport && new TextDecoder().decode(u.data) === text), `UDP echo ${text}`, 5000);
}

async function tcpServer(onConn: (s: net.Socket) => void): Promise<{ port: number; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConn(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as net.AddressInfo).port, sockets };
}

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

describe('uip CVE classes', () => {
  it('drops runts, VLAN frames cut in the tag, NCSI and IPv6 frames, and every IPv4 length lie (ipv4-malformed)', async () => {
    const e = await env();
    expectDrop(e.b, 'runt', () => e.b.send(new Uint8Array(13)));
    const vlan = ethFrame(e.hostMac, GUEST_MAC, 0x8100, new Uint8Array(2));
    expectDrop(e.b, 'eth-malformed', () => e.b.send(vlan));
    expectDrop(e.b, 'ethertype', () => e.b.send(ethFrame(e.hostMac, GUEST_MAC, 0x88f8, new Uint8Array(2))));
    expectDrop(e.b, 'ipv6', () => e.b.send(ethFrame(e.hostMac, GUEST_MAC, ETH_IPV6, new Uint8Array(40))));
    const u = udp4(GUEST, HOST, 5000, 9, new Uint8Array(32));
    const base = { src: GUEST, dst: HOST, proto: 17 };
    expectDrop(e.b, 'ipv4-malformed', () => e.b.send(ip4(e, { ...base, ihl: 4 }, u)));
    expectDrop(e.b, 'ipv4-malformed', () => e.b.send(ip4(e, { ...base, ihl: 15, totalLen: 40 }, u)));
    expectDrop(e.b, 'ipv4-malformed', () => e.b.send(ip4(e, { ...base, totalLen: 1500 }, u)));
    expectDrop(e.b, 'ipv4-malformed', () => e.b.send(ip4(e, { ...base, totalLen: 12 }, u)));
    const bad = ipv4Packet(base, u);
    bad[10]! ^= 0xff;
    expectDrop(e.b, 'ipv4-bad-checksum', () => e.b.send(ethFrame(e.hostMac, GUEST_MAC, ETH_IPV4, bad)));
    await stillServes(e);
  });

  it('drops every fragment, oversized or not (ipv4-fragment: uip does not reassemble)', async () => {
    const e = await env();
    const u = udp4(GUEST, HOST, 5000, 9, new Uint8Array(1472));
    expectDrop(e.b, 'ipv4-fragment', () => e.b.send(ip4(e, { src: GUEST, dst: HOST, proto: 17, id: 1, mf: true }, u)));
    expectDrop(e.b, 'ipv4-fragment', () => e.b.send(ip4(e, { src: GUEST, dst: HOST, proto: 17, id: 1, fragOff: 65528 }, new Uint8Array(16))));
    expectDrop(e.b, 'ipv4-fragment', () => e.b.send(ip4(e, { src: GUEST, dst: HOST, proto: 17, id: 1, fragOff: 1472 }, new Uint8Array(64))));
    await stillServes(e);
  });

  it('drops UDP and TCP whose length fields lie (udp-malformed, tcp-malformed); a short UDP length is obeyed', async () => {
    const e = await env();
    const sink = await udpEcho();
    const ub = { src: GUEST, dst: HOST, proto: 17 };
    expectDrop(e.b, 'udp-malformed', () => e.b.send(ip4(e, ub, udp4(GUEST, HOST, 5001, sink.port, new Uint8Array(20), 200))));
    expectDrop(e.b, 'udp-malformed', () => e.b.send(ip4(e, ub, udp4(GUEST, HOST, 5001, sink.port, new Uint8Array(20), 4))));
    const data = randomBytes(24);
    e.b.send(ip4(e, ub, udp4(GUEST, HOST, 5001, sink.port, data, 18)));
    await e.g.until(() => sink.got.length === 1, 'the shortened datagram', 5000);
    expect(sha(sink.got[0]!)).toBe(sha(data.subarray(0, 10)));
    const tb = { src: GUEST, dst: HOST, proto: 6 };
    expectDrop(e.b, 'tcp-malformed', () => e.b.send(ip4(e, tb, tcp4(GUEST, HOST, { sport: 4000, dport: 22, flags: F.SYN, dataOffset: 4 }))));
    expectDrop(e.b, 'tcp-malformed', () => e.b.send(ip4(e, tb, tcp4(GUEST, HOST, { sport: 4000, dport: 22, flags: F.SYN, dataOffset: 15 }))));
    const t = tcp4(GUEST, HOST, { sport: 4000, dport: 22, flags: F.SYN });
    t[16]! ^= 0x55;
    expectDrop(e.b, 'tcp-bad-checksum', () => e.b.send(ip4(e, tb, t)));
    expect(e.b.stats().flows.tcp).toBe(0);
    await stillServes(e);
  });

  it('counts TCP options of length 0, 1 and past the header (tcp-options-malformed), and urgent data past the segment is plain data', async () => {
    const e = await env();
    const got: Buffer[] = [];
    const srv = await tcpServer((s) => {
      s.on('data', (d) => got.push(d));
      s.write('hello');
    });
    let sport = 41000;
    for (const opts of [Uint8Array.of(2, 0, 0, 0), Uint8Array.of(3, 1, 0, 0), Uint8Array.of(2, 40, 5, 180)]) {
      const before = extra(e.b, 'tcp-options-malformed');
      const p = new RawTcpPeer(e.g, e.hostMac, HOST, srv.port, sport++);
      await p.open(65535, opts);
      expect(extra(e.b, 'tcp-options-malformed') - before).toBe(1);
      await e.g.until(() => (p.take(), p.received === 5), 'hello');
      p.send(F.ACK);
      const d = randomBytes(100);
      p.send(F.ACK | F.PSH | F.URG, d, { urgent: 60000 });
      p.sndNxt = (p.sndNxt + d.length) >>> 0;
      await e.g.until(() => Buffer.concat(got).length >= 100, 'urgent bytes at the host', 5000);
      expect(sha(Buffer.concat(got.splice(0)))).toBe(sha(d));
      p.send(F.RST | F.ACK);
    }
    await stillServes(e);
  });

  it('sends nothing into a zero window, and after a shrink never past the new edge; every byte arrives once the window opens', async () => {
    const e = await env();
    const payload = randomBytes(200_000);
    const srv = await tcpServer((s) => s.end(payload));
    const p = new RawTcpPeer(e.g, e.hostMac, HOST, srv.port, 43000);
    await p.open(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(p.poll().filter((s) => s.data.length > 0)).toEqual([]);
    p.send(F.ACK, undefined, { window: 65535 });
    await e.g.until(() => (p.take(), p.received >= 20_000), 'a first flight');
    p.send(F.ACK, undefined, { window: 100 });
    const edge = (p.rcvNxt + 100) >>> 0;
    const limit = ((p.highest - edge) | 0) > 0 ? p.highest : edge;
    const seen = p.segs.length;
    await new Promise((r) => setTimeout(r, 200));
    p.poll();
    expect(p.segs.slice(seen).filter((s) => s.data.length > 0 && ((s.seq + s.data.length - limit) | 0) > 0)).toEqual([]);
    // uip resends from the oldest unacknowledged byte on three duplicate ACKs (go-back-N).
    await e.g.until(() => {
      p.take();
      p.send(F.ACK, undefined, { window: 65535 });
      return p.fin;
    }, 'all data and FIN', 20_000);
    expect(p.received).toBe(payload.length);
    expect(sha(p.data())).toBe(sha(payload));
    p.send(F.RST | F.ACK);
    await stillServes(e);
  });

  it('drops DHCP whose options run past the packet or whose BOOTP header is cut (dhcp-malformed)', async () => {
    const e = await env();
    const boot = (options: number[]) => {
      const b = new Uint8Array(240 + options.length);
      b[0] = 1;
      b[1] = 1;
      b[2] = 6;
      b.set(GUEST_MAC, 28);
      b.set([99, 130, 83, 99], 236);
      b.set(options, 240);
      return b;
    };
    const send = (p: Uint8Array) =>
      e.b.send(ethFrame(Uint8Array.of(255, 255, 255, 255, 255, 255), GUEST_MAC, ETH_IPV4, ipv4Packet({ src: 0, dst: 0xffffffff, proto: 17 }, udp4(0, 0xffffffff, 68, 67, p))));
    expectDrop(e.b, 'dhcp-malformed', () => send(boot([53, 1, 1, 12, 200, 0x41])));
    expectDrop(e.b, 'dhcp-malformed', () => send(boot([53, 1, 1, 255]).subarray(0, 200)));
    const offers = e.g.udp.length;
    send(boot([53, 1, 1, 255]));
    await e.g.until(() => e.g.udp.length > offers, 'an offer to a good DISCOVER');
    await stillServes(e);
  });
});

function redirectingIo(sinkPort: number, passPort: number): { io: HostIo; destinations: Set<string> } {
  const base = createNodeHostIo();
  const destinations = new Set<string>();
  return {
    destinations,
    io: {
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
    },
  };
}

describe('uip hostile guest: floods', () => {
  it('100,000 SYNs to closed ports: at most max-tcp-flows held, each refused and counted, UDP keeps flowing', async () => {
    const echo = await udpEcho();
    const closed: number[] = [];
    for (let i = 0; i < 8; i++) {
      const s = net.createServer();
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      closed.push((s.address() as net.AddressInfo).port);
      await new Promise<void>((r) => s.close(() => r()));
    }
    const e = await env(LIMITS);
    e.g.keepFrames = false;
    await udpRoundTrip(e, echo.port, 'before');
    const mem = tracker();
    let maxFlows = 0;
    for (let batch = 0; batch < 50; batch++) {
      for (let i = 0; i < 2000; i++) {
        const n = batch * 2000 + i;
        e.b.send(ip4(e, { src: GUEST, dst: HOST, proto: 6 }, tcp4(GUEST, HOST, { sport: 1024 + (n % 60_000), dport: closed[n % 8]!, flags: F.SYN, seq: n })));
      }
      maxFlows = Math.max(maxFlows, e.b.stats().flows.tcp!);
      if (batch % 10 === 0) mem.sample();
      if (batch === 25) await udpRoundTrip(e, echo.port, 'during');
      e.g.udp.length = 0;
      await new Promise((r) => setTimeout(r, 2));
    }
    await e.g.until(() => e.b.stats().flows.tcp === 0, 'refused flows released');
    mem.sample();
    const byLimit = drops(e.b, 'tcp-flow-limit');
    const byHost = extra(e.b, 'tcp-connect-refused');
    expect(maxFlows).toBeLessThanOrEqual(64);
    expect(byLimit + byHost).toBe(100_000);
    await udpRoundTrip(e, echo.port, 'after');
    const bound = 64 * 2 * LIMITS['max-flow-buffer'] + HEADROOM;
    expect(mem.peak).toBeLessThan(bound);
    figures.push({ backend: 'uip', flood: '100,000 SYNs to closed ports', limit: 'max-tcp-flows=64', peakBytes: mem.peak, afterBytes: mem.now(), bound, refusals: `tcp-flow-limit ${byLimit}, tcp-connect-refused ${byHost}` });
  });

  it('100,000 SYNs to an open port: at most max-tcp-flows half-open (no SYN-ACK timeout in uip: they stay until RST or close), the rest refused and counted; close() releases every host socket', async () => {
    const srv = await tcpServer(() => {});
    const echo = await udpEcho();
    const e = await env(LIMITS);
    e.g.keepFrames = false;
    const mem = tracker();
    let maxFlows = 0;
    for (let batch = 0; batch < 20; batch++) {
      for (let i = 0; i < 5000; i++) {
        const n = batch * 5000 + i;
        e.b.send(ip4(e, { src: GUEST, dst: HOST, proto: 6 }, tcp4(GUEST, HOST, { sport: 1024 + (n % 60_000), dport: srv.port, flags: F.SYN, seq: n })));
      }
      maxFlows = Math.max(maxFlows, e.b.stats().flows.tcp!);
      if (batch % 5 === 0) mem.sample();
      await new Promise((r) => setTimeout(r, 1));
    }
    await e.g.until(() => srv.sockets.size === 64, 'host side of the half-open flows');
    mem.sample();
    expect(maxFlows).toBeLessThanOrEqual(64);
    expect(drops(e.b, 'tcp-flow-limit')).toBeGreaterThanOrEqual(100_000 - 64 - 64);
    await udpRoundTrip(e, echo.port, 'during');
    await stillServes(e);
    await e.b.close();
    await e.g.until(() => srv.sockets.size === 0, 'host sockets closed by close()');
    const bound = 64 * 2 * LIMITS['max-flow-buffer'] + HEADROOM;
    expect(mem.peak).toBeLessThan(bound);
    figures.push({ backend: 'uip', flood: '100,000 SYNs to an open port (never completed)', limit: 'max-tcp-flows=64', peakBytes: mem.peak, afterBytes: mem.now(), bound, refusals: `tcp-flow-limit ${drops(e.b, 'tcp-flow-limit')}` });
  });

  it('UDP to 10,000 destinations: flows capped at max-udp-flows, the rest counted udp-flow-limit, and expired after udp-timeout', async () => {
    const sink = dgram.createSocket('udp4');
    await new Promise<void>((r) => sink.bind(0, '127.0.0.1', r));
    cleanups.push(() => sink.close());
    const echo = await udpEcho();
    const { io, destinations } = redirectingIo(sink.address().port, echo.port);
    const clock = new ManualClock();
    const tick = setInterval(() => clock.advance(5), 5);
    cleanups.push(() => clearInterval(tick));
    const e = await env(LIMITS, { io, clock });
    e.g.keepFrames = false;
    await udpRoundTrip(e, echo.port, 'before');
    const mem = tracker();
    const data = new Uint8Array(64);
    for (let i = 0; i < 10_000; i++) {
      e.b.send(ip4(e, { src: GUEST, dst: HOST, proto: 17 }, udp4(GUEST, HOST, 30_000, 20_000 + i, data)));
      if (i === 5000) mem.sample();
    }
    mem.sample();
    expect(e.b.stats().flows.udp).toBe(128);
    expect(drops(e.b, 'udp-flow-limit')).toBe(10_000 - 127);
    await udpRoundTrip(e, echo.port, 'during');
    await e.g.until(() => destinations.size === 128, 'admitted datagrams sent', 5000);
    expect([...destinations].every((d) => d.startsWith('127.0.0.1:'))).toBe(true);
    clock.advance(61_000);
    await e.g.until(() => e.b.stats().flows.udp === 0, 'flows expired');
    await udpRoundTrip(e, echo.port, 'after');
    const bound = 128 * 16 * 1536 + HEADROOM;
    expect(mem.peak).toBeLessThan(bound);
    figures.push({ backend: 'uip', flood: 'UDP to 10,000 destinations', limit: 'max-udp-flows=128', peakBytes: mem.peak, afterBytes: mem.now(), bound, refusals: `udp-flow-limit ${drops(e.b, 'udp-flow-limit')}` });
  });

  it('100,000 fragments, 100,000 ARP requests and 100,000 NDP solicitations from invented senders: nothing kept, everything counted, the real guest unaffected', async () => {
    const echo = await udpEcho();
    const e = await env(LIMITS);
    e.g.keepFrames = false;
    await udpRoundTrip(e, echo.port, 'before');
    const mem = tracker();
    const frame = ip4(e, { src: GUEST, dst: HOST, proto: 17, mf: true }, udp4(GUEST, HOST, 6000, 9, new Uint8Array(1472)).subarray(0, 1480));
    for (let i = 0; i < 100_000; i++) {
      frame[18] = (i >>> 8) & 0xff;
      frame[19] = i & 0xff;
      frame[24] = frame[25] = 0;
      const c = checksum(frame, 14, 20);
      frame[24] = c >>> 8;
      frame[25] = c & 0xff;
      e.b.send(frame);
    }
    mem.sample();
    expect(drops(e.b, 'ipv4-fragment')).toBe(100_000);
    const mac = Uint8Array.of(2, 0, 0, 0, 0, 0);
    for (let i = 0; i < 100_000; i++) {
      mac[3] = (i >>> 16) & 0xff;
      mac[4] = (i >>> 8) & 0xff;
      mac[5] = i & 0xff;
      e.b.send(ethFrame(Uint8Array.of(255, 255, 255, 255, 255, 255), mac, ETH_ARP, arpBody(1, mac, (0x0a010000 + i) >>> 0, new Uint8Array(6), i & 1 ? HOST : 0x0a000001)));
    }
    mem.sample();
    const sn = parseIpv6Addr('ff02::1:ff00:1')!;
    const src = parseIpv6Addr('fec0::1:0:0')!;
    const ns = concatBytes(new Uint8Array(4), parseIpv6Addr('fe80::1')!);
    const nsFrame = ethFrame(Uint8Array.of(0x33, 0x33, 0xff, 0, 0, 1), mac, ETH_IPV6, ipv6Packet(src, sn, 58, icmp6(src, sn, 135, 0, ns), { hopLimit: 255 }));
    expectDrop(e.b, 'ipv6', () => {
      for (let i = 0; i < 100_000; i++) e.b.send(nsFrame);
    }, 100_000);
    mem.sample();
    // Replies still go to the real guest's MAC: invented ARP senders taught uip nothing.
    e.g.keepFrames = true;
    await stillServes(e);
    const reply = e.g.frames.find((f) => f[23] === 1);
    expect([...reply!.subarray(0, 6)]).toEqual([...GUEST_MAC]);
    await udpRoundTrip(e, echo.port, 'after');
    const bound = HEADROOM;
    expect(mem.peak).toBeLessThan(bound);
    figures.push({ backend: 'uip', flood: '100,000 fragments + 100,000 ARP + 100,000 NDP', limit: 'none kept (no reassembly, no neighbour table, no IPv6)', peakBytes: mem.peak, afterBytes: mem.now(), bound, refusals: `ipv4-fragment ${drops(e.b, 'ipv4-fragment')}, ipv6 ${drops(e.b, 'ipv6')}` });
  });

  it('a guest that never ACKs: at most max-flow-buffer held, the host socket paused, nothing resent without a timer; its RST frees everything', async () => {
    const payload = randomBytes(4 * MiB);
    let hostClosed = false;
    const srv = await tcpServer((s) => {
      s.on('close', () => (hostClosed = true));
      s.write(payload);
    });
    const echo = await udpEcho();
    const e = await env(LIMITS);
    const mem = tracker();
    const p = new RawTcpPeer(e.g, e.hostMac, HOST, srv.port, 45000);
    await p.open(65535);
    await e.g.until(() => {
      p.poll();
      return extra(e.b, 'tcp-buffered-bytes') >= LIMITS['max-flow-buffer'];
    }, 'flow buffer full', 5000);
    await new Promise((r) => setTimeout(r, 300));
    const buffered = extra(e.b, 'tcp-buffered-bytes');
    mem.sample();
    expect(buffered).toBeLessThanOrEqual(LIMITS['max-flow-buffer'] + 64 * KiB);
    const segs = p.poll();
    expect(segs.filter((s) => s.data.length > 0).length).toBe(0); // the first window went out; nothing since
    expect(((p.highest - p.rcvNxt) | 0)).toBeLessThanOrEqual(65535);
    await udpRoundTrip(e, echo.port, 'during');
    p.send(F.RST | F.ACK);
    await e.g.until(() => hostClosed && e.b.stats().flows.tcp === 0, 'flow freed by the guest RST');
    expect(extra(e.b, 'tcp-rst-from-guest')).toBe(1);
    expect(extra(e.b, 'tcp-buffered-bytes')).toBe(0);
    await udpRoundTrip(e, echo.port, 'after');
    const bound = 2 * LIMITS['max-flow-buffer'] + HEADROOM;
    expect(mem.peak).toBeLessThan(bound);
    figures.push({ backend: 'uip', flood: 'guest never ACKs a 4 MiB download', limit: 'max-flow-buffer=256 KiB', peakBytes: mem.peak, afterBytes: mem.now(), bound, refusals: `${buffered} bytes held; freed by guest RST (no timer)` });
  });
});
