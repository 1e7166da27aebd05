/**
 * Stack tier, flow control and UDP host forwards: pauseRecv stops the host side without losing
 * anything; a UDP hostfwd carries datagrams both ways.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { parseIpv4Addr } from '@guestnet/wire';
import { Cleanups, closeServer, guestWith, listenTcp, sha, sleep } from './testing/harness.ts';

const GW = parseIpv4Addr('10.0.2.2')!;

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

describe('slirp stack: flow control and UDP forwards', () => {
  it('holds host data while the guest paused receive and delivers all of it after resume', async () => {
    const down = randomBytes(8 * 1024 * 1024);
    const server = net.createServer((s) => {
      s.on('error', () => {});
      s.end(down);
    });
    const port = await listenTcp(server);
    cleanups.add(() => closeServer(server));
    const { guest, backend } = await guestWith(cleanups);
    await guest.dhcp();
    await guest.arp(GW);
    const s = guest.connect(GW, port);
    await s.until(() => s.received > 256 * 1024, 'some data');
    backend.pauseRecv();
    await sleep(300);
    const held = s.received;
    await sleep(200);
    expect(s.received).toBe(held); // nothing delivered while paused
    expect(backend.stats().drops['rx-overflow']).toBeUndefined();
    backend.resumeRecv();
    await s.until(() => s.peerFin, 'the rest after resume', 30_000);
    expect(sha(s.data())).toBe(sha(down));
  });

  it('forwards UDP from a host client into the guest and the guest reply back (hostfwd=udp)', async () => {
    const { guest, backend } = await guestWith(cleanups);
    await guest.dhcp();
    await guest.arp(GW);
    const rule = await backend.hostfwd.add({ proto: 'udp', host: { kind: 'inet', addr: '127.0.0.1', port: 0 }, guestAddr: '', guestPort: 5353 });
    const hport = rule.host.kind === 'inet' ? rule.host.port : 0;
    expect(hport).toBeGreaterThan(0);
    const client = dgram.createSocket('udp4');
    cleanups.add(() => client.close());
    const reply = new Promise<string>((r) => client.on('message', (m) => r(m.toString())));
    client.send('question', hport, '127.0.0.1');
    const q = await guest.recvUdp((u) => u.dstPort === 5353, 'forwarded datagram');
    expect(new TextDecoder().decode(q.data)).toBe('question');
    expect(q.src).toBe(GW);
    guest.sendUdp(GW, q.srcPort, new TextEncoder().encode('answer'), 5353);
    expect(await reply).toBe('answer');
  });
});
