import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  Icmpv6DstUnreachableCode,
  Icmpv6Type,
  Icmpv6View,
  Ipv6View,
  emitIcmpv6,
  emitNdp,
  ipv6SolicitedNode,
  ipv6ToString,
  macToString,
  ndpFindOption,
  parseIcmpv6,
  parseNdp,
  pseudoSumV6,
  checksum,
  writeU16,
  type Icmpv6Repr,
  type NdpOption,
  type NdpRepr,
} from '@guestnet/wire';
import { Icmpv6Handler, RaParams, buildRouterAdvert, sendUnreachable6 } from './icmpv6-input.ts';
import { ip6 } from './config.ts';
import { fakeContext } from './testing/fake-context.ts';

const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56);
const OTHER_MAC = Uint8Array.of(0x52, 0x54, 0, 0xab, 0xcd, 0xef);
const A = (s: string): Uint8Array => ip6(s)!;
const GUEST_LL = A('fe80::5054:ff:fe12:3456');
const GUEST_GLOBAL = A('fec0::5054:ff:fe12:3456');
const UNSPEC = A('::');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function setup(options: Record<string, unknown> = {}) {
  const { cfg, ctx, frames, drops, counts, learned6, clock, timers } = fakeContext({ dnssearch: ['example.com'], ...options }, { guestMac: GUEST_MAC });
  const h = new Icmpv6Handler(ctx, { random: () => 0.5 });
  return { cfg, ctx, frames, drops, counts, learned: learned6, clock, timers, h };
}

interface GuestPacket {
  frame: Uint8Array;
  ipOff: number;
  l4Off: number;
  l4Len: number;
}

/** Ethernet + IPv6 + ICMPv6 from the guest; `emit` writes the message and its checksum. */
function guestPacket(src: Uint8Array, dst: Uint8Array, hop: number, emit: (buf: Uint8Array, off: number) => number, next = 58): GuestPacket {
  const buf = new Uint8Array(14 + 40 + 4096);
  buf.set(Uint8Array.of(0x33, 0x33, 0, 0, 0, 1), 0);
  buf.set(GUEST_MAC, 6);
  buf[12] = 0x86;
  buf[13] = 0xdd;
  buf[14] = 0x60;
  buf[20] = next;
  buf[21] = hop;
  buf.set(src, 22);
  buf.set(dst, 38);
  const len = emit(buf, 54);
  writeU16(buf, 18, len);
  return { frame: buf.slice(0, 54 + len), ipOff: 14, l4Off: 54, l4Len: len };
}

const ndpPacket = (src: Uint8Array, dst: Uint8Array, r: NdpRepr, hop = 255): GuestPacket =>
  guestPacket(src, dst, hop, (buf, off) => emitNdp(r, buf, off, buf, 14));
const icmpPacket = (src: Uint8Array, dst: Uint8Array, r: Icmpv6Repr, hop = 64): GuestPacket =>
  guestPacket(src, dst, hop, (buf, off) => emitIcmpv6(r, buf, off, buf, 14));

function feed(h: Icmpv6Handler, p: GuestPacket, srcMac = GUEST_MAC): void {
  h.handle(p.frame, p.ipOff, p.l4Off, p.l4Len, srcMac);
}

/** Check a frame we sent: Ethernet, IPv6 with ICMPv6, checksum verified. */
function sent(f: Uint8Array) {
  expect(f[12]).toBe(0x86);
  expect(f[13]).toBe(0xdd);
  const ip = new Ipv6View();
  expect(ip.reset(f, 14, f.length - 14)).toBe(true);
  expect(ip.nextHeader).toBe(58);
  const v = new Icmpv6View();
  expect(v.reset(f, 54, ip.payloadLen)).toBe(true);
  expect(v.verifyChecksum(f, 14)).toBe(true);
  return {
    dstMac: macToString(f, 0),
    srcMac: macToString(f, 6),
    src: ipv6ToString(f, 22),
    dst: ipv6ToString(f, 38),
    hop: ip.hopLimit,
    view: v,
    ndp: parseNdp(v),
    icmp: parseIcmpv6(v),
    body: f.slice(54, 54 + ip.payloadLen),
  };
}

