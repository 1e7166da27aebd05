/**
 * Stack tier, IPv6: router discovery and SLAAC from the RA, NDP for the router, echo to the
 * gateway, TCP and UDP through fec0::2 to services on ::1, stateless DHCPv6.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { ndpFindOption, parseIpv6Addr } from '@guestnet/wire';
import { Cleanups, bindUdp, closeServer, guestWith, listenTcp, sha } from './testing/harness.ts';

const GW6 = parseIpv6Addr('fec0::2')!;
const DNS6 = parseIpv6Addr('fec0::3')!;
const arr = (a: Uint8Array | number) => Array.from(a as Uint8Array);

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

describe('slirp stack: IPv6', () => {
  it('answers a router solicitation with an RA the guest forms a fec0::/64 SLAAC address from', async () => {
    const { guest } = await guestWith(cleanups);
    const ra = await guest.slaac();
    expect(ra.routerLifetime).toBeGreaterThan(0);
    const pi = ndpFindOption(ra.options, 'prefixInfo')!;
    expect(arr(pi.prefix.subarray(0, 8))).toEqual(arr(parseIpv6Addr('fec0::')!.subarray(0, 8)));
    expect(ndpFindOption(ra.options, 'rdnss')?.servers.map(arr)).toEqual([arr(DNS6)]);
    expect(arr(guest.ip6!.subarray(0, 8))).toEqual([0xfe, 0xc0, 0, 0, 0, 0, 0, 0]);
    expect(arr(guest.ip6!.subarray(8))).toEqual(arr(guest.eui64()));
    expect(guest.badChecksums).toEqual([]);
  });

  it('resolves the router by NDP and gets echo replies from fec0::2', async () => {
    const { guest } = await guestWith(cleanups);
    await guest.slaac();
    const mac = await guest.ndpResolve(GW6);
    expect(arr(mac)).toEqual([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
    guest.ping6(GW6, 9, 1);
    await guest.until(() => guest.icmp6.some((m) => m.type === 129), 'echo reply');
    const reply = guest.icmp6.find((m) => m.type === 129)!;
    expect(arr(reply.src)).toEqual(arr(GW6));
    expect(reply.data[4]! << 8 | reply.data[5]!).toBe(9);
    expect(guest.badChecksums).toEqual([]);
  });

  it('carries a TCP connection to [fec0::2]:port to a server on ::1, 1 MB each way', async () => {
    const { guest } = await guestWith(cleanups);
    await guest.slaac();
    await guest.ndpResolve(GW6);
    const up = randomBytes(1 << 20);
    const down = randomBytes(1 << 20);
    const got: Buffer[] = [];
    let peer = '';
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      peer = s.remoteAddress ?? '';
      s.on('data', (d) => got.push(d));
      s.on('end', () => s.end(down));
    });
    const port = await listenTcp(server, '::1');
    cleanups.add(() => closeServer(server));
    const s = guest.connect(GW6, port);
    await s.until(() => s.established, 'established');
    s.write(up);
    s.end();
    await s.until(() => s.peerFin, 'data and FIN from ::1', 30_000);
    expect(peer).toBe('::1');
    expect(sha(Buffer.concat(got))).toBe(sha(up));
    expect(sha(s.data())).toBe(sha(down));
    expect(guest.badChecksums).toEqual([]);
  });

  it('relays UDP over IPv6 to a service on ::1 via fec0::2 and back', async () => {
    const { guest } = await guestWith(cleanups);
    await guest.slaac();
    await guest.ndpResolve(GW6);
    const sock = dgram.createSocket('udp6');
    cleanups.add(() => sock.close());
    const port = await bindUdp(sock, '::1');
    sock.on('message', (m, r) => sock.send(Buffer.concat([Buffer.from('v6:'), m]), r.port, r.address));
    guest.sendUdp6(GW6, port, new TextEncoder().encode('hi'), 6000);
    const r = await guest.recvUdp((u) => u.srcPort === port && u.dstPort === 6000, 'UDP6 reply');
    expect(new TextDecoder().decode(r.data)).toBe('v6:hi');
    expect(arr(r.src as Uint8Array)).toEqual(arr(GW6));
    expect(guest.badChecksums).toEqual([]);
  });

  it('answers a stateless DHCPv6 Information-Request with the DNS server', async () => {
    const { guest } = await guestWith(cleanups, { dnssearch: ['example.test'] });
    await guest.slaac();
    const r = await guest.dhcpv6Info();
    expect(r.msgType).toBe(7); // REPLY
    expect(r.transactionId).toBe(0x123456);
    expect(r.options.dnsServers?.map(arr)).toEqual([arr(DNS6)]);
    expect(r.options.domainList).toEqual(['example.test']);
    expect(guest.badChecksums).toEqual([]);
  });
});
