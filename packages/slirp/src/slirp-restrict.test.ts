/**
 * Stack tier, restrict=on and the allow-list. Nothing here sends real traffic off the host:
 * 192.0.2.1 (TEST-NET-1) is only ever used where the stack must drop it before any host socket
 * exists, which a spying HostIo proves.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import { parseIpv4Addr } from '@guestnet/wire';
import { Cleanups, dnsQuery, dnsTestServer, echoServer, guestWith, sleep, spyingIo } from './testing/harness.ts';

const GW = parseIpv4Addr('10.0.2.2')!;
const DNS = parseIpv4Addr('10.0.2.3')!;
const OUTSIDE = parseIpv4Addr('192.0.2.1')!;

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

describe('slirp stack: restrict and allow-list', () => {
  it('with restrict=on drops TCP and UDP to an outside address as "restrict" before any host socket is opened', async () => {
    const { io, opened } = spyingIo();
    const { guest, backend } = await guestWith(cleanups, { restrict: true }, { rt: { io } });
    await guest.dhcp();
    await guest.arp(GW);
    const s = guest.connect(OUTSIDE, 80);
    guest.sendUdp(OUTSIDE, 53, dnsQuery(1, 'x.test'), 4444);
    await sleep(100);
    const st = backend.stats();
    expect(st.drops.restrict).toBe(2);
    expect(opened.tcp).toEqual([]);
    expect(opened.udp).toBe(0);
    expect(opened.udpSentOutside).toEqual([]);
    expect(st.flows).toEqual({ tcp: 0, udp: 0 });
    expect(s.established).toBe(false);
    s.abort();
  });

  it('with restrict=on still serves DHCP, DNS, ping to the gateway and hostfwd peers, but not the host loopback', async () => {
    const dns = await dnsTestServer(cleanups);
    const echo = await echoServer(cleanups);
    const { guest, backend } = await guestWith(cleanups, { restrict: true, 'dns-upstream': [`127.0.0.1#${dns.port}`] });
    await guest.dhcp();
    await guest.arp(GW);
    guest.ping(GW, 1, 1);
    await guest.until(() => guest.icmp.some((m) => m.type === 0), 'echo reply');
    guest.sendUdp(DNS, 53, dnsQuery(7, 'a.test'), 4445);
    await guest.recvUdp((u) => u.srcPort === 53 && u.dstPort === 4445, 'DNS answer');
    // hostfwd: a host client reaches a guest server.
    guest.listen(7, (s) => {
      s.write(new TextEncoder().encode('from guest'));
      s.end();
    });
    const rule = await backend.hostfwd.add({ proto: 'tcp', host: { kind: 'inet', addr: '127.0.0.1', port: 0 }, guestAddr: '', guestPort: 7 });
    const port = rule.host.kind === 'inet' ? rule.host.port : 0;
    const banner = await new Promise<string>((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1');
      let t = '';
      c.on('data', (d) => (t += d.toString()));
      c.on('end', () => {
        c.end();
        resolve(t);
      });
      c.on('error', reject);
    });
    expect(banner).toBe('from guest');
    // libslirp's restrict isolates the guest from the host too: the gateway's loopback mapping
    // is not a virtual service, so a connection to 10.0.2.2:<host port> is dropped.
    const before = backend.stats().drops.restrict ?? 0;
    const s = guest.connect(GW, echo.port);
    guest.sendUdp(GW, echo.port, new Uint8Array(4), 4446);
    await sleep(100);
    expect(s.established).toBe(false);
    expect(echo.sockets.size).toBe(0);
    expect(backend.stats().drops.restrict).toBe(before + 2);
    expect(backend.stats().flows.udp).toBe(0);
    s.abort();
  });

  it('applies the allow-list to outside destinations only: 10.0.2.2 → 127.0.0.1 works, 192.0.2.1 is refused unsent', async () => {
    // The allow-list (`allow=`) filters where the NAT may go on the outside. The gateway's
    // loopback mapping, the DNS relay and guestfwd targets are configured explicitly and are not
    // filtered by it, so allow=127.0.0.1/32 neither enables nor blocks 10.0.2.2 → 127.0.0.1; an
    // outside address not on the list is refused with RST before any socket is opened.
    const { io, opened } = spyingIo();
    const echo = await echoServer(cleanups);
    const { guest, backend } = await guestWith(cleanups, { allow: ['127.0.0.1/32'] }, { rt: { io } });
    await guest.dhcp();
    await guest.arp(GW);
    const ok = guest.connect(GW, echo.port);
    await ok.until(() => ok.established, 'connected through the gateway');
    ok.write(new TextEncoder().encode('x'));
    await ok.until(() => ok.received === 1, 'echo');
    const refused = guest.connect(OUTSIDE, 443);
    await refused.until(() => refused.closedReason !== null, 'RST');
    expect(refused.closedReason).toBe('reset');
    expect(backend.stats().drops['not-allowed']).toBe(1);
    expect(opened.tcp).toEqual([`127.0.0.1:${echo.port}`]);
    ok.end();
  });
});
