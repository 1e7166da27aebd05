/**
 * Stack tier: a scripted guest (testing/guest.ts) drives a UipBackend whose host side is real
 * Node sockets on 127.0.0.1 only. DNS never leaves the machine: every backend here gets a
 * `dns-upstream` on 127.0.0.1 or a documentation address that is never queried.
 */
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, GuestnetError, ManualClock, TcpFlag, createBackend, parseHostFwd } from '@guestnet/core';
import { ipv4ToString, parseIpv4Addr } from '@guestnet/wire';
import { UipBackend, type UipRuntime } from './uip.ts';
import { UipTestGuest } from './testing/guest.ts';
import { resolveUipConfig } from './config.ts';

const HOST = parseIpv4Addr('192.168.33.1')!;
const GUEST = parseIpv4Addr('192.168.33.15')!;
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(opts: Record<string, unknown> = {}, rt: UipRuntime = {}, dhcp = true): Promise<{ b: UipBackend; g: UipTestGuest }> {
  const b = new UipBackend({ 'dns-upstream': ['127.0.0.1#5353'], ...opts }, rt);
  cleanups.push(() => b.close());
  const g = new UipTestGuest(b);
  await g.start();
  if (dhcp) await g.dhcp();
  return { b, g };
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function tcpServer(onConn: (s: net.Socket) => void): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, onConn);
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return (server.address() as net.AddressInfo).port;
}

async function udpSocket(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  cleanups.push(() => s.close());
  return s;
}

describe('uip config', () => {
  it('has kvmtool defaults: guest 192.168.33.15, host 192.168.33.1, MACs 02:15:15:15:15:15 / 02:01:01:01:01:01', () => {
    const c = resolveUipConfig({});
    expect(ipv4ToString(c.guestIp)).toBe('192.168.33.15');
    expect(ipv4ToString(c.hostIp)).toBe('192.168.33.1');
    expect([...c.guestMac]).toEqual([2, 0x15, 0x15, 0x15, 0x15, 0x15]);
    expect([...c.hostMac]).toEqual([2, 1, 1, 1, 1, 1]);
    expect(c.dhcpCount).toBe(1);
  });

  it('rejects a guest_ip outside host_ip\'s /24 with GUESTNET_BAD_CONFIG', () => {
    expect(() => resolveUipConfig({ guest_ip: '10.0.0.5' })).toThrow(GuestnetError);
    try {
      resolveUipConfig({ guest_ip: '10.0.0.5' });
    } catch (e) {
      expect((e as GuestnetError).code).toBe(ErrorCode.BadConfig);
    }
  });

  it('is reachable through the config syntax: backend=uip,guest_ip=…,host_ip=…', async () => {
    const b = await createBackend('backend=uip,guest_ip=10.1.2.3,host_ip=10.1.2.1,dns-upstream=127.0.0.1#5353', { importer: (s) => (s === '@guestnet/uip' ? import('./index.ts') : import(s)) });
    cleanups.push(() => b.close());
    expect(b.type).toBe('uip');
    const g = new UipTestGuest(b);
    await g.start();
    const ack = await g.dhcp();
    expect(ipv4ToString(ack.yiaddr)).toBe('10.1.2.3');
  });
});

