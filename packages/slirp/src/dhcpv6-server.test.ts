import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  DHCPV6_ALL_SERVERS_AND_RELAYS,
  Dhcpv6MsgType,
  Dhcpv6StatusCode,
  Dhcpv6View,
  Ipv6View,
  UdpView,
  dhcpv6DuidLl,
  dhcpv6DuidLlt,
  dhcpv6Len,
  emitDhcpv6,
  ipv6ToString,
  macToString,
  parseDhcpv6,
  type Dhcpv6Options,
} from '@guestnet/wire';
import { DHCPV6_INFO_REFRESH_S, DHCPV6_OPTION_SOL_MAX_RT, Dhcpv6Server } from './dhcpv6-server.ts';
import { ip6 } from './config.ts';
import { fakeContext } from './testing/fake-context.ts';

const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56);
const OTHER_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 9);
const A = (s: string): Uint8Array => ip6(s)!;
const GUEST_LL = A('fe80::5054:ff:fe12:3456');
const CLIENT_DUID = dhcpv6DuidLlt(GUEST_MAC, 1_700_000_000);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));

function setup(options: Record<string, unknown> = { dnssearch: ['example.com', 'corp.test'] }) {
  const { cfg, ctx, frames, drops, counts } = fakeContext(options, { guestMac: OTHER_MAC });
  const server = new Dhcpv6Server(ctx);
  return { cfg, frames, drops, counts, server };
}

function msg(msgType: number, options: Dhcpv6Options, transactionId = 0xabcdef): Uint8Array {
  const r = { msgType, transactionId, options };
  const b = new Uint8Array(dhcpv6Len(r));
  emitDhcpv6(r, b, 0);
  return b;
}

function send(server: Dhcpv6Server, payload: Uint8Array, dst = DHCPV6_ALL_SERVERS_AND_RELAYS, src = GUEST_LL): void {
  server.handle(src, 546, dst, 547, payload, GUEST_MAC);
}

/** Parse a frame we sent: Ethernet + IPv6 + UDP (checksum verified) + DHCPv6. */
function reply(f: Uint8Array) {
  expect(f[12]).toBe(0x86);
  expect(f[13]).toBe(0xdd);
  const ip = new Ipv6View();
  expect(ip.reset(f, 14, f.length - 14)).toBe(true);
  expect(ip.nextHeader).toBe(17);
  const u = new UdpView();
  expect(u.reset(f, 54, ip.payloadLen)).toBe(true);
  expect(u.verifyChecksumV6(f, 14)).toBe(true);
  const v = new Dhcpv6View();
  expect(v.reset(f, u.payloadOffset, u.payloadLen)).toBe(true);
  return {
    dstMac: macToString(f, 0),
    src: ipv6ToString(f, 22),
    dst: ipv6ToString(f, 38),
    srcPort: u.srcPort,
    dstPort: u.dstPort,
    payload: f.slice(u.payloadOffset, u.payloadOffset + u.payloadLen),
    msg: parseDhcpv6(v)!,
  };
}

