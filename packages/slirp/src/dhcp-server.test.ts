import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  DHCPV4_FLAG_BROADCAST,
  Dhcpv4MessageType,
  Dhcpv4Op,
  Dhcpv4View,
  Ipv4View,
  UdpView,
  dhcpv4Len,
  emitDhcpv4,
  parseDhcpv4,
} from '@guestnet/wire';
import type { Dhcpv4Options, Dhcpv4Repr } from '@guestnet/wire';
import { DECLINE_HOLD_MS, DHCP_LEASE_SECONDS, DhcpServer } from '@guestnet/core';
import { ip4 } from './config.ts';
import { fakeContext } from './testing/fake-context.ts';

const MAC_A = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56);
const MAC_B = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x57);
const BCAST_MAC = Uint8Array.of(255, 255, 255, 255, 255, 255);
const A = (s: string): number => ip4(s)!;

function macN(i: number): Uint8Array {
  return Uint8Array.of(0x52, 0x54, 0, 0, (i >>> 8) & 255, i & 255);
}

function setup(options: Record<string, unknown> = {}) {
  const { cfg, ctx, frames, drops, counts, learned4, clock } = fakeContext(options, { guestMac: MAC_A });
  const server = new DhcpServer(ctx);
  return { cfg, frames, drops, counts, learned: learned4, clock, server };
}

type Env = ReturnType<typeof setup>;

function request(mac: Uint8Array, options: Dhcpv4Options, fields: Partial<Dhcpv4Repr> = {}): Uint8Array {
  const r: Dhcpv4Repr = {
    op: Dhcpv4Op.BOOTREQUEST,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: 0x3903f326,
    secs: 0,
    flags: 0,
    ciaddr: 0,
    yiaddr: 0,
    siaddr: 0,
    giaddr: 0,
    chaddr: mac,
    sname: '',
    file: '',
    options,
    ...fields,
  };
  const buf = new Uint8Array(dhcpv4Len(r));
  emitDhcpv4(r, buf, 0);
  return buf;
}

interface Reply {
  dstMac: Uint8Array;
  src: number;
  dst: number;
  srcPort: number;
  dstPort: number;
  msg: Dhcpv4Repr;
}

/** Parse a delivered frame down to the DHCP message, verifying both checksums. */
function parseReply(f: Uint8Array): Reply {
  expect((f[12]! << 8) | f[13]!).toBe(0x0800);
  const ip = new Ipv4View();
  expect(ip.reset(f, 14, f.length - 14)).toBe(true);
  expect(ip.verifyChecksum()).toBe(true);
  expect(ip.protocol).toBe(17);
  const udp = new UdpView();
  expect(udp.reset(f, ip.payloadOffset, ip.payloadLen)).toBe(true);
  expect(udp.verifyChecksumV4(f, 14)).toBe(true);
  const v = new Dhcpv4View();
  expect(v.reset(f, udp.payloadOffset, udp.payloadLen)).toBe(true);
  const msg = parseDhcpv4(v);
  expect(msg).not.toBeNull();
  return { dstMac: f.slice(0, 6), src: ip.src, dst: ip.dst, srcPort: udp.srcPort, dstPort: udp.dstPort, msg: msg! };
}

function send(env: Env, mac: Uint8Array, options: Dhcpv4Options, fields: Partial<Dhcpv4Repr> = {}, srcIp = 0): Reply | null {
  const before = env.frames.length;
  env.server.handle(srcIp, 68, 0xffffffff, 67, request(mac, options, fields), mac);
  expect(env.frames.length - before).toBeLessThanOrEqual(1);
  return env.frames.length > before ? parseReply(env.frames[env.frames.length - 1]!) : null;
}

function discover(env: Env, mac: Uint8Array, extra: Dhcpv4Options = {}, fields: Partial<Dhcpv4Repr> = {}): Reply | null {
  return send(env, mac, { messageType: Dhcpv4MessageType.DISCOVER, ...extra }, fields);
}