const ns = (target: Uint8Array, slla?: Uint8Array): NdpRepr => ({
  kind: 'neighborSolicit',
  target,
  options: slla ? [{ kind: 'sourceLinkAddr', addr: slla }] : [],
});

describe('Icmpv6Handler › neighbor discovery', () => {
  it('answers an NS for fec0::2 with a solicited, override, router NA carrying the gateway MAC', () => {
    const { h, frames, learned, cfg } = setup();
    feed(h, ndpPacket(GUEST_GLOBAL, ipv6SolicitedNode(A('fec0::2')), ns(A('fec0::2'), GUEST_MAC)));
    expect(frames).toHaveLength(1);
    const r = sent(frames[0]!);
    expect(r.dstMac).toBe('52:54:00:12:34:56');
    expect(r.srcMac).toBe(macToString(cfg.gatewayMac));
    expect(r.src).toBe('fec0::2');
    expect(r.dst).toBe(ipv6ToString(GUEST_GLOBAL));
    expect(r.hop).toBe(255);
    expect(r.ndp).toEqual({
      kind: 'neighborAdvert',
      router: true,
      solicited: true,
      override: true,
      target: A('fec0::2'),
      options: [{ kind: 'targetLinkAddr', addr: cfg.gatewayMac }],
    });
    // Flags octet and TLLA option on the wire.
    expect(r.body[4]).toBe(0xe0);
    expect(hex(r.body.subarray(24))).toBe('0201' + '52550a000202');
    expect(learned).toEqual([`${ipv6ToString(GUEST_GLOBAL)} 52:54:00:12:34:56`]);
  });

  it('answers for the DNS address and fe80::2 too, from the target address', () => {
    const { h, frames } = setup();
    feed(h, ndpPacket(GUEST_LL, ipv6SolicitedNode(A('fec0::3')), ns(A('fec0::3'), GUEST_MAC)));
    feed(h, ndpPacket(GUEST_LL, A('fe80::2'), ns(A('fe80::2'), GUEST_MAC)));
    expect(frames.map((f) => sent(f).src)).toEqual(['fec0::3', 'fe80::2']);
    expect(frames.map((f) => ipv6ToString((sent(f).ndp as { target: Uint8Array }).target))).toEqual(['fec0::3', 'fe80::2']);
  });

  it('sends the NA to the Ethernet source when the NS has no link-layer option', () => {
    const { h, frames } = setup();
    feed(h, ndpPacket(GUEST_LL, A('fe80::2'), ns(A('fe80::2'))), OTHER_MAC);
    expect(sent(frames[0]!).dstMac).toBe(macToString(OTHER_MAC));
  });

  it('sends the NA to the MAC in the source link-layer option', () => {
    const { h, frames, learned } = setup();
    feed(h, ndpPacket(GUEST_LL, A('fe80::2'), ns(A('fe80::2'), OTHER_MAC)));
    expect(sent(frames[0]!).dstMac).toBe(macToString(OTHER_MAC));
    expect(learned).toEqual([`${ipv6ToString(GUEST_LL)} ${macToString(OTHER_MAC)}`]);
  });

  it('does not answer an NS for an address that is not ours', () => {
    const { h, frames, counts } = setup();
    feed(h, ndpPacket(GUEST_GLOBAL, ipv6SolicitedNode(A('fec0::99')), ns(A('fec0::99'), GUEST_MAC)));
    expect(frames).toHaveLength(0);
    expect(counts.get('ndp-ns-not-ours')).toBe(1);
  });

  it('counts a DAD probe for one of our addresses as a conflict and defends it to all-nodes', () => {
    const { h, frames, counts, learned } = setup();
    feed(h, ndpPacket(UNSPEC, ipv6SolicitedNode(A('fec0::2')), ns(A('fec0::2'))));
    expect(counts.get('ndp-dad-conflict')).toBe(1);
    expect(learned).toEqual([]);
    expect(frames).toHaveLength(1);
    const r = sent(frames[0]!);
    expect(r.dstMac).toBe('33:33:00:00:00:01');
    expect(r.dst).toBe('ff02::1');
    expect(r.ndp).toMatchObject({ kind: 'neighborAdvert', solicited: false, override: true, router: true });
  });

  it('never answers a DAD probe for the guest’s own address', () => {
    const { h, frames, counts } = setup();
    feed(h, ndpPacket(UNSPEC, ipv6SolicitedNode(GUEST_GLOBAL), ns(GUEST_GLOBAL)));
    expect(frames).toHaveLength(0);
    expect(counts.get('ndp-dad-conflict')).toBeUndefined();
  });

  it('drops a DAD probe that carries a source link-layer option (RFC 4861 §7.1.1)', () => {
    const { h, frames, drops } = setup();
    feed(h, ndpPacket(UNSPEC, ipv6SolicitedNode(A('fec0::2')), ns(A('fec0::2'), GUEST_MAC)));
    expect(frames).toHaveLength(0);
    expect(drops.get('ndp-invalid')).toBe(1);
  });

  it('drops a DAD probe not sent to a solicited-node group', () => {
    const { h, frames, drops } = setup();
    feed(h, ndpPacket(UNSPEC, A('fec0::2'), ns(A('fec0::2'))));
    expect(frames).toHaveLength(0);
    expect(drops.get('ndp-invalid')).toBe(1);
  });

  it('drops NDP with a hop limit other than 255', () => {
    const { h, frames, drops } = setup();
    feed(h, ndpPacket(GUEST_GLOBAL, A('fec0::2'), ns(A('fec0::2'), GUEST_MAC), 254));
    feed(h, ndpPacket(GUEST_LL, A('ff02::2'), { kind: 'routerSolicit', options: [] }, 1));
    expect(frames).toHaveLength(0);
    expect(drops.get('ndp-bad-hop-limit')).toBe(2);
  });

  it('drops a message with a bad checksum', () => {
    const { h, frames, drops } = setup();
    const p = ndpPacket(GUEST_GLOBAL, A('fec0::2'), ns(A('fec0::2'), GUEST_MAC));
    p.frame[p.l4Off + 2]! ^= 0x01;
    feed(h, p);
    expect(frames).toHaveLength(0);
    expect(drops.get('icmp6-bad-checksum')).toBe(1);
  });

  it('drops an NS with a non-zero code or a zero-length option', () => {
    const { h, frames, drops } = setup();
    const badCode = guestPacket(GUEST_LL, A('fe80::2'), 255, (buf, off) => {
      const n = emitNdp(ns(A('fe80::2')), buf, off, buf, 14);
      buf[off + 1] = 1;
      buf[off + 2] = 0;
      buf[off + 3] = 0;
      writeU16(buf, off + 2, checksum(buf, off, n, pseudoSumV6(buf, 22, 38, 58, n)));
      return n;
    });
    feed(h, badCode);
    const zeroOpt = guestPacket(GUEST_LL, A('fe80::2'), 255, (buf, off) => {
      const n = emitNdp({ kind: 'neighborSolicit', target: A('fe80::2'), options: [{ kind: 'unknown', type: 99, data: new Uint8Array(6) }] }, buf, off, buf, 14);
      buf[off + 25] = 0; // option length 0
      buf[off + 2] = 0;
      buf[off + 3] = 0;
      writeU16(buf, off + 2, checksum(buf, off, n, pseudoSumV6(buf, 22, 38, 58, n)));
      return n;
    });
    feed(h, zeroOpt);
    expect(frames).toHaveLength(0);
    expect(drops.get('ndp-invalid')).toBe(2);
  });

  it('drops a message shorter than the ICMPv6 header', () => {
    const { h, drops } = setup();
    const p = ndpPacket(GUEST_LL, A('fe80::2'), ns(A('fe80::2')));
    h.handle(p.frame, p.ipOff, p.l4Off, 4, GUEST_MAC);
    expect(drops.get('icmp6-short')).toBe(1);
  });

  it('learns from an NA’s target link-layer option and counts one claiming our address', () => {
    const { h, frames, learned, counts } = setup();
    const na = (target: Uint8Array): NdpRepr => ({
      kind: 'neighborAdvert',
      router: false,
      solicited: false,
      override: true,
      target,
      options: [{ kind: 'targetLinkAddr', addr: OTHER_MAC }],
    });
    feed(h, ndpPacket(GUEST_GLOBAL, A('ff02::1'), na(GUEST_GLOBAL)));
    expect(learned).toEqual([`${ipv6ToString(GUEST_GLOBAL)} ${macToString(OTHER_MAC)}`]);
    feed(h, ndpPacket(GUEST_GLOBAL, A('ff02::1'), na(A('fec0::2'))));
    expect(counts.get('ndp-dad-conflict')).toBe(1);
    expect(frames).toHaveLength(0);
  });

  it('drops a solicited NA sent to a multicast address', () => {
    const { h, drops, learned } = setup();
    feed(
      h,
      ndpPacket(GUEST_GLOBAL, A('ff02::1'), {
        kind: 'neighborAdvert',
        router: false,
        solicited: true,
        override: true,
        target: GUEST_GLOBAL,
        options: [{ kind: 'targetLinkAddr', addr: GUEST_MAC }],
      }),
    );
    expect(drops.get('ndp-invalid')).toBe(1);
    expect(learned).toEqual([]);
  });

  it('ignores router advertisements from the guest', () => {
    const { h, frames, counts, cfg } = setup();
    const ra = parseNdp(viewOf(buildRouterAdvert(cfg)))!;
    feed(h, ndpPacket(GUEST_LL, A('ff02::1'), ra));
    expect(frames).toHaveLength(0);
    expect(counts.get('ndp-ra-from-guest')).toBe(1);
  });
});

