/**
 * Stack tier, DNS: the guest's queries to the virtual DNS address (10.0.2.3 / fec0::3) over UDP
 * and TCP reach a test resolver on 127.0.0.1 configured with `dns-upstream`, never the host's.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseIpv4Addr, parseIpv6Addr } from '@guestnet/wire';
import { Cleanups, dnsQuery, dnsTestServer, guestWith } from './testing/harness.ts';
import { createNodeHostIo } from '@guestnet/core/node';

const GW = parseIpv4Addr('10.0.2.2')!;
const DNS = parseIpv4Addr('10.0.2.3')!;
const DNS6 = parseIpv6Addr('fec0::3')!;

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

describe('slirp stack: DNS', () => {
  it('answers a UDP query to 10.0.2.3:53 from the dns-upstream resolver on 127.0.0.1', async () => {
    const dns = await dnsTestServer(cleanups, Uint8Array.of(192, 0, 2, 80));
    const { guest, backend } = await guestWith(cleanups, { 'dns-upstream': [`127.0.0.1#${dns.port}`] });
    await guest.dhcp();
    await guest.arp(GW);
    guest.sendUdp(DNS, 53, dnsQuery(0xbeef, 'example.test'), 3333);
    const r = await guest.recvUdp((u) => u.srcPort === 53 && u.dstPort === 3333, 'DNS answer');
    expect(r.src).toBe(DNS);
    expect((r.data[0]! << 8) | r.data[1]!).toBe(0xbeef); // the guest's id, not the relay's
    expect(r.data[2]! & 0x80).toBe(0x80);
    expect(Array.from(r.data.subarray(r.data.length - 4))).toEqual([192, 0, 2, 80]);
    expect(dns.queries.udp).toBe(1);
    expect(guest.badChecksums).toEqual([]);
    expect(backend.stats().extra?.['dns-answer']).toBe(1);
  });

  it('relays DNS over TCP to 10.0.2.3:53 to the same upstream', async () => {
    const dns = await dnsTestServer(cleanups, Uint8Array.of(192, 0, 2, 81));
    const { guest } = await guestWith(cleanups, { 'dns-upstream': [`127.0.0.1#${dns.port}`] });
    await guest.dhcp();
    await guest.arp(GW);
    // Let the relay load its upstream list (it loads lazily on first use).
    const s = guest.connect(DNS, 53);
    await s.until(() => s.established || s.closedReason !== null, 'connected');
    expect(s.closedReason).toBeNull();
    const q = dnsQuery(0x1234, 'tcp.example.test');
    const framed = new Uint8Array(2 + q.length);
    framed[0] = q.length >>> 8;
    framed[1] = q.length & 0xff;
    framed.set(q, 2);
    s.write(framed);
    await s.until(() => s.received >= 2 && s.received >= 2 + ((s.data()[0]! << 8) | s.data()[1]!), 'TCP DNS answer');
    const a = s.data().subarray(2);
    expect((a[0]! << 8) | a[1]!).toBe(0x1234);
    expect(Array.from(a.subarray(a.length - 4))).toEqual([192, 0, 2, 81]);
    expect(dns.queries.tcp).toBe(1);
    s.end();
    await s.until(() => s.peerFin, 'FIN');
    expect(guest.badChecksums).toEqual([]);
  });

  it('relays the very first guest connection to 10.0.2.3:53 over TCP when the upstreams come from the host (resolv.conf)', async () => {
    const dns = await dnsTestServer(cleanups, Uint8Array.of(192, 0, 2, 83));
    // The host's resolver list, as systemResolvers() would read it — here our test server.
    const io = { ...createNodeHostIo(), systemResolvers: async () => [{ address: '127.0.0.1', port: dns.port, family: 4 as const }] };
    const { guest } = await guestWith(cleanups, { "dns-upstream": [] }, { rt: { io } });
    await guest.dhcp();
    await guest.arp(GW);
    const s = guest.connect(DNS, 53);
    await s.until(() => s.established || s.closedReason !== null, 'connected');
    expect(s.closedReason).toBeNull();
    const q = dnsQuery(0x7777, 'first.example.test');
    s.write(Uint8Array.of(q.length >>> 8, q.length & 0xff, ...q));
    await s.until(() => s.received >= 2 && s.received >= 2 + ((s.data()[0]! << 8) | s.data()[1]!), 'TCP DNS answer');
    expect(Array.from(s.data().subarray(s.received - 4))).toEqual([192, 0, 2, 83]);
    s.end();
  });

  it('relays DNS over TCP to [fec0::3]:53', async () => {
    const dns = await dnsTestServer(cleanups, Uint8Array.of(192, 0, 2, 84));
    const { guest } = await guestWith(cleanups, { 'dns-upstream': [`127.0.0.1#${dns.port}`] });
    await guest.slaac();
    await guest.ndpResolve(parseIpv6Addr('fec0::2')!);
    const s = guest.connect(DNS6, 53);
    await s.until(() => s.established || s.closedReason !== null, 'connected');
    expect(s.closedReason).toBeNull();
    const q = dnsQuery(0x6666, 'tcp6.example.test');
    s.write(Uint8Array.of(q.length >>> 8, q.length & 0xff, ...q));
    await s.until(() => s.received >= 2 && s.received >= 2 + ((s.data()[0]! << 8) | s.data()[1]!), 'TCP DNS answer');
    const a = s.data().subarray(2);
    expect((a[0]! << 8) | a[1]!).toBe(0x6666);
    expect(Array.from(a.subarray(a.length - 4))).toEqual([192, 0, 2, 84]);
    expect(dns.queries.tcp).toBe(1);
    s.end();
    expect(guest.badChecksums).toEqual([]);
  });

  it('answers a UDP query to fec0::3 over IPv6 from the IPv4 upstream', async () => {
    const dns = await dnsTestServer(cleanups, Uint8Array.of(192, 0, 2, 82));
    const { guest } = await guestWith(cleanups, { 'dns-upstream': [`127.0.0.1#${dns.port}`] });
    await guest.slaac();
    guest.sendUdp6(DNS6, 53, dnsQuery(0x4242, 'v6.example.test'), 3334);
    const r = await guest.recvUdp((u) => u.srcPort === 53 && u.dstPort === 3334, 'DNS answer over IPv6');
    expect(Array.from(r.src as Uint8Array)).toEqual(Array.from(DNS6));
    expect((r.data[0]! << 8) | r.data[1]!).toBe(0x4242);
    expect(Array.from(r.data.subarray(r.data.length - 4))).toEqual([192, 0, 2, 82]);
    expect(guest.badChecksums).toEqual([]);
  });
});
