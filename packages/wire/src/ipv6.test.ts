import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  IPV6_ALL_NODES,
  IPV6_MAX_EXT_HEADERS,
  Ipv6ExtDrop,
  Ipv6ExtInfo,
  Ipv6View,
  emitIpv6,
  ipv6LinkLocalFromMac,
  ipv6MulticastMac,
  ipv6PseudoSum,
  ipv6SolicitedNode,
  isIpv6LinkLocal,
  isIpv6Loopback,
  isIpv6Multicast,
  isIpv6SolicitedNode,
  isIpv6Unspecified,
  parseIpv6,
  walkIpv6Headers,
  type Ipv6Repr,
} from './ipv6.ts';
import { IpProto } from './ipv4.ts';
import { ipv6ToString, macToString, parseIpv6Addr } from './addr.ts';
import { foldSum, pseudoSumV6 } from './checksum.ts';

const hex = (s: string): Uint8Array => Uint8Array.from((s.replace(/\s+/g, '').match(/../g) ?? []).map((x) => parseInt(x, 16)));
function withFill(prefix: Uint8Array, total: number, fill: number): Uint8Array {
  const b = new Uint8Array(total).fill(fill);
  b.set(prefix);
  return b;
}

// Captured on a Linux veth, Ethernet header stripped.
// TCP SYN fd00::15 -> fd00::2 port 8081, flow label 0xbc519.
const SYN6 = hex(
  '600bc51900280640 fd000000000000000000000000000015 fd000000000000000000000000000002' +
    'b9ce1f915e16859f00000000a002fd20fa460000020405a00402080ace937027000000000103030a',
);
// MLDv2 report from fe80::d846:34ff:fe9a:1113 with a Hop-by-Hop header (Router Alert + PadN).
const MLD = hex(
  '6000000000380001 fe80000000000000d84634fffe9a1113 ff020000000000000000000000000016' +
    '3a00050200000100 8f0040390000000204000000ff0200000000000000000001ff9a111304000000ff0200000000000000000001ff000015',
);
// Both fragments of a 1608-byte UDP datagram, identification 0xd05905c0.
const FRAG1 = withFill(
  hex('6001e2c105b02c40 fd000000000000000000000000000015 fd000000000000000000000000000002 1100 0001 d05905c0 9e5514e90648aa6b'),
  40 + 1456,
  0x79,
);
const FRAG2 = withFill(hex('6001e2c100a82c40 fd000000000000000000000000000015 fd000000000000000000000000000002 1100 05a8 d05905c0'), 40 + 168, 0x79);

/** Fixed header (src fd00::15, dst fd00::2) + the given chain bytes. */
function packet(nextHeader: number, chain: string): Uint8Array {
  const body = hex(chain);
  const b = new Uint8Array(40 + body.length);
  emitIpv6({ src: parseIpv6Addr('fd00::15')!, dst: parseIpv6Addr('fd00::2')!, nextHeader, payloadLen: body.length, hopLimit: 64 }, b, 0);
  b.set(body, 40);
  return b;
}
function walk(b: Uint8Array): Ipv6ExtInfo {
  const v = new Ipv6View();
  expect(v.reset(b, 0, b.length)).toBe(true);
  const info = new Ipv6ExtInfo();
  walkIpv6Headers(v, info);
  return info;
}
const TCP20 = '0000000000000000000000005000000000000000';