function optsOf(r: NdpRepr | null): NdpOption[] {
  expect(r).not.toBeNull();
  return r!.options;
}

function viewOf(body: Uint8Array): Icmpv6View {
  const v = new Icmpv6View();
  v.reset(body, 0, body.length);
  return v;
}

/** The RA body for the default configuration with dnssearch=example.com, checksum zeroed. */
const EXPECTED_RA =
  '8600' + '0000' + '40' + '40' + '0708' + '00000000' + '00000000' +
  // SLLA 52:55:0a:00:02:02
  '0101' + '52550a000202' +
  // MTU 1500
  '0501' + '0000' + '000005dc' +
  // Prefix fec0::/64, L+A, valid 86400, preferred 14400
  '0304' + '40' + 'c0' + '00015180' + '00003840' + '00000000' + 'fec00000000000000000000000000000' +
  // RDNSS fec0::3, lifetime 1800
  '1903' + '0000' + '00000708' + 'fec00000000000000000000000000003' +
  // DNSSL example.com, lifetime 1800, padded to 24 octets
  '1f03' + '0000' + '00000708' + '076578616d706c6503636f6d00' + '000000';

describe('Icmpv6Handler › router advertisements', () => {
  it('answers an RS with an RA carrying SLLA, MTU, prefix, RDNSS and DNSSL, byte for byte', () => {
    const { h, frames, learned, cfg } = setup();
    feed(h, ndpPacket(GUEST_LL, A('ff02::2'), { kind: 'routerSolicit', options: [{ kind: 'sourceLinkAddr', addr: GUEST_MAC }] }));
    expect(frames).toHaveLength(1);
    const r = sent(frames[0]!);
    expect(r.src).toBe('fe80::2');
    expect(r.dst).toBe(ipv6ToString(GUEST_LL));
    expect(r.dstMac).toBe('52:54:00:12:34:56');
    expect(r.srcMac).toBe(macToString(cfg.gatewayMac));
    expect(r.hop).toBe(255);
    const body = r.body.slice();
    body[2] = 0;
    body[3] = 0;
    expect(hex(body)).toBe(EXPECTED_RA);
    expect(r.ndp).toEqual({
      kind: 'routerAdvert',
      curHopLimit: 64,
      managed: false,
      other: true,
      preference: 0,
      routerLifetime: 1800,
      reachableTime: 0,
      retransTimer: 0,
      options: [
        { kind: 'sourceLinkAddr', addr: cfg.gatewayMac },
        { kind: 'mtu', mtu: 1500 },
        { kind: 'prefixInfo', prefixLen: 64, onLink: true, autonomous: true, validLifetime: 86400, preferredLifetime: 14400, prefix: A('fec0::') },
        { kind: 'rdnss', lifetime: 1800, servers: [A('fec0::3')] },
        { kind: 'dnssl', lifetime: 1800, domains: ['example.com'] },
      ],
    });
    expect(learned).toEqual([`${ipv6ToString(GUEST_LL)} 52:54:00:12:34:56`]);
  });

  it('reflects the configuration: MTU, prefix (host bits cleared), DNS, several search domains', () => {
    const { cfg } = setup({ mtu: 9000, 'ipv6-net': '2001:db8:1:2::77/56', 'ipv6-dns': '2001:db8:1::53', dnssearch: ['a.test', 'b.test'] });
    const opts = optsOf(parseNdp(viewOf(buildRouterAdvert(cfg))));
    expect(ndpFindOption(opts, 'mtu')!.mtu).toBe(9000);
    const pi = ndpFindOption(opts, 'prefixInfo')!;
    expect(pi.prefixLen).toBe(56);
    expect(ipv6ToString(pi.prefix)).toBe('2001:db8:1::');
    expect(ndpFindOption(opts, 'rdnss')!.servers.map((s) => ipv6ToString(s))).toEqual(['2001:db8:1::53']);
    expect(ndpFindOption(opts, 'dnssl')!.domains).toEqual(['a.test', 'b.test']);
  });

  it('omits DNSSL without a search list and trims a search list too long for the MTU', () => {
    const plain = setup({ dnssearch: [] });
    expect(ndpFindOption(optsOf(parseNdp(viewOf(buildRouterAdvert(plain.cfg)))), 'dnssl')).toBeUndefined();
    const many = Array.from({ length: 60 }, (_, i) => `domain-number-${i}.example.org`);
    const big = setup({ dnssearch: many });
    const body = buildRouterAdvert(big.cfg);
    expect(body.length + 40).toBeLessThanOrEqual(1500);
    const dnssl = ndpFindOption(optsOf(parseNdp(viewOf(body))), 'dnssl')!;
    expect(dnssl.domains.length).toBeGreaterThan(10);
    expect(dnssl.domains).toEqual(many.slice(0, dnssl.domains.length));
  });

  it('answers an RS from :: with a multicast RA, at most once per 3 s', () => {
    const { h, frames, counts, clock } = setup();
    const rs = (): GuestPacket => ndpPacket(UNSPEC, A('ff02::2'), { kind: 'routerSolicit', options: [] });
    feed(h, rs());
    feed(h, rs());
    expect(frames).toHaveLength(1);
    const r = sent(frames[0]!);
    expect(r.dst).toBe('ff02::1');
    expect(r.dstMac).toBe('33:33:00:00:00:01');
    expect(counts.get('ndp-rs-ratelimited')).toBe(1);
    clock.advance(RaParams.MIN_DELAY_BETWEEN_RAS_MS);
    feed(h, rs());
    expect(frames).toHaveLength(2);
  });

  it('drops an RS from :: that carries a source link-layer option', () => {
    const { h, frames, drops } = setup();
    feed(h, ndpPacket(UNSPEC, A('ff02::2'), { kind: 'routerSolicit', options: [{ kind: 'sourceLinkAddr', addr: GUEST_MAC }] }));
    expect(frames).toHaveLength(0);
    expect(drops.get('ndp-invalid')).toBe(1);
  });

  it('sends three fast initial RAs after start(), then one every 200–600 s, and stops on close()', () => {
    const { h, frames, clock } = setup();
    h.start();
    expect(frames).toHaveLength(0); // never synchronously inside start()
    clock.advance(0);
    expect(frames).toHaveLength(1);
    const r = sent(frames[0]!);
    expect(r.dst).toBe('ff02::1');
    expect(r.dstMac).toBe('33:33:00:00:00:01');
    expect(r.src).toBe('fe80::2');
    expect(r.ndp?.kind).toBe('routerAdvert');
    clock.advance(RaParams.INITIAL_INTERVAL_MS - 1);
    expect(frames).toHaveLength(1);
    clock.advance(1);
    expect(frames).toHaveLength(2);
    clock.advance(RaParams.INITIAL_INTERVAL_MS);
    expect(frames).toHaveLength(3);
    // random() = 0.5 → 400 s after the third.
    clock.advance(399_999);
    expect(frames).toHaveLength(3);
    clock.advance(1);
    expect(frames).toHaveLength(4);
    clock.advance(400_000);
    expect(frames).toHaveLength(5);
    h.close();
    clock.advance(10_000_000);
    expect(frames).toHaveLength(5);
  });

  it('keeps unsolicited RA intervals within [200 s, 600 s)', () => {
    const seq = [0, 0.999999, 0.25];
    let i = 0;
    const s = setup();
    const h = new Icmpv6Handler(s.ctx, { random: () => seq[i++ % seq.length]! });
    h.start();
    s.clock.advance(0);
    s.clock.advance(2 * RaParams.INITIAL_INTERVAL_MS); // the three initial ones
    expect(s.frames).toHaveLength(3);
    const times: number[] = [];
    for (let t = 0; t < 2_000_000; t += 1000) {
      const before = s.frames.length;
      s.clock.advance(1000);
      if (s.frames.length > before) times.push(t + 1000);
    }
    const gaps = times.map((t, k) => t - (k === 0 ? 0 : times[k - 1]!));
    for (const g of gaps) {
      expect(g).toBeGreaterThanOrEqual(200_000);
      expect(g).toBeLessThanOrEqual(600_000);
    }
    expect(gaps.length).toBeGreaterThan(3);
    h.close();
  });
});