describe('Dhcpv6Server › Information-Request', () => {
  it('replies with server id, echoed client id, DNS server, search list and refresh time', () => {
    const { server, frames, counts, cfg } = setup();
    send(server, msg(Dhcpv6MsgType.INFORMATION_REQUEST, { clientId: CLIENT_DUID, oro: [23, 24], elapsedTime: 0 }));
    expect(frames).toHaveLength(1);
    const r = reply(frames[0]!);
    expect(r.dstMac).toBe('52:54:00:12:34:56');
    expect(r.src).toBe('fe80::2');
    expect(r.dst).toBe(ipv6ToString(GUEST_LL));
    expect(r.srcPort).toBe(547);
    expect(r.dstPort).toBe(546);
    expect(r.msg.msgType).toBe(Dhcpv6MsgType.REPLY);
    expect(r.msg.transactionId).toBe(0xabcdef);
    const o = r.msg.options;
    expect(o.serverId).toEqual(dhcpv6DuidLl(cfg.gatewayMac));
    expect(o.clientId).toEqual(CLIENT_DUID);
    expect(o.dnsServers).toEqual([A('fec0::3')]);
    expect(o.domainList).toEqual(['example.com', 'corp.test']);
    expect(o.informationRefreshTime).toBe(DHCPV6_INFO_REFRESH_S);
    expect(o.status).toBeUndefined();
    expect(o.iaNa).toBeUndefined();
    expect(counts.get('dhcpv6-info-reply')).toBe(1);
  });

  it('produces this exact reply for a minimal Information-Request', () => {
    const { server, frames } = setup({ dnssearch: ['example.com'] });
    // type 11, xid 0x010203, client id = DUID-LL 02:00:00:00:00:01
    send(server, unhex('0b010203' + '0001000a' + '00030001020000000001'));
    const r = reply(frames[0]!);
    expect(hex(r.payload)).toBe(
      '07010203' +
        '0001000a' + '00030001020000000001' + // client id echoed
        '0002000a' + '0003000152550a000202' + // server id: DUID-LL of 52:55:0a:00:02:02
        '00170010' + 'fec00000000000000000000000000003' + // DNS servers
        '0018000d' + '076578616d706c6503636f6d00' + // domain list
        '00200004' + '00015180', // information refresh time 86400
    );
  });

  it('leaves the domain list out when no search list is configured', () => {
    const { server, frames } = setup({});
    send(server, msg(Dhcpv6MsgType.INFORMATION_REQUEST, {}));
    const o = reply(frames[0]!).msg.options;
    expect(o.domainList).toBeUndefined();
    expect(o.clientId).toBeUndefined();
    expect(o.dnsServers).toEqual([A('fec0::3')]);
  });

  it('answers a request to our unicast address from that address', () => {
    const { server, frames } = setup();
    send(server, msg(Dhcpv6MsgType.INFORMATION_REQUEST, { clientId: CLIENT_DUID }), A('fec0::2'), A('fec0::5054:ff:fe12:3456'));
    const r = reply(frames[0]!);
    expect(r.src).toBe('fec0::2');
    expect(r.dst).toBe('fec0::5054:ff:fe12:3456');
  });

  it('ignores a request naming another server, and accepts one naming us', () => {
    const { server, frames, counts, cfg } = setup();
    send(server, msg(Dhcpv6MsgType.INFORMATION_REQUEST, { clientId: CLIENT_DUID, serverId: dhcpv6DuidLl(OTHER_MAC) }));
    expect(frames).toHaveLength(0);
    expect(counts.get('dhcpv6-other-server')).toBe(1);
    send(server, msg(Dhcpv6MsgType.INFORMATION_REQUEST, { clientId: CLIENT_DUID, serverId: dhcpv6DuidLl(cfg.gatewayMac) }));
    expect(frames).toHaveLength(1);
  });

  it('drops an Information-Request that carries an IA (RFC 8415 §16.12)', () => {
    const { server, frames, drops } = setup();
    send(server, msg(Dhcpv6MsgType.INFORMATION_REQUEST, { clientId: CLIENT_DUID, iaNa: [{ iaid: 1, t1: 0, t2: 0, addresses: [] }] }));
    expect(frames).toHaveLength(0);
    expect(drops.get('dhcpv6-malformed')).toBe(1);
  });
});