describe('ipv6 › header', () => {
  it('parses the fixed header of a captured SYN', () => {
    const v = new Ipv6View();
    expect(v.reset(SYN6, 0, SYN6.length)).toBe(true);
    expect(v.version).toBe(6);
    expect(v.trafficClass).toBe(0);
    expect(v.flowLabel).toBe(0xbc519);
    expect(v.payloadLen).toBe(40);
    expect(v.nextHeader).toBe(IpProto.TCP);
    expect(v.hopLimit).toBe(64);
    expect(v.payloadOffset).toBe(40);
    const r = parseIpv6(v);
    expect(ipv6ToString(r.src)).toBe('fd00::15');
    expect(ipv6ToString(r.dst)).toBe('fd00::2');
  });

  it('emits the captured SYN header byte for byte', () => {
    const v = new Ipv6View();
    v.reset(SYN6, 0, SYN6.length);
    const out = new Uint8Array(40);
    expect(emitIpv6(parseIpv6(v), out, 0)).toBe(40);
    expect(out).toEqual(SYN6.subarray(0, 40));
  });

  it('sets traffic class and flow label without disturbing each other', () => {
    const p = SYN6.slice();
    const v = new Ipv6View();
    v.reset(p, 0, p.length);
    v.trafficClass = 0xb8;
    expect(v.flowLabel).toBe(0xbc519);
    v.flowLabel = 0x12345;
    expect(v.trafficClass).toBe(0xb8);
    expect(v.version).toBe(6);
    expect([...p.subarray(0, 4)]).toEqual([0x6b, 0x81, 0x23, 0x45]);
  });

  it('rejects short packets, version 4, and a payload length past the buffer', () => {
    const v = new Ipv6View();
    expect(v.reset(SYN6, 0, 39)).toBe(false);
    expect(v.reset(SYN6, 0, 79)).toBe(false); // payload length 40 needs 80 bytes
    const p = SYN6.slice();
    p[0] = 0x45;
    expect(v.reset(p, 0, p.length)).toBe(false);
    const padded = withFill(SYN6, 100, 0);
    expect(v.reset(padded, 0, padded.length)).toBe(true);
    expect(v.payloadLen).toBe(40);
  });

  it('computes the pseudo-header sum from two address arrays', () => {
    const s = ipv6PseudoSum(parseIpv6Addr('fd00::15')!, parseIpv6Addr('fd00::2')!, 6, 40);
    expect(foldSum(s)).toBe(foldSum(pseudoSumV6(SYN6, 8, 24, 6, 40)));
    expect(foldSum(s)).toBe(0xfa46); // the CHECKSUM_PARTIAL value Linux left in this SYN
  });
});