describe('Icmpv6Handler › echo', () => {
  it('answers an echo request to fec0::3 from fec0::3 with the same id, sequence and data', () => {
    const { h, frames, counts } = setup();
    const data = Uint8Array.from({ length: 56 }, (_, i) => i);
    feed(h, icmpPacket(GUEST_GLOBAL, A('fec0::3'), { kind: 'echoRequest', ident: 0x1234, seq: 7, data }), OTHER_MAC);
    expect(frames).toHaveLength(1);
    const r = sent(frames[0]!);
    expect(r.src).toBe('fec0::3');
    expect(r.dst).toBe(ipv6ToString(GUEST_GLOBAL));
    expect(r.dstMac).toBe(macToString(OTHER_MAC));
    expect(r.hop).toBe(64);
    expect(r.icmp).toEqual({ kind: 'echoReply', ident: 0x1234, seq: 7, data });
    expect(counts.get('icmp6-echo-reply')).toBe(1);
  });

  it('answers echo to the gateway and fe80::2 from the pinged address', () => {
    const { h, frames } = setup();
    feed(h, icmpPacket(GUEST_GLOBAL, A('fec0::2'), { kind: 'echoRequest', ident: 1, seq: 1, data: new Uint8Array(0) }));
    feed(h, icmpPacket(GUEST_LL, A('fe80::2'), { kind: 'echoRequest', ident: 1, seq: 2, data: new Uint8Array(0) }));
    expect(frames.map((f) => sent(f).src)).toEqual(['fec0::2', 'fe80::2']);
  });

  it('answers echo to all-nodes from fe80::2 for a link-local source', () => {
    const { h, frames } = setup();
    feed(h, icmpPacket(GUEST_LL, A('ff02::1'), { kind: 'echoRequest', ident: 9, seq: 9, data: Uint8Array.of(1, 2, 3) }));
    const r = sent(frames[0]!);
    expect(r.src).toBe('fe80::2');
    expect(r.icmp).toEqual({ kind: 'echoReply', ident: 9, seq: 9, data: Uint8Array.of(1, 2, 3) });
  });

  it('does not answer echo to an outside address', () => {
    const { h, frames, drops } = setup();
    feed(h, icmpPacket(GUEST_GLOBAL, A('2001:db8::1'), { kind: 'echoRequest', ident: 1, seq: 1, data: new Uint8Array(8) }));
    expect(frames).toHaveLength(0);
    expect(drops.get('icmp6-echo-not-ours')).toBe(1);
  });

  it('drops echo with a bad checksum', () => {
    const { h, frames, drops } = setup();
    const p = icmpPacket(GUEST_GLOBAL, A('fec0::3'), { kind: 'echoRequest', ident: 1, seq: 1, data: new Uint8Array(8) });
    p.frame[p.l4Off + 8] = 0xff;
    feed(h, p);
    expect(frames).toHaveLength(0);
    expect(drops.get('icmp6-bad-checksum')).toBe(1);
  });

  it('counts echo replies and other informational messages as ignored', () => {
    const { h, frames, counts } = setup();
    feed(h, icmpPacket(GUEST_GLOBAL, A('fec0::3'), { kind: 'echoReply', ident: 1, seq: 1, data: new Uint8Array(8) }));
    expect(frames).toHaveLength(0);
    expect(counts.get('icmp6-ignored')).toBe(1);
  });
});

