/**
 * Stack tier, resource limits: max-tcp-flows (refusals are RSTs counted `tcp-flow-limit`, the
 * stack keeps serving), a SYN flood, max-udp-flows under a flood of source ports, and IPv4
 * fragment reassembly of a guest datagram.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { parseIpv4Addr } from '@guestnet/wire';
import { Cleanups, bindUdp, closeServer, echoServer, guestWith, listenTcp, sha, sleep } from './testing/harness.ts';
import type { GuestTcpSocket } from './testing/test-guest.ts';

const GW = parseIpv4Addr('10.0.2.2')!;
const SYN = 0x02;

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

describe('slirp stack: limits', () => {
  it('with max-tcp-flows=50, 50 of 100 guest connections succeed, 50 get RST counted tcp-flow-limit, and the stack still serves', async () => {
    const echo = await echoServer(cleanups);
    const { guest, backend } = await guestWith(cleanups, { 'max-tcp-flows': 50 });
    await guest.dhcp();
    await guest.arp(GW);
    const socks: GuestTcpSocket[] = [];
    for (let i = 0; i < 100; i++) socks.push(guest.connect(GW, echo.port));
    await guest.until(() => socks.every((s) => s.established || s.closedReason !== null), 'all 100 settled');
    const ok = socks.filter((s) => s.established);
    const reset = socks.filter((s) => s.closedReason === 'reset');
    expect(ok.length).toBe(50);
    expect(reset.length).toBe(50);
    expect(backend.stats().drops['tcp-flow-limit']).toBe(50);
    expect(backend.stats().flows.tcp).toBe(50);
    // The admitted ones carry data.
    ok[0]!.write(new TextEncoder().encode('still here'));
    await ok[0]!.until(() => ok[0]!.received === 10, 'echo');
    // Freeing slots (guest RST) lets new connections in.
    for (const s of ok) s.abort();
    await guest.until(() => backend.stats().flows.tcp === 0, 'flows released');
    const again = guest.connect(GW, echo.port);
    await again.until(() => again.established, 'a new connection after the flood');
    again.abort();
  });

  it('stays bounded under a 100,000-SYN flood to a closed and an open port, and an existing flow keeps working', async () => {
    const echo = await echoServer(cleanups);
    const closed = net.createServer();
    const closedPort = await listenTcp(closed);
    await closeServer(closed);
    const { guest, backend } = await guestWith(cleanups, { 'max-tcp-flows': 20 });
    await guest.dhcp();
    await guest.arp(GW);
    const keep = guest.connect(GW, echo.port);
    await keep.until(() => keep.established, 'the existing flow');
    const rss0 = process.memoryUsage().rss;
    let maxFlows = 0;
    for (let batch = 0; batch < 10; batch++) {
      for (let i = 0; i < 10_000; i++) {
        const port = 1024 + ((batch * 10_000 + i) % 60_000);
        guest.sendRawTcp4(port, GW, i & 1 ? echo.port : closedPort, SYN, batch * 10_000 + i);
      }
      maxFlows = Math.max(maxFlows, backend.stats().flows.tcp!);
      await sleep(5); // let refused connects come back and free their slots
    }
    const st = backend.stats();
    expect(maxFlows).toBeLessThanOrEqual(20);
    expect(st.drops['tcp-flow-limit']).toBeGreaterThan(90_000);
    expect(st.extra?.['tcp-host-refused']).toBeGreaterThan(0); // closed-port SYNs that got a slot were refused
    expect(process.memoryUsage().rss - rss0).toBeLessThan(200 * 1024 * 1024);
    expect(echo.sockets.size).toBeLessThanOrEqual(20);
    keep.write(new TextEncoder().encode('after the flood'));
    await keep.until(() => keep.received === 15, 'echo on the existing flow');
    expect(new TextDecoder().decode(keep.data())).toBe('after the flood');
    expect(st.drops['internal-error']).toBeUndefined();
    keep.abort();
  });

  it('with max-udp-flows=100 refuses a flood from 10,000 source ports after the limit, counted udp-flow-limit', async () => {
    const sink = dgram.createSocket('udp4');
    cleanups.add(() => sink.close());
    const port = await bindUdp(sink);
    let got = 0;
    sink.on('message', () => got++);
    const { guest, backend } = await guestWith(cleanups, { 'max-udp-flows': 100 });
    await guest.dhcp();
    await guest.arp(GW);
    const data = new Uint8Array(16);
    for (let i = 0; i < 10_000; i++) guest.sendUdp(GW, port, data, 20_000 + i);
    const st = backend.stats();
    expect(st.drops['udp-flow-limit']).toBe(9_900);
    expect(st.flows.udp).toBe(100);
    await guest.until(() => got === 100, 'the 100 admitted datagrams', 5000);
    await sleep(50);
    expect(got).toBe(100);
  });

  it('reassembles a fragmented guest UDP datagram and relays it; the large reply comes back fragmented', async () => {
    const sock = dgram.createSocket('udp4');
    cleanups.add(() => sock.close());
    const port = await bindUdp(sock);
    let received: Buffer | null = null;
    sock.on('message', (m, r) => {
      received = m;
      sock.send(Buffer.from(m).reverse(), r.port, r.address);
    });
    const { guest } = await guestWith(cleanups);
    await guest.dhcp();
    await guest.arp(GW);
    const payload = randomBytes(4000);
    guest.keepFrames = true;
    guest.sendUdp(GW, port, payload, 7000);
    const r = await guest.recvUdp((u) => u.srcPort === port && u.dstPort === 7000, 'reply');
    expect(received).not.toBeNull();
    expect(sha(received!)).toBe(sha(payload));
    expect(sha(r.data)).toBe(sha(Buffer.from(payload).reverse()));
    // The reply really came as fragments (MF set on the first frame).
    expect(guest.frames.filter((f) => f[12] === 0x08 && f[13] === 0 && (f[20]! & 0x20) !== 0).length).toBeGreaterThan(0);
    expect(guest.badChecksums).toEqual([]);
  });
});
