import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Icmpv6View } from './icmpv6.ts';
import {
  NdpOptionCursor,
  emitNdp,
  emitNdpOption,
  ndpFindOption,
  ndpLen,
  ndpOptionLen,
  parseNdp,
  parseNdpOptions,
} from './ndp.ts';
import type { NdpOption, NdpRepr } from './ndp.ts';

const hex = (s: string): Uint8Array => Uint8Array.from((s.replace(/\s+/g, '').match(/../g) ?? []).map((b) => parseInt(b, 16)));

// Real captures (tcpdump, "[icmp6 sum ok]"), IPv6 header onwards.
// RA from fe80::c000:54ff:fef5:0 to ff02::1: SLLA, MTU 1500, prefix 2001:db8:0:1::/64 [L, A].
const RA_REAL = hex(
  '6e000000 0040 3a ff fe80000000000000c00054fffef50000 ff020000000000000000000000000001' +
    '8600 c4fe 40 00 0708 00000000 00000000' +
    '0101 c20054f50000' +
    '0501 0000 000005dc' +
    '0304 40 c0 00278d00 00093a80 00000000 20010db8000000010000000000000000',
);
// Duplicate address detection NS from :: for fe80::20c:29ff:fe0e:4c67.
const NS_DAD = hex(
  '60000000 0018 3a ff 00000000000000000000000000000000 ff0200000000000000000001ff0e4c67' +
    '8700 b930 00000000 fe80000000000000020c29fffe0e4c67',
);
// Solicited NA (S flag) for 2620:0:1005:0:26be:5ff:fe27:b17, no options.
const NA_REAL = hex(
  '60000000 0018 3a ff 262000001005000026be05fffe270b17 fe80000000000000021fcafffeb37640' +
    '8800 1ed6 40000000 262000001005000026be05fffe270b17',
);
// systemd-networkd's sd-radv output (its test vector; checksum left 0 by the kernel offload):
// M+O, SLLA, three prefixes, RDNSS 2001:db8:dead:beef::1, DNSSL lab.intra.
const RA_SYSTEMD = hex(
  '8600 0000 40 c0 00b4 00000000 00000000' +
    '0101 782bcbb36d53' +
    '0304 40c0 000001f4 000001b8 00000000 20010db8deadbeef0000000000000000' +
    '0304 40c0 00278d00 00093a80 00000000 20010db80b16d00d0000000000000000' +
    '0304 30c0 00278d00 00093a80 00000000 20010db8c0010dad0000000000000000' +
    '1903 0000 0000003c 20010db8deadbeef0000000000000001' +
    '1f03 0000 0000003c 036c616205696e74726100 0000000000',
);

function icmp(b: Uint8Array, off = 40): Icmpv6View {
  const v = new Icmpv6View();
  expect(v.reset(b, off, b.length - off)).toBe(true);
  return v;
}

/** Emit into a copy of the packet's own IPv6 header and compare with the capture. */
function reemit(pkt: Uint8Array, r: NdpRepr): Uint8Array {
  const out = new Uint8Array(40 + ndpLen(r));
  out.set(pkt.subarray(0, 40));
  expect(emitNdp(r, out, 40, out, 0)).toBe(ndpLen(r));
  return out;
}

describe('ndp real messages', () => {
  it('parses a router advertisement with SLLA, MTU and prefix information', () => {
    const v = icmp(RA_REAL);
    expect(v.verifyChecksum(RA_REAL, 0)).toBe(true);
    const r = parseNdp(v);
    expect(r).toEqual({
      kind: 'routerAdvert',
      curHopLimit: 64,
      managed: false,
      other: false,
      preference: 0,
      routerLifetime: 1800,
      reachableTime: 0,
      retransTimer: 0,
      options: [
        { kind: 'sourceLinkAddr', addr: hex('c20054f50000') },
        { kind: 'mtu', mtu: 1500 },
        {
          kind: 'prefixInfo', prefixLen: 64, onLink: true, autonomous: true,
          validLifetime: 2592000, preferredLifetime: 604800, prefix: hex('20010db8000000010000000000000000'),
        },
      ],
    });
    expect(reemit(RA_REAL, r!)).toEqual(RA_REAL);
  });

  it('parses a DAD neighbor solicitation and emits the same bytes', () => {
    expect(icmp(NS_DAD).verifyChecksum(NS_DAD, 0)).toBe(true);
    const r = parseNdp(icmp(NS_DAD))!;
    expect(r).toEqual({ kind: 'neighborSolicit', target: hex('fe80000000000000020c29fffe0e4c67'), options: [] });
    expect(reemit(NS_DAD, r)).toEqual(NS_DAD);
  });

  it('parses a solicited neighbor advertisement (R/S/O flags) and emits the same bytes', () => {
    expect(icmp(NA_REAL).verifyChecksum(NA_REAL, 0)).toBe(true);
    const r = parseNdp(icmp(NA_REAL))!;
    expect(r).toEqual({
      kind: 'neighborAdvert', router: false, solicited: true, override: false,
      target: hex('262000001005000026be05fffe270b17'), options: [],
    });
    expect(reemit(NA_REAL, r)).toEqual(NA_REAL);
  });

  it('parses systemd’s RA with M/O, RDNSS and DNSSL and reproduces it byte for byte', () => {
    expect(RA_SYSTEMD.length).toBe(168);
    const r = parseNdp(icmp(RA_SYSTEMD, 0))!;
    if (r.kind !== 'routerAdvert') throw new Error(r.kind);
    expect([r.managed, r.other, r.routerLifetime, r.curHopLimit]).toEqual([true, true, 180, 64]);
    expect(r.options.filter((o) => o.kind === 'prefixInfo').length).toBe(3);
    expect(ndpFindOption(r.options, 'prefixInfo')!.prefixLen).toBe(64);
    expect(ndpFindOption(r.options, 'rdnss')).toEqual({ kind: 'rdnss', lifetime: 60, servers: [hex('20010db8deadbeef0000000000000001')] });
    expect(ndpFindOption(r.options, 'dnssl')).toEqual({ kind: 'dnssl', lifetime: 60, domains: ['lab.intra'] });
    const ip = new Uint8Array(40);
    const out = new Uint8Array(RA_SYSTEMD.length);
    emitNdp(r, out, 0, ip, 0);
    const v = icmp(out, 0);
    expect(v.verifyChecksum(ip, 0)).toBe(true);
    v.checksum = 0;
    expect(out).toEqual(RA_SYSTEMD);
  });
});