/** A UDP/IPv6 packet from the guest (Ethernet header included), checksum not needed. */
function udpFromGuest(src: Uint8Array, dst: Uint8Array, payloadLen: number): GuestPacket {
  return guestPacket(
    src,
    dst,
    64,
    (buf, off) => {
      writeU16(buf, off, 40000);
      writeU16(buf, off + 2, 9);
      writeU16(buf, off + 4, 8 + payloadLen);
      for (let i = 0; i < payloadLen; i++) buf[off + 8 + i] = i & 0xff;
      return 8 + payloadLen;
    },
    17,
  );
}

describe('sendUnreachable6', () => {
  it('sends port unreachable from the address the guest wrote to, quoting the packet', () => {
    const { ctx, frames } = setup();
    const p = udpFromGuest(GUEST_GLOBAL, A('fec0::2'), 20);
    sendUnreachable6(ctx, p.frame, p.ipOff, p.frame.length - p.ipOff, Icmpv6DstUnreachableCode.PORT_UNREACHABLE);
    expect(frames).toHaveLength(1);
    const r = sent(frames[0]!);
    expect(r.src).toBe('fec0::2');
    expect(r.dst).toBe(ipv6ToString(GUEST_GLOBAL));
    expect(r.view.type).toBe(Icmpv6Type.DST_UNREACHABLE);
    expect(r.icmp).toEqual({ kind: 'dstUnreachable', code: 4, invoking: p.frame.slice(14) });
  });

  it('sends admin prohibited from the router and truncates the quote to fit 1280 octets', () => {
    const { ctx, frames } = setup();
    const p = udpFromGuest(GUEST_GLOBAL, A('2001:db8::1'), 1400);
    sendUnreachable6(ctx, p.frame, p.ipOff, p.frame.length - p.ipOff, Icmpv6DstUnreachableCode.ADMIN_PROHIBITED);
    const f = frames[0]!;
    expect(f.length - 14).toBe(1280);
    const r = sent(f);
    expect(r.src).toBe('fec0::2');
    expect(r.view.code).toBe(1);
    expect(hex(r.body.subarray(8))).toBe(hex(p.frame.subarray(14, 14 + 1232)));
  });

  it('uses fe80::2 as the router address for a link-local guest', () => {
    const { ctx, frames } = setup();
    const p = udpFromGuest(GUEST_LL, A('fe80::99'), 4);
    sendUnreachable6(ctx, p.frame, p.ipOff, p.frame.length - p.ipOff, Icmpv6DstUnreachableCode.ADMIN_PROHIBITED);
    expect(sent(frames[0]!).src).toBe('fe80::2');
  });

  it('never answers ICMPv6 errors, multicast destinations or unspecified sources', () => {
    const { ctx, frames, counts } = setup();
    const err = icmpPacket(GUEST_GLOBAL, A('fec0::2'), { kind: 'dstUnreachable', code: 4, invoking: new Uint8Array(48) });
    sendUnreachable6(ctx, err.frame, 14, err.frame.length - 14, 4);
    const mc = udpFromGuest(GUEST_GLOBAL, A('ff02::fb'), 4);
    sendUnreachable6(ctx, mc.frame, 14, mc.frame.length - 14, 4);
    const unspec = udpFromGuest(UNSPEC, A('fec0::2'), 4);
    sendUnreachable6(ctx, unspec.frame, 14, unspec.frame.length - 14, 4);
    expect(frames).toHaveLength(0);
    expect(counts.get('icmp6-error-suppressed')).toBe(3);
    // An echo request (informational) may be answered with an error.
    const echo = icmpPacket(GUEST_GLOBAL, A('2001:db8::1'), { kind: 'echoRequest', ident: 1, seq: 1, data: new Uint8Array(4) });
    sendUnreachable6(ctx, echo.frame, 14, echo.frame.length - 14, 1);
    expect(frames).toHaveLength(1);
  });

  it('rate limits errors: a burst of 50, then refilled over time', () => {
    const { ctx, frames, drops, clock } = setup();
    const p = udpFromGuest(GUEST_GLOBAL, A('fec0::2'), 4);
    for (let i = 0; i < 60; i++) sendUnreachable6(ctx, p.frame, 14, p.frame.length - 14, 4);
    expect(frames).toHaveLength(50);
    expect(drops.get('icmp6-error-ratelimited')).toBe(10);
    clock.advance(100); // 50/s → 5 tokens
    for (let i = 0; i < 10; i++) sendUnreachable6(ctx, p.frame, 14, p.frame.length - 14, 4);
    expect(frames).toHaveLength(55);
  });

  it('rejects an invoking packet shorter than an IPv6 header', () => {
    const { ctx, frames, drops } = setup();
    sendUnreachable6(ctx, new Uint8Array(30), 0, 30, 4);
    expect(frames).toHaveLength(0);
    expect(drops.get('icmp6-error-bad-invoking')).toBe(1);
  });
});

