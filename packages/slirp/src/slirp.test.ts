/**
 * Stack tier: a scripted test guest (testing/test-guest.ts) drives the slirp backend; host peers
 * are real sockets on 127.0.0.1, reached through the gateway address as a guest reaches them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { createHash, randomBytes } from 'node:crypto';
import { SlirpBackend } from './slirp.ts';
import { TestGuest } from './testing/test-guest.ts';
import { parseIpv4Addr } from '@guestnet/wire';

const GW = parseIpv4Addr('10.0.2.2')!;
const DNS = parseIpv4Addr('10.0.2.3')!;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function guestWith(options: Record<string, unknown> = {}): Promise<{ guest: TestGuest; backend: SlirpBackend }> {
  const backend = new SlirpBackend({ 'dns-upstream': ['127.0.0.1#1'], ...options });
  const guest = new TestGuest(backend);
  await guest.start();
  cleanups.push(() => guest.stop());
  return { guest, backend };
}

function listen(server: net.Server | dgram.Socket): Promise<number> {
  return new Promise((resolve) => {
    if (server instanceof net.Server) server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
    else server.bind(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('slirp stack', () => {
  it('leases 10.0.2.15 by DHCP with router, DNS and mask', async () => {
    const { guest } = await guestWith();
    const ack = await guest.dhcp();
    expect(ack.yiaddr).toBe(parseIpv4Addr('10.0.2.15'));
    expect(ack.options.routers).toEqual([GW]);
    expect(ack.options.dnsServers).toEqual([DNS]);
    expect(ack.options.subnetMask).toBe(parseIpv4Addr('255.255.255.0'));
    expect(guest.badChecksums).toEqual([]);
  });

  it('answers ARP for the gateway and pings to it, and counts pings to outside hosts as unsupported', async () => {
    const { guest, backend } = await guestWith();
    await guest.dhcp();
    await guest.arp(GW);
    expect(Array.from(guest.gatewayMac)).toEqual([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
    guest.ping(GW, 7, 1);
    await guest.until(() => guest.icmp.length > 0, 'echo reply');
    expect(guest.icmp[0]!.type).toBe(0);
    expect(guest.icmp[0]!.src).toBe(GW);
    guest.ping(parseIpv4Addr('192.0.2.1')!, 7, 2);
    await new Promise((r) => setTimeout(r, 50));
    expect(guest.icmp.length).toBe(1);
    expect(backend.stats().drops['icmp-unsupported']).toBe(1);
  });

  it('relays a UDP datagram to a host service on 127.0.0.1 through the gateway and back', async () => {
    const { guest } = await guestWith();
    await guest.dhcp();
    await guest.arp(GW);
    const sock = dgram.createSocket('udp4');
    cleanups.push(() => {
      sock.close();
    });
    const port = await listen(sock);
    sock.on('message', (m, r) => sock.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address));
    guest.sendUdp(GW, port, new TextEncoder().encode('hello'));
    await guest.until(() => guest.udp.some((u) => u.srcPort === port), 'UDP reply');
    const reply = guest.udp.find((u) => u.srcPort === port)!;
    expect(new TextDecoder().decode(reply.data)).toBe('echo:hello');
    expect(reply.src).toBe(GW);
  });

  it('moves 10 MB each way over TCP to a host server with every byte intact', async () => {
    const { guest, backend } = await guestWith();
    await guest.dhcp();
    await guest.arp(GW);
    const up = randomBytes(10 * 1024 * 1024);
    const down = randomBytes(10 * 1024 * 1024);
    const got: Buffer[] = [];
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('data', (d) => got.push(d));
      s.on('end', () => {
        s.end(down);
      });
    });
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = await listen(server);
    const s = guest.connect(GW, port);
    await s.until(() => s.established, 'established');
    s.write(up);
    s.end();
    await s.until(() => s.peerFin, 'all data and FIN from the host', 60_000);
    expect(sha(Buffer.concat(got))).toBe(sha(up));
    expect(s.received).toBe(down.length);
    expect(sha(s.data())).toBe(sha(down));
    expect(guest.badChecksums).toEqual([]);
    await s.until(() => s.closedReason !== null, 'close', 10_000).catch(() => {});
    expect(backend.stats().drops['internal-error']).toBeUndefined();
  }, 120_000);

  it('forwards a host port into a guest server (hostfwd) and lists the bound rule', async () => {
    const { guest, backend } = await guestWith({ hostfwd: [] });
    await guest.dhcp();
    await guest.arp(GW);
    guest.listen(22, (s) => {
      s.write(new TextEncoder().encode('SSH-2.0-guest\r\n'));
      s.end();
    });
    const rule = await backend.hostfwd.add({ proto: 'tcp', host: { kind: 'inet', addr: '127.0.0.1', port: 0 }, guestAddr: '', guestPort: 22 });
    expect(rule.host.kind === 'inet' && rule.host.port).toBeGreaterThan(0);
    expect(backend.hostfwd.list()).toHaveLength(1);
    const port = rule.host.kind === 'inet' ? rule.host.port : 0;
    const banner = await new Promise<string>((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1');
      let text = '';
      c.on('data', (d) => (text += d.toString()));
      c.on('end', () => {
        c.end();
        resolve(text);
      });
      c.on('error', reject);
    });
    expect(banner).toBe('SSH-2.0-guest\r\n');
    expect(await backend.hostfwd.remove({ proto: 'tcp', host: rule.host })).toBe(true);
    expect(backend.hostfwd.list()).toHaveLength(0);
  });

  it('fails init with GUESTNET_ADDR_IN_USE when a hostfwd port is taken', async () => {
    const blocker = net.createServer();
    cleanups.push(() => new Promise<void>((r) => blocker.close(() => r())));
    const port = await listen(blocker);
    const backend = new SlirpBackend({ hostfwd: [{ proto: 'tcp', host: { kind: 'inet', addr: '127.0.0.1', port }, guestAddr: '', guestPort: 22 }] });
    await expect(backend.init(() => {})).rejects.toMatchObject({ code: 'GUESTNET_ADDR_IN_USE' });
  });

  it('resets a connection to a closed host port', async () => {
    const { guest } = await guestWith();
    await guest.dhcp();
    await guest.arp(GW);
    const server = net.createServer();
    const port = await listen(server);
    await new Promise<void>((r) => server.close(() => r()));
    const s = guest.connect(GW, port);
    await s.until(() => s.closedReason !== null, 'reset');
    expect(s.closedReason).toBe('reset');
  });
});