describe('Dhcpv6Server › other messages', () => {
  it('answers Solicit with an Advertise saying NoAddrsAvail, with SOL_MAX_RT and the DNS options', () => {
    const { server, frames, counts, cfg } = setup();
    send(server, msg(Dhcpv6MsgType.SOLICIT, { clientId: CLIENT_DUID, iaNa: [{ iaid: 7, t1: 0, t2: 0, addresses: [] }], elapsedTime: 0 }, 0x123456));
    expect(frames).toHaveLength(1);
    const r = reply(frames[0]!);
    expect(r.msg.msgType).toBe(Dhcpv6MsgType.ADVERTISE);
    expect(r.msg.transactionId).toBe(0x123456);
    const o = r.msg.options;
    expect(o.status?.code).toBe(Dhcpv6StatusCode.NO_ADDRS_AVAIL);
    expect(o.status?.message).toMatch(/SLAAC/);
    expect(o.serverId).toEqual(dhcpv6DuidLl(cfg.gatewayMac));
    expect(o.clientId).toEqual(CLIENT_DUID);
    expect(o.iaNa).toBeUndefined();
    expect(o.dnsServers).toEqual([A('fec0::3')]);
    expect(o.raw).toEqual([{ code: DHCPV6_OPTION_SOL_MAX_RT, data: Uint8Array.of(0, 0, 0x0e, 0x10) }]);
    expect(counts.get('dhcpv6-advertise-noaddrs')).toBe(1);
  });

  it('drops a Solicit without a client id or with a server id', () => {
    const { server, frames, drops, cfg } = setup();
    send(server, msg(Dhcpv6MsgType.SOLICIT, {}));
    send(server, msg(Dhcpv6MsgType.SOLICIT, { clientId: CLIENT_DUID, serverId: dhcpv6DuidLl(cfg.gatewayMac) }));
    expect(frames).toHaveLength(0);
    expect(drops.get('dhcpv6-malformed')).toBe(2);
  });

  it('does not answer stateful messages (no binding ever exists)', () => {
    const { server, frames, counts } = setup();
    for (const t of [Dhcpv6MsgType.REQUEST, Dhcpv6MsgType.RENEW, Dhcpv6MsgType.REBIND, Dhcpv6MsgType.CONFIRM, Dhcpv6MsgType.RELEASE, Dhcpv6MsgType.DECLINE]) {
      send(server, msg(t, { clientId: CLIENT_DUID }));
    }
    expect(frames).toHaveLength(0);
    expect(counts.get('dhcpv6-unsupported')).toBe(6);
  });

  it('drops server-to-client and relay messages', () => {
    const { server, frames, drops } = setup();
    send(server, msg(Dhcpv6MsgType.REPLY, { clientId: CLIENT_DUID }));
    send(server, msg(Dhcpv6MsgType.ADVERTISE, { clientId: CLIENT_DUID }));
    send(server, unhex('0c00' + 'fe800000000000000000000000000001' + 'fe800000000000000000000000000002'));
    expect(frames).toHaveLength(0);
    expect(drops.get('dhcpv6-unexpected')).toBe(2);
    expect(drops.get('dhcpv6-relay')).toBe(1);
  });
});

describe('Dhcpv6Server › malformed and misaddressed input', () => {
  it('counts a message shorter than its header as malformed', () => {
    const { server, frames, drops } = setup();
    send(server, Uint8Array.of(11, 0));
    expect(frames).toHaveLength(0);
    expect(drops.get('dhcpv6-malformed')).toBe(1);
  });

  it('counts an option running past the end as malformed', () => {
    const { server, frames, drops } = setup();
    send(server, unhex('0b010203' + '00010010' + '0003000102'));
    expect(frames).toHaveLength(0);
    expect(drops.get('dhcpv6-malformed')).toBe(1);
  });

  it('counts a typed option with an impossible length as malformed', () => {
    const { server, frames, drops } = setup();
    send(server, unhex('0b010203' + '00080001' + '00')); // elapsed time must be 2 octets
    expect(frames).toHaveLength(0);
    expect(drops.get('dhcpv6-malformed')).toBe(1);
  });

  it('drops messages to addresses that are not a DHCPv6 server of ours', () => {
    const { server, frames, drops } = setup();
    send(server, msg(Dhcpv6MsgType.INFORMATION_REQUEST, {}), A('2001:db8::1'));
    send(server, msg(Dhcpv6MsgType.INFORMATION_REQUEST, {}), A('ff02::1'));
    expect(frames).toHaveLength(0);
    expect(drops.get('dhcpv6-not-ours')).toBe(2);
  });

  it('drops messages from :: or a multicast source', () => {
    const { server, frames, drops } = setup();
    send(server, msg(Dhcpv6MsgType.INFORMATION_REQUEST, {}), DHCPV6_ALL_SERVERS_AND_RELAYS, A('::'));
    send(server, msg(Dhcpv6MsgType.INFORMATION_REQUEST, {}), DHCPV6_ALL_SERVERS_AND_RELAYS, A('ff02::1'));
    expect(frames).toHaveLength(0);
    expect(drops.get('dhcpv6-bad-source')).toBe(2);
  });

  it('answers nothing after close()', () => {
    const { server, frames } = setup();
    server.close();
    send(server, msg(Dhcpv6MsgType.INFORMATION_REQUEST, {}));
    expect(frames).toHaveLength(0);
  });

  it('never throws on arbitrary payloads, and every reply it sends parses', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(1, 11, 3), (bytes, type) => {
        const { server, frames } = setup();
        const p = bytes.slice();
        if (p.length > 0) p[0] = type;
        send(server, p);
        for (const f of frames) expect(reply(f).msg).not.toBeNull();
      }),
      { numRuns: 500 },
    );
  });
});