describe('ndp malformed input', () => {
  it('stops the option walk at a zero-length option and rejects the message', () => {
    const bad = RA_REAL.slice();
    bad[40 + 16 + 1] = 0; // SLLA length 0
    const c = new NdpOptionCursor().reset(bad, 56, bad.length - 56);
    expect(c.next()).toBe(false);
    expect(c.malformed).toBe(true);
    expect(parseNdp(icmp(bad))).toBeNull();
  });

  it('rejects an option running past the end of the message', () => {
    const bad = RA_REAL.slice();
    bad[40 + 24 + 1] = 2; // the MTU option claims 16 octets; the prefix option then overruns
    expect(parseNdpOptions(bad, 56, bad.length - 56)).toBeNull();
    // A truncated trailing option (one octet) is also malformed.
    expect(parseNdpOptions(Uint8Array.of(1), 0, 1)).toBeNull();
  });

  it('walks options without allocating and reports a clean end', () => {
    const c = new NdpOptionCursor().reset(RA_REAL, 56, RA_REAL.length - 56);
    const seen: Array<[number, number]> = [];
    while (c.next()) seen.push([c.type, c.optLen]);
    expect(seen).toEqual([[1, 8], [5, 8], [3, 32]]);
    expect(c.malformed).toBe(false);
  });

  it('rejects non-zero codes, short messages, multicast targets and other ICMPv6 types', () => {
    const code = NS_DAD.slice();
    code[41] = 1;
    expect(parseNdp(icmp(code))).toBeNull();
    expect(parseNdp(icmp(NS_DAD.slice(0, 40 + 23)))).toBeNull();
    const mc = NS_DAD.slice();
    mc[48] = 0xff;
    expect(parseNdp(icmp(mc))).toBeNull();
    const echo = NS_DAD.slice();
    echo[40] = 128;
    expect(parseNdp(icmp(echo))).toBeNull();
  });

  it('keeps a known option with an impossible length as unknown', () => {
    const opts = hex('0502 0000 000005dc 0000000000000000 1902 0000 0000003c 0000000000000000');
    expect(parseNdpOptions(opts, 0, opts.length)).toEqual([
      { kind: 'unknown', type: 5, data: opts.slice(2, 16) },
      { kind: 'unknown', type: 25, data: opts.slice(18, 32) },
    ]);
  });

  it('keeps a DNSSL whose name uses a compression pointer as unknown (RFC 8106 forbids them)', () => {
    const opts = hex('1f02 0000 0000003c 0161 c008 00000000');
    expect(parseNdpOptions(opts, 0, opts.length)![0]!.kind).toBe('unknown');
  });
});