describe('ipv6 › extension headers', () => {
  it('goes straight to the upper layer when there are none', () => {
    const i = walk(SYN6);
    expect(i).toMatchObject({ proto: IpProto.TCP, offset: 40, len: 40, nextHeaderFieldOffset: 6, isFragment: false, drop: null });
  });

  it('walks the Hop-by-Hop header of a captured MLDv2 report', () => {
    const i = walk(MLD);
    expect(i).toMatchObject({ proto: IpProto.ICMPv6, offset: 48, len: 48, nextHeaderFieldOffset: 40, drop: null });
    expect(MLD[i.offset]).toBe(143); // MLDv2 report
  });

  it('stops at the Fragment header of captured fragments and reports its fields', () => {
    const a = walk(FRAG1);
    expect(a).toMatchObject({ isFragment: true, fragOffset: 0, fragMore: true, fragIdent: 0xd05905c0, fragHeaderOffset: 40 });
    expect(a).toMatchObject({ proto: IpProto.UDP, offset: 48, len: 1448, nextHeaderFieldOffset: 40 });
    const b = walk(FRAG2);
    expect(b).toMatchObject({ isFragment: true, fragOffset: 1448, fragMore: false, fragIdent: 0xd05905c0, proto: IpProto.UDP, offset: 48, len: 160 });
  });

  it('walks through an atomic fragment (RFC 6946) to the upper layer', () => {
    const i = walk(packet(44, '06 00 0000 12345678' + TCP20));
    expect(i).toMatchObject({ isFragment: false, proto: IpProto.TCP, offset: 48, nextHeaderFieldOffset: 40, drop: null });
  });

  it('follows Hop-by-Hop, Destination Options and Routing (segments left 0) in a chain', () => {
    const hbh = '3c 00 01 04 00000000'; // -> DestOpts, PadN(4)
    const dst = '2b 01 00 00 01 0a 00000000000000000000'; // -> Routing, 16 bytes: Pad1 Pad1 PadN(10)
    const rt = '06 00 04 00 00000000'; // -> TCP, type 4, segments left 0
    const i = walk(packet(0, hbh + dst + rt + TCP20));
    expect(i).toMatchObject({ proto: IpProto.TCP, offset: 40 + 8 + 16 + 8, nextHeaderFieldOffset: 40 + 24, drop: null });
  });

  it('skips unknown options whose action bits are 00', () => {
    expect(walk(packet(60, '06 00 1e 04 00000000' + TCP20)).drop).toBeNull();
  });

  it('drops an unknown option whose action bits say discard', () => {
    const i = walk(packet(60, '06 00 9e 04 00000000' + TCP20));
    expect(i.drop).toBe(Ipv6ExtDrop.BAD_OPTION);
    expect(i.dropPointer).toBe(42);
    expect(walk(packet(0, '06 00 c2 04 00000000' + TCP20)).drop).toBe(Ipv6ExtDrop.BAD_OPTION); // jumbo payload
  });

  it('drops an option TLV that overruns its header', () => {
    expect(walk(packet(60, '06 00 01 05 00000000' + TCP20)).drop).toBe(Ipv6ExtDrop.BAD_OPTION);
  });

  it('drops Hop-by-Hop anywhere but first', () => {
    const i = walk(packet(60, '00 00 01 04 00000000 06 00 01 04 00000000' + TCP20));
    expect(i.drop).toBe(Ipv6ExtDrop.HBH_NOT_FIRST);
    expect(i.dropPointer).toBe(40);
  });

  it('drops headers that run past the payload', () => {
    expect(walk(packet(60, '06 01 01 04 00000000')).drop).toBe(Ipv6ExtDrop.TRUNCATED); // says 16, has 8
    expect(walk(packet(60, '06 00 01 02')).drop).toBe(Ipv6ExtDrop.TRUNCATED); // 4 bytes left
    expect(walk(packet(44, '')).drop).toBe(Ipv6ExtDrop.TRUNCATED);
  });

  it('drops a Routing header with segments left (a host does not forward)', () => {
    const i = walk(packet(43, '06 02 00 01 00000000 20010db8000000000000000000000001' + TCP20));
    expect(i.drop).toBe(Ipv6ExtDrop.ROUTING);
    expect(i.dropPointer).toBe(43);
  });

  it('drops a non-last fragment whose length is not a multiple of 8', () => {
    expect(walk(packet(44, '11 00 0001 00000001 0102030405060708 09')).drop).toBe(Ipv6ExtDrop.FRAG_LENGTH);
    expect(walk(packet(44, '11 00 0010 00000001 0102030405060708 09')).drop).toBeNull(); // last fragment: any length
  });

  it(`gives up after ${IPV6_MAX_EXT_HEADERS} extension headers`, () => {
    const opt = '3c 00 01 04 00000000';
    expect(walk(packet(60, opt.repeat(IPV6_MAX_EXT_HEADERS - 1) + '06 00 01 04 00000000' + TCP20)).drop).toBeNull();
    expect(walk(packet(60, opt.repeat(IPV6_MAX_EXT_HEADERS) + '06 00 01 04 00000000' + TCP20)).drop).toBe(Ipv6ExtDrop.TOO_MANY);
  });

  it('reports AH, ESP and No Next Header as the upper layer', () => {
    expect(walk(packet(59, '')).proto).toBe(IpProto.IPv6NoNxt);
    expect(walk(packet(60, '32 00 01 04 00000000 00000000')).proto).toBe(IpProto.ESP);
  });

  it('never throws on arbitrary chains and stays in bounds', () => {
    const v = new Ipv6View();
    const info = new Ipv6ExtInfo();
    const nh = fc.constantFrom(0, 43, 44, 60, 6, 17, 58, 59);
    const chain = fc.array(fc.oneof(nh, fc.nat(255)), { maxLength: 120 });
    fc.assert(
      fc.property(nh, chain, (first, bytes) => {
        const b = packet(first, bytes.map((x) => x.toString(16).padStart(2, '0')).join(''));
        if (v.reset(b, 0, b.length) && walkIpv6Headers(v, info)) {
          expect(info.offset + info.len).toBe(b.length);
          expect(info.offset).toBeGreaterThanOrEqual(40);
        } else {
          expect(typeof info.drop).toBe('string');
        }
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (b) => {
        if (v.reset(b, 0, b.length)) {
          parseIpv6(v);
          walkIpv6Headers(v, info);
        }
      }),
    );
  });

  it('parse(emit(x)) round-trips', () => {
    const addr = fc.uint8Array({ minLength: 16, maxLength: 16 });
    const repr = fc.record({
      src: addr,
      dst: addr,
      nextHeader: fc.nat(255),
      payloadLen: fc.nat(64),
      hopLimit: fc.nat(255),
      trafficClass: fc.nat(255),
      flowLabel: fc.nat(0xfffff),
    });
    fc.assert(
      fc.property(repr, (r: Ipv6Repr) => {
        const buf = new Uint8Array(110);
        emitIpv6(r, buf, 1);
        const v = new Ipv6View();
        expect(v.reset(buf, 1, 40 + r.payloadLen)).toBe(true);
        expect(parseIpv6(v)).toEqual(r);
      }),
    );
  });
});

describe('ipv6 › address helpers', () => {
  it('derives the solicited-node groups the captured host joined', () => {
    // The MLD report above lists ff02::1:ff9a:1113 and ff02::1:ff00:15.
    expect(ipv6ToString(ipv6SolicitedNode(parseIpv6Addr('fe80::d846:34ff:fe9a:1113')!))).toBe('ff02::1:ff9a:1113');
    expect(ipv6ToString(ipv6SolicitedNode(parseIpv6Addr('fd00::15')!))).toBe('ff02::1:ff00:15');
    expect(isIpv6SolicitedNode(MLD, 60)).toBe(true);
    expect(isIpv6SolicitedNode(MLD, 80)).toBe(true);
    expect(isIpv6SolicitedNode(IPV6_ALL_NODES)).toBe(false);
  });

  it('maps multicast addresses to 33:33 MACs', () => {
    expect(macToString(ipv6MulticastMac(parseIpv6Addr('ff02::16')!))).toBe('33:33:00:00:00:16');
    expect(macToString(ipv6MulticastMac(parseIpv6Addr('ff02::1:ff9a:1113')!))).toBe('33:33:ff:9a:11:13');
    const out = new Uint8Array(8);
    ipv6MulticastMac(IPV6_ALL_NODES, 0, out, 2);
    expect([...out]).toEqual([0, 0, 0x33, 0x33, 0, 0, 0, 1]);
  });

  it('builds the EUI-64 link-local address the captured host used', () => {
    expect(ipv6ToString(ipv6LinkLocalFromMac(hex('da46349a1113')))).toBe('fe80::d846:34ff:fe9a:1113');
    expect(ipv6ToString(ipv6LinkLocalFromMac(hex('26e628a2bd79')))).toBe('fe80::24e6:28ff:fea2:bd79');
  });

  it('classifies addresses', () => {
    expect(isIpv6Multicast(IPV6_ALL_NODES)).toBe(true);
    expect(isIpv6Multicast(parseIpv6Addr('fd00::1')!)).toBe(false);
    expect(isIpv6LinkLocal(parseIpv6Addr('fe80::1')!)).toBe(true);
    expect(isIpv6LinkLocal(parseIpv6Addr('febf::1')!)).toBe(true);
    expect(isIpv6LinkLocal(parseIpv6Addr('fec0::1')!)).toBe(false);
    expect(isIpv6Unspecified(parseIpv6Addr('::')!)).toBe(true);
    expect(isIpv6Unspecified(parseIpv6Addr('::1')!)).toBe(false);
    expect(isIpv6Loopback(parseIpv6Addr('::1')!)).toBe(true);
    expect(isIpv6Loopback(parseIpv6Addr('::2')!)).toBe(false);
  });
});