describe('Icmpv6Handler › robustness', () => {
  it('never throws on arbitrary ICMPv6 messages with valid checksums, and only sends valid ICMPv6', () => {
    const addr = fc.constantFrom(GUEST_LL, GUEST_GLOBAL, UNSPEC, A('fec0::2'), A('ff02::1'), ipv6SolicitedNode(A('fec0::2')));
    fc.assert(
      fc.property(
        addr,
        addr,
        fc.constantFrom(255, 64),
        fc.constantFrom(1, 128, 129, 133, 134, 135, 136, 137, 143),
        fc.uint8Array({ minLength: 0, maxLength: 120 }),
        (src, dst, hop, type, rest) => {
          const s = setup();
          const p = guestPacket(src, dst, hop, (buf, off) => {
            buf[off] = type;
            buf[off + 1] = rest[0] ?? 0;
            buf.set(rest.subarray(1), off + 4);
            const n = 4 + Math.max(0, rest.length - 1);
            writeU16(buf, off + 2, 0);
            writeU16(buf, off + 2, checksum(buf, off, n, pseudoSumV6(buf, 22, 38, 58, n)));
            return n;
          });
          s.h.handle(p.frame, p.ipOff, p.l4Off, p.l4Len, GUEST_MAC);
          for (const f of s.frames) sent(f);
        },
      ),
      { numRuns: 500 },
    );
  });
});