describe('ndp emitters', () => {
  it('pads link-layer, unknown and DNSSL options to 8 octets', () => {
    const cases: Array<[NdpOption, string]> = [
      [{ kind: 'targetLinkAddr', addr: hex('525400123456') }, '0201 525400123456'],
      [{ kind: 'unknown', type: 200, data: hex('aabb') }, 'c801 aabb 00000000'],
      [{ kind: 'dnssl', lifetime: 1, domains: ['example.com', 'a'] }, '1f03 0000 00000001 076578616d706c6503636f6d00 016100'],
      [{ kind: 'rdnss', lifetime: 0xffffffff, servers: [new Uint8Array(16).fill(1), new Uint8Array(16).fill(2)] }, '1905 0000 ffffffff' + '01'.repeat(16) + '02'.repeat(16)],
    ];
    for (const [opt, want] of cases) {
      const buf = new Uint8Array(64).fill(0xee);
      expect(emitNdpOption(opt, buf, 0)).toBe(ndpOptionLen(opt));
      expect(buf.slice(0, ndpOptionLen(opt))).toEqual(hex(want));
    }
  });

  it('answers a neighbor solicitation with an NA carrying the target link-layer address', () => {
    const ip = new Uint8Array(40);
    ip.set(hex('fe800000000000000000000000000002'), 8);
    ip.set(hex('fe80000000000000020c29fffe0e4c67'), 24);
    const na: NdpRepr = {
      kind: 'neighborAdvert', router: true, solicited: true, override: true,
      target: hex('fe800000000000000000000000000002'),
      options: [{ kind: 'targetLinkAddr', addr: hex('525400123502') }],
    };
    const buf = new Uint8Array(32);
    expect(emitNdp(na, buf, 0, ip, 0)).toBe(32);
    expect(buf[4]).toBe(0xe0);
    const v = icmp(buf, 0);
    expect(v.verifyChecksum(ip, 0)).toBe(true);
    expect(parseNdp(v)).toEqual(na);
  });
});

const addr16 = fc.uint8Array({ minLength: 16, maxLength: 16 });
const u32 = fc.nat({ max: 0xffffffff });
const domainArb = fc.array(fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,10}$/), { minLength: 1, maxLength: 3 }).map((l) => l.join('.'));
const optionArb: fc.Arbitrary<NdpOption> = fc.oneof(
  fc.record({ kind: fc.constantFrom('sourceLinkAddr' as const, 'targetLinkAddr' as const), addr: fc.uint8Array({ minLength: 6, maxLength: 6 }) }),
  fc.record({
    kind: fc.constant('prefixInfo' as const), prefixLen: fc.nat({ max: 128 }), onLink: fc.boolean(), autonomous: fc.boolean(),
    validLifetime: u32, preferredLifetime: u32, prefix: addr16,
  }),
  fc.record({ kind: fc.constant('mtu' as const), mtu: u32 }),
  fc.record({ kind: fc.constant('rdnss' as const), lifetime: u32, servers: fc.array(addr16, { minLength: 1, maxLength: 3 }) }),
  fc.record({ kind: fc.constant('dnssl' as const), lifetime: u32, domains: fc.array(domainArb, { minLength: 1, maxLength: 3 }) }),
  fc.record({
    kind: fc.constant('unknown' as const),
    type: fc.integer({ min: 6, max: 24 }),
    data: fc.nat({ max: 3 }).map((k) => new Uint8Array(6 + 8 * k).fill(k)),
  }),
);
const opts = fc.array(optionArb, { maxLength: 5 });
const reprArb: fc.Arbitrary<NdpRepr> = fc.oneof(
  fc.record({ kind: fc.constant('routerSolicit' as const), options: opts }),
  fc.record({
    kind: fc.constant('routerAdvert' as const), curHopLimit: fc.nat({ max: 255 }), managed: fc.boolean(), other: fc.boolean(),
    preference: fc.nat({ max: 3 }), routerLifetime: fc.nat({ max: 0xffff }), reachableTime: u32, retransTimer: u32, options: opts,
  }),
  fc.record({ kind: fc.constant('neighborSolicit' as const), target: addr16.map((a) => ((a[0] = 0xfe), a)), options: opts }),
  fc.record({
    kind: fc.constant('neighborAdvert' as const), router: fc.boolean(), solicited: fc.boolean(), override: fc.boolean(),
    target: addr16.map((a) => ((a[0] = 0x20), a)), options: opts,
  }),
);

describe('ndp properties', () => {
  it('never throws on arbitrary bytes', () => {
    const v = new Icmpv6View();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 133, max: 137 }), (b, type) => {
        if (b.length > 0) b[0] = type;
        if (b.length > 1) b[1] = 0;
        if (v.reset(b, 0, b.length)) parseNdp(v);
        parseNdpOptions(b, 0, b.length);
      }),
      { numRuns: 3000 },
    );
  });

  it('round-trips parse(emit(x)) with a valid checksum', () => {
    fc.assert(
      fc.property(reprArb, fc.uint8Array({ minLength: 32, maxLength: 32 }), (r, addrs) => {
        const buf = new Uint8Array(40 + ndpLen(r));
        buf.set(addrs, 8);
        const n = emitNdp(r, buf, 40, buf, 0);
        const v = icmp(buf.subarray(0, 40 + n));
        expect(v.verifyChecksum(buf, 0)).toBe(true);
        expect(parseNdp(v)).toEqual(r);
      }),
      { numRuns: 500 },
    );
  });
});