function lease(env: Env, mac: Uint8Array): number {
  const offer = discover(env, mac)!;
  const ack = send(env, mac, { messageType: Dhcpv4MessageType.REQUEST, requestedIp: offer.msg.yiaddr, serverId: env.cfg.host })!;
  expect(ack.msg.options.messageType).toBe(Dhcpv4MessageType.ACK);
  return ack.msg.yiaddr;
}

describe('DhcpServer', () => {
  it('offers .15 then .16 to a second client', () => {
    const env = setup();
    expect(discover(env, MAC_A)!.msg.yiaddr).toBe(A('10.0.2.15'));
    expect(discover(env, MAC_B)!.msg.yiaddr).toBe(A('10.0.2.16'));
    // The first client asking again keeps its offer.
    expect(discover(env, MAC_A)!.msg.yiaddr).toBe(A('10.0.2.15'));
  });

  it('runs DISCOVER/OFFER/REQUEST/ACK with every standard option and learns the address', () => {
    const env = setup();
    const offer = discover(env, MAC_A, { paramRequestList: [1, 3, 6, 28, 51, 58, 59] })!;
    // Unicast to yiaddr at the chaddr MAC (no broadcast bit, RFC 2131 §4.1), from the gateway.
    expect(offer.dstMac).toEqual(MAC_A);
    expect(offer.src).toBe(A('10.0.2.2'));
    expect(offer.dst).toBe(A('10.0.2.15'));
    expect([offer.srcPort, offer.dstPort]).toEqual([67, 68]);
    const m = offer.msg;
    expect(m.op).toBe(Dhcpv4Op.BOOTREPLY);
    expect(m.xid).toBe(0x3903f326);
    expect(m.chaddr).toEqual(MAC_A);
    expect(m.yiaddr).toBe(A('10.0.2.15'));
    expect(m.siaddr).toBe(0);
    expect(m.file).toBe('');
    const expected = {
      messageType: Dhcpv4MessageType.OFFER,
      serverId: A('10.0.2.2'),
      leaseTime: DHCP_LEASE_SECONDS,
      renewalTime: DHCP_LEASE_SECONDS / 2,
      rebindingTime: (DHCP_LEASE_SECONDS * 7) / 8,
      subnetMask: A('255.255.255.0'),
      routers: [A('10.0.2.2')],
      dnsServers: [A('10.0.2.3')],
      broadcastAddr: A('10.0.2.255'),
    };
    const { order, ...opts } = m.options;
    expect(opts).toEqual(expected);
    // Message type and server id first, then the parameter request list's order.
    expect(order).toEqual([53, 54, 1, 3, 6, 28, 51, 58, 59]);
    expect(env.learned).toEqual([]);

    const ack = send(env, MAC_A, { messageType: Dhcpv4MessageType.REQUEST, requestedIp: m.yiaddr, serverId: A('10.0.2.2') })!;
    expect(ack.dst).toBe(A('10.0.2.15'));
    expect(ack.msg.yiaddr).toBe(A('10.0.2.15'));
    const { order: _o, ...ackOpts } = ack.msg.options;
    expect(ackOpts).toEqual({ ...expected, messageType: Dhcpv4MessageType.ACK });
    expect(env.learned).toEqual([{ ip: A('10.0.2.15'), mac: MAC_A }]);
    expect(env.server.leases()).toEqual([{ ip: A('10.0.2.15'), mac: MAC_A, expires: 1000 + DHCP_LEASE_SECONDS * 1000 }]);
    expect(env.server.guestAddress(MAC_A)).toBe(A('10.0.2.15'));
    expect(env.server.guestAddress(MAC_B)).toBe(0);
    expect(env.counts.get('dhcp-ack')).toBe(1);
  });

  it('broadcasts to ff:ff:ff:ff:ff:ff when the client sets the broadcast bit', () => {
    const env = setup();
    const offer = discover(env, MAC_A, {}, { flags: DHCPV4_FLAG_BROADCAST })!;
    expect(offer.dstMac).toEqual(BCAST_MAC);
    expect(offer.dst).toBe(0xffffffff);
    expect(offer.msg.flags).toBe(DHCPV4_FLAG_BROADCAST);
    expect(offer.msg.yiaddr).toBe(A('10.0.2.15'));
  });

  it('keeps the address on renewal and answers unicast to ciaddr', () => {
    const env = setup();
    const ip = lease(env, MAC_A);
    env.clock.advance(12 * 3600 * 1000);
    const ack = send(env, MAC_A, { messageType: Dhcpv4MessageType.REQUEST }, { ciaddr: ip }, ip)!;
    expect(ack.msg.options.messageType).toBe(Dhcpv4MessageType.ACK);
    expect(ack.msg.yiaddr).toBe(ip);
    expect(ack.msg.ciaddr).toBe(ip);
    expect(ack.dst).toBe(ip);
    expect(ack.dstMac).toEqual(MAC_A);
    expect(env.server.leases()[0]!.expires).toBe(env.clock.now() + DHCP_LEASE_SECONDS * 1000);
    expect(env.learned.length).toBe(2);
  });

  it('grants an INIT-REBOOT request for a free pool address (a guest remembering its lease)', () => {
    const env = setup();
    const ack = send(env, MAC_A, { messageType: Dhcpv4MessageType.REQUEST, requestedIp: A('10.0.2.20') })!;
    expect(ack.msg.options.messageType).toBe(Dhcpv4MessageType.ACK);
    expect(ack.msg.yiaddr).toBe(A('10.0.2.20'));
  });

  it('NAKs a foreign address, an address outside the pool and one leased to another client', () => {
    const env = setup();
    for (const want of ['192.168.1.50', '10.0.2.100']) {
      const nak = send(env, MAC_A, { messageType: Dhcpv4MessageType.REQUEST, requestedIp: A(want) })!;
      expect(nak.msg.options.messageType).toBe(Dhcpv4MessageType.NAK);
      expect(nak.msg.options.serverId).toBe(A('10.0.2.2'));
      expect(nak.msg.yiaddr).toBe(0);
      expect(nak.msg.options.leaseTime).toBeUndefined();
      // RFC 2131 §4.1: NAKs are broadcast.
      expect(nak.dst).toBe(0xffffffff);
      expect(nak.dstMac).toEqual(BCAST_MAC);
    }
    const ipA = lease(env, MAC_A);
    const nak = send(env, MAC_B, { messageType: Dhcpv4MessageType.REQUEST, requestedIp: ipA, serverId: A('10.0.2.2') })!;
    expect(nak.msg.options.messageType).toBe(Dhcpv4MessageType.NAK);
    const renewNak = send(env, MAC_B, { messageType: Dhcpv4MessageType.REQUEST }, { ciaddr: ipA }, ipA)!;
    expect(renewNak.msg.options.messageType).toBe(Dhcpv4MessageType.NAK);
    expect(env.counts.get('dhcp-nak')).toBe(4);
  });

  it('stays silent when the client selected another server, and frees its offer', () => {
    const env = setup();
    discover(env, MAC_A);
    expect(send(env, MAC_A, { messageType: Dhcpv4MessageType.REQUEST, requestedIp: A('10.0.2.15'), serverId: A('10.0.2.9') })).toBeNull();
    expect(env.drops.get('dhcp-other-server')).toBe(1);
    // .15 is free again; a new client still gets a never-used address first.
    expect(discover(env, MAC_B)!.msg.yiaddr).toBe(A('10.0.2.16'));
  });

  it('frees the address on RELEASE and offers it again', () => {
    const env = setup();
    const ip = lease(env, MAC_A);
    expect(send(env, MAC_A, { messageType: Dhcpv4MessageType.RELEASE, serverId: env.cfg.host }, { ciaddr: ip }, ip)).toBeNull();
    expect(env.server.leases()).toEqual([]);
    expect(env.server.guestAddress(MAC_A)).toBe(0);
    expect(env.counts.get('dhcp-release')).toBe(1);
    expect(discover(env, MAC_A)!.msg.yiaddr).toBe(ip);
  });

  it('hands a released address to another client once never-used ones are gone', () => {
    const env = setup();
    const ips: number[] = [];
    for (let i = 0; i < 16; i++) ips.push(lease(env, macN(i)));
    send(env, macN(3), { messageType: Dhcpv4MessageType.RELEASE }, { ciaddr: ips[3]! }, ips[3]!);
    expect(discover(env, macN(100))!.msg.yiaddr).toBe(ips[3]);
  });

  it('gives nothing to a 17th client when all 16 leases are used, and counts it', () => {
    const env = setup();
    const ips = new Set<number>();
    for (let i = 0; i < 16; i++) ips.add(lease(env, macN(i)));
    expect(ips.size).toBe(16);
    expect(Math.min(...ips)).toBe(A('10.0.2.15'));
    expect(Math.max(...ips)).toBe(A('10.0.2.30'));
    expect(discover(env, macN(16))).toBeNull();
    expect(env.drops.get('dhcp-no-address')).toBe(1);
    expect(env.server.leases().length).toBe(16);
  });

  it('reuses an expired lease for a new client after 24 hours', () => {
    const env = setup();
    for (let i = 0; i < 16; i++) lease(env, macN(i));
    env.clock.advance(DHCP_LEASE_SECONDS * 1000 + 1);
    expect(env.server.leases()).toEqual([]);
    expect(discover(env, macN(16))!.msg.yiaddr).toBe(A('10.0.2.15'));
  });

  it('holds an offer for its client only for a while', () => {
    const env = setup({ dhcpstart: '.253' });
    expect(env.cfg.dhcpCount).toBe(2);
    discover(env, macN(0));
    discover(env, macN(1));
    expect(discover(env, macN(2))).toBeNull();
    env.clock.advance(61_000);
    expect(discover(env, macN(2))!.msg.yiaddr).toBe(A('10.0.2.253'));
  });

  it('keys leases by the client identifier when one is sent', () => {
    const env = setup();
    const clientId = Uint8Array.of(1, 2, 3, 4);
    const offer = discover(env, MAC_A, { clientId })!;
    send(env, MAC_A, { messageType: Dhcpv4MessageType.REQUEST, requestedIp: offer.msg.yiaddr, serverId: env.cfg.host, clientId });
    // Same identifier behind a different NIC address: same lease.
    expect(discover(env, MAC_B, { clientId })!.msg.yiaddr).toBe(offer.msg.yiaddr);
    // Same MAC without the identifier: a different client.
    expect(discover(env, MAC_A)!.msg.yiaddr).toBe(A('10.0.2.16'));
  });

  it('keeps a declined address out of the pool for a while', () => {
    const env = setup();
    const ip = lease(env, MAC_A);
    expect(send(env, MAC_A, { messageType: Dhcpv4MessageType.DECLINE, requestedIp: ip, serverId: env.cfg.host })).toBeNull();
    expect(env.counts.get('dhcp-decline')).toBe(1);
    expect(discover(env, MAC_A)!.msg.yiaddr).toBe(A('10.0.2.16'));
    // An INIT-REBOOT for the declined address is refused too.
    expect(send(env, MAC_B, { messageType: Dhcpv4MessageType.REQUEST, requestedIp: ip })!.msg.options.messageType).toBe(Dhcpv4MessageType.NAK);
    env.clock.advance(DECLINE_HOLD_MS);
    expect(send(env, MAC_B, { messageType: Dhcpv4MessageType.REQUEST, requestedIp: ip })!.msg.options.messageType).toBe(Dhcpv4MessageType.ACK);
  });

  it('answers INFORM with configuration and no lease, unicast to ciaddr', () => {
    const env = setup();
    const ip = A('10.0.2.77');
    const ack = send(env, MAC_A, { messageType: Dhcpv4MessageType.INFORM }, { ciaddr: ip }, ip)!;
    expect(ack.msg.options.messageType).toBe(Dhcpv4MessageType.ACK);
    expect(ack.msg.yiaddr).toBe(0);
    expect(ack.msg.ciaddr).toBe(ip);
    expect(ack.dst).toBe(ip);
    expect(ack.msg.options.leaseTime).toBeUndefined();
    expect(ack.msg.options.renewalTime).toBeUndefined();
    expect(ack.msg.options.dnsServers).toEqual([A('10.0.2.3')]);
    expect(env.server.leases()).toEqual([]);
    expect(env.learned).toEqual([]);
  });

  it('sends hostname, domain, search list, MTU, TFTP server name and bootfile when configured', () => {
    const env = setup({
      hostname: 'guest1',
      domainname: 'example.test',
      dnssearch: ['example.test', 'corp.example.test'],
      mtu: 1400,
      tftp: '/srv/tftp',
      'tftp-server-name': 'boot.example.test',
      bootfile: 'pxelinux.0',
    });
    const offer = discover(env, MAC_A, { paramRequestList: [119, 67, 66, 26, 15, 12, 1] })!;
    const o = offer.msg.options;
    expect(o.hostname).toBe('guest1');
    expect(o.domainName).toBe('example.test');
    expect(o.domainSearch).toEqual(['example.test', 'corp.example.test']);
    expect(o.interfaceMtu).toBe(1400);
    expect(o.tftpServerName).toBe('boot.example.test');
    expect(o.bootfileName).toBe('pxelinux.0');
    expect(offer.msg.file).toBe('pxelinux.0');
    expect(offer.msg.siaddr).toBe(A('10.0.2.2'));
    expect(o.order!.slice(0, 9)).toEqual([53, 54, 119, 67, 66, 26, 15, 12, 1]);
  });

  it('leaves out the MTU option at 1500 and the optional names when unset', () => {
    const env = setup();
    const o = discover(env, MAC_A, { paramRequestList: [12, 15, 26, 66, 67, 119] })!.msg.options;
    for (const k of ['hostname', 'domainName', 'interfaceMtu', 'tftpServerName', 'bootfileName', 'domainSearch'] as const) {
      expect(o[k]).toBeUndefined();
    }
  });

  it('drops malformed requests and counts them', () => {
    const env = setup();
    const good = request(MAC_A, { messageType: Dhcpv4MessageType.DISCOVER });
    const badCookie = good.slice();
    badCookie[236] = 0;
    const overrun = good.slice();
    // Option 53 claims 200 octets; only ~60 remain.
    overrun[241] = 200;
    const noType = request(MAC_A, { hostname: 'x' });
    const reply = good.slice();
    reply[0] = Dhcpv4Op.BOOTREPLY;
    const cases = [good.subarray(0, 100), badCookie, overrun, noType, reply, new Uint8Array(0)];
    for (const c of cases) env.server.handle(0, 68, 0xffffffff, 67, c, MAC_A);
    expect(env.frames).toEqual([]);
    expect(env.drops.get('dhcp-malformed')).toBe(cases.length);
  });

  it('never throws and never answers more than once on arbitrary input', () => {
    const env = setup();
    const good = request(MAC_A, { messageType: Dhcpv4MessageType.DISCOVER });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 400 }), fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }).map((edits) => {
        const b = good.slice();
        for (const [i, v] of edits) b[i] = v;
        return b;
      })), (bytes) => {
        const before = env.frames.length;
        env.server.handle(0, 68, 0xffffffff, 67, bytes, MAC_A);
        expect(env.frames.length - before).toBeLessThanOrEqual(1);
      }),
    );
  });

  it('ignores everything after close', () => {
    const env = setup();
    env.server.close();
    expect(discover(env, MAC_A)).toBeNull();
  });
});