describe('uip DHCP, ARP and ICMP', () => {
  it('leases guest_ip with router host_ip, a /24 and host_ip as DNS for a loopback upstream', async () => {
    const { g } = await setup({}, {}, false);
    const ack = await g.dhcp();
    expect(ipv4ToString(ack.yiaddr)).toBe('192.168.33.15');
    expect(ack.options.routers?.map(ipv4ToString)).toEqual(['192.168.33.1']);
    expect(ipv4ToString(ack.options.subnetMask!)).toBe('255.255.255.0');
    expect(ack.options.dnsServers?.map(ipv4ToString)).toEqual(['192.168.33.1']);
    expect(g.badChecksums).toEqual([]);
  });

  it('hands the guest the host\'s non-loopback resolvers as they are (kvmtool semantics)', async () => {
    const { g } = await setup({ 'dns-upstream': ['192.0.2.53', '198.51.100.53'] }, {}, false);
    const ack = await g.dhcp();
    expect(ack.options.dnsServers?.map(ipv4ToString)).toEqual(['192.0.2.53', '198.51.100.53']);
  });

  it('answers ARP for host_ip with host_mac and stays silent for other addresses', async () => {
    const { g } = await setup({ host_mac: '02:aa:bb:cc:dd:ee' });
    g.arp(parseIpv4Addr('192.168.33.77')!);
    g.arp(HOST);
    await g.until(() => g.arpReplies.length > 0, 'ARP reply');
    expect(g.arpReplies).toHaveLength(1);
    expect(ipv4ToString(g.arpReplies[0]!.ip)).toBe('192.168.33.1');
    expect([...g.arpReplies[0]!.mac]).toEqual([2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
  });

  it('answers ping to host_ip and drops (and counts) ping to any other address', async () => {
    const { b, g } = await setup();
    g.ping(parseIpv4Addr('192.0.2.1')!, 1);
    g.ping(HOST, 2);
    await g.until(() => g.echoReplies.length > 0, 'echo reply');
    expect(g.echoReplies).toEqual([{ src: HOST, seq: 2 }]);
    expect(b.stats().drops['icmp-unsupported']).toBe(1);
  });

  it('drops IPv6, fragments and foreign source addresses by reason', async () => {
    const { b, g } = await setup();
    const ipv6 = new Uint8Array(60);
    ipv6.set(g.mac, 6);
    ipv6[12] = 0x86;
    ipv6[13] = 0xdd;
    b.send(ipv6);
    g.ip = parseIpv4Addr('192.168.33.99')!;
    g.ping(HOST, 3);
    expect(b.stats().drops.ipv6).toBe(1);
    expect(b.stats().drops['ipv4-foreign-source']).toBe(1);
  });
});

describe('uip TCP proxy', () => {
  it('relays 1 MiB guest → host → guest through host_ip (→ 127.0.0.1), verified by hash', async () => {
    const port = await tcpServer((s) => s.pipe(s));
    const { b, g } = await setup();
    const c = await g.connect(HOST, port);
    const data = randomBytes(1 << 20);
    c.write(data);
    c.end();
    await g.until(() => c.finRecv, 'echo and FIN', 20_000);
    expect(sha(c.data())).toBe(sha(data));
    expect(c.windowViolations).toBe(0);
    expect(g.badChecksums).toEqual([]);
    await g.until(() => b.stats().flows.tcp === 0, 'flow gone');
  });

  it('downloads 4 MiB host → guest, never beyond a small guest window, verified by hash', async () => {
    const data = randomBytes(4 << 20);
    const port = await tcpServer((s) => s.end(data));
    const { g } = await setup();
    const c = await g.connect(HOST, port, 3000);
    // An application that reads in bursts: reopen the window whenever it is nearly consumed.
    let last = 0;
    await g.until(
      () => {
        if (c.received - last >= 2000) {
          last = c.received;
          c.setWindow(3000);
        }
        return c.finRecv;
      },
      'download',
      30_000,
    );
    expect(c.received).toBe(data.length);
    expect(sha(c.data())).toBe(sha(data));
    expect(c.windowViolations).toBe(0);
  });

  it('answers the SYN only once the host connected, and with RST when the host refuses', async () => {
    const { b, g } = await setup();
    const closed = await tcpServer(() => {});
    cleanups.splice(-1, 1)[0]!(); // close the listener again: the port now refuses
    await new Promise((r) => setTimeout(r, 20));
    await expect(g.connect(HOST, closed)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(b.stats().extra?.['tcp-connect-refused']).toBe(1);
    expect(b.stats().flows.tcp).toBe(0);
  });

  it('relays a host RST to the guest and a guest RST to the host', async () => {
    let hostSock: net.Socket | null = null;
    const port = await tcpServer((s) => {
      hostSock = s;
      s.on('error', () => {});
    });
    const { b, g } = await setup();
    const c1 = await g.connect(HOST, port);
    await waitFor(() => hostSock !== null);
    hostSock!.resetAndDestroy();
    await g.until(() => c1.state === 'reset', 'RST from uip');
    hostSock = null;
    const c2 = await g.connect(HOST, port);
    await waitFor(() => hostSock !== null);
    const closed = new Promise<void>((r) => hostSock!.on('close', () => r()));
    c2.segment(TcpFlag.RST, c2.sndNxt, 0, 0);
    await closed;
    expect(b.stats().extra?.['tcp-host-reset']).toBe(1);
    expect(b.stats().extra?.['tcp-rst-from-guest']).toBe(1);
    expect(b.stats().flows.tcp).toBe(0);
  });

  it('answers a segment for no connection with RST', async () => {
    const { b, g } = await setup();
    const c = await (async () => {
      const port = await tcpServer((s) => s.end());
      return g.connect(HOST, port);
    })();
    await g.until(() => c.finRecv, 'FIN');
    c.end();
    await g.until(() => b.stats().flows.tcp === 0, 'closed');
    c.state = 'open';
    c.segment(0x10 | 0x08, c.sndNxt, 0, 0);
    await g.until(() => c.state === 'reset', 'RST');
    expect(b.stats().drops['tcp-no-connection']).toBe(1);
  });
});

describe('uip UDP proxy', () => {
  it('relays datagrams to host_ip:port (→ 127.0.0.1) and the replies back from host_ip', async () => {
    const srv = await udpSocket();
    srv.on('message', (m, r) => srv.send(Buffer.concat([Buffer.from('re:'), m]), r.port, r.address));
    const { b, g } = await setup();
    const u = g.udp();
    u.send(HOST, srv.address().port, new TextEncoder().encode('hello'));
    const d = await u.recv();
    expect(new TextDecoder().decode(d.data)).toBe('re:hello');
    expect(d.src).toBe(HOST);
    expect(d.sport).toBe(srv.address().port);
    expect(b.stats().flows.udp).toBe(1);
  });

  it('expires an idle flow after udp-timeout', async () => {
    const clock = new ManualClock();
    const srv = await udpSocket();
    srv.on('message', (m, r) => srv.send(m, r.port, r.address));
    const { b, g } = await setup({ 'udp-timeout': 5 }, { clock });
    const u = g.udp();
    u.send(HOST, srv.address().port, Uint8Array.of(1));
    await u.recv();
    clock.advance(4000);
    expect(b.stats().flows.udp).toBe(1);
    clock.advance(1500);
    expect(b.stats().flows.udp).toBe(0);
    expect(b.stats().extra?.['udp-flow-expired']).toBe(1);
  });

  it('relays host_ip:53 to the dns-upstream on 127.0.0.1', async () => {
    const dns = await udpSocket();
    dns.on('message', (m, r) => dns.send(m, r.port, r.address));
    const { g } = await setup({ 'dns-upstream': [`127.0.0.1#${dns.address().port}`] });
    const u = g.udp();
    u.send(HOST, 53, Uint8Array.of(0xab, 0xcd, 1, 0));
    const d = await u.recv();
    expect([...d.data]).toEqual([0xab, 0xcd, 1, 0]);
    expect(d.sport).toBe(53);
  });
});

describe('uip hostfwd', () => {
  it('forwards a host TCP port into the guest (runtime add/list/remove), data verified by hash', async () => {
    const { b, g } = await setup();
    const bound = await b.hostfwd.add(parseHostFwd('tcp:127.0.0.1:0-:8080'));
    expect(bound.host.kind === 'inet' && bound.host.port).toBeGreaterThan(0);
    expect(b.hostfwd.list()).toHaveLength(1);
    const up = randomBytes(300_000);
    g.listen(8080, (c) => {
      c.write(up);
      c.end();
    });
    const sock = net.connect({ host: '127.0.0.1', port: bound.host.kind === 'inet' ? bound.host.port : 0 });
    cleanups.push(() => sock.destroy());
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    await new Promise<void>((r) => sock.on('end', () => r()));
    expect(sha(Buffer.concat(chunks))).toBe(sha(up));
    expect(await b.hostfwd.remove({ proto: 'tcp', host: bound.host })).toBe(true);
    expect(b.hostfwd.list()).toHaveLength(0);
  });

  it('forwards a host UDP port into the guest and the guest\'s answers back', async () => {
    const { b, g } = await setup();
    const bound = await b.hostfwd.add(parseHostFwd('udp:127.0.0.1:0-:5353'));
    const u = g.udp(5353);
    const client = await udpSocket();
    const port = bound.host.kind === 'inet' ? bound.host.port : 0;
    client.send(Buffer.from('ping'), port, '127.0.0.1');
    const d = await u.recv();
    expect(new TextDecoder().decode(d.data)).toBe('ping');
    expect(d.src).toBe(HOST);
    const answer = new Promise<Buffer>((r) => client.once('message', (m) => r(m)));
    u.send(HOST, d.sport, new TextEncoder().encode('pong'));
    expect((await answer).toString()).toBe('pong');
  });

  it('rejects a forward to an address other than guest_ip with GUESTNET_BAD_CONFIG', async () => {
    const { b } = await setup();
    await expect(b.hostfwd.add(parseHostFwd('tcp:127.0.0.1:0-10.0.0.9:22'))).rejects.toMatchObject({ code: ErrorCode.BadConfig });
    expect(b.hostfwd.list()).toHaveLength(0);
  });

  it('fails init with GUESTNET_ADDR_IN_USE when a hostfwd port is taken', async () => {
    const port = await tcpServer(() => {});
    const b = new UipBackend({ 'dns-upstream': ['127.0.0.1#5353'], hostfwd: [parseHostFwd(`tcp:127.0.0.1:${port}-:22`)] });
    cleanups.push(() => b.close());
    await expect(b.init(() => {})).rejects.toMatchObject({ code: ErrorCode.AddrInUse });
  });
});

describe('uip limits and instances', () => {
  it('refuses connections beyond max-tcp-flows with RST and counts them', async () => {
    const port = await tcpServer(() => {});
    const { b, g } = await setup({ 'max-tcp-flows': 1 });
    await g.connect(HOST, port);
    await expect(g.connect(HOST, port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(b.stats().drops['tcp-flow-limit']).toBe(1);
  });

  it('drops datagrams that would open a flow beyond max-udp-flows', async () => {
    const srv = await udpSocket();
    const { b, g } = await setup({ 'max-udp-flows': 1 });
    g.udp().send(HOST, srv.address().port, Uint8Array.of(1));
    g.udp().send(HOST, srv.address().port, Uint8Array.of(2));
    expect(b.stats().flows.udp).toBe(1);
    expect(b.stats().drops['udp-flow-limit']).toBe(1);
  });

  it('refuses destinations outside allow= with RST (TCP) and a drop (UDP)', async () => {
    const port = await tcpServer(() => {});
    const { b, g } = await setup({ allow: ['10.0.0.0/8'] });
    await expect(g.connect(HOST, port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    g.udp().send(HOST, port, Uint8Array.of(1));
    expect(b.stats().drops.allow).toBe(2);
  });

  it('runs two instances in one process with separate addresses and flows', async () => {
    const port = await tcpServer((s) => s.end('hi'));
    const a = await setup();
    const z = await setup({ guest_ip: '10.9.9.9', host_ip: '10.9.9.1' });
    expect(ipv4ToString(z.g.ip)).toBe('10.9.9.9');
    const ca = await a.g.connect(HOST, port);
    const cz = await z.g.connect(parseIpv4Addr('10.9.9.1')!, port);
    await a.g.until(() => ca.finRecv, 'a');
    await z.g.until(() => cz.finRecv, 'z');
    expect(new TextDecoder().decode(ca.data())).toBe('hi');
    expect(new TextDecoder().decode(cz.data())).toBe('hi');
    expect(a.b.stats().extra?.['tcp-connect']).toBe(1);
    expect(z.b.stats().extra?.['tcp-connect']).toBe(1);
  });
});
