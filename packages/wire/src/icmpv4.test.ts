import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ICMPV4_MAX_QUOTE,
  Icmpv4DstUnreachable,
  Icmpv4TimeExceeded,
  Icmpv4Type,
  Icmpv4View,
  emitIcmpv4,
  icmpv4Len,
  icmpv4QuoteLen,
  parseIcmpv4,
  type Icmpv4Repr,
} from './icmpv4.ts';
import { Ipv4View } from './ipv4.ts';
import { UdpView } from './udp.ts';
import { checksum } from './checksum.ts';

const hex = (s: string): Uint8Array => Uint8Array.from((s.replace(/\s+/g, '').match(/../g) ?? []).map((x) => parseInt(x, 16)));
const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

// Captured on a Linux veth (ICMP message only, after the IPv4 header).
const ECHO_REQUEST = hex('0800 5435 1234 0001 6162636465666768'); // id 0x1234 seq 1 "abcdefgh"
const ECHO_REPLY = hex('0000 5c35 1234 0001 6162636465666768'); // Linux's answer
// Port unreachable for UDP 10.0.2.15:33517 -> 10.0.2.2:9999 "closed": the whole datagram is quoted.
const PORT_UNREACH = hex('0303 027e 00000000 45000022a70e400040117bac0a00020f0a000202 82ed270f000e1830 636c6f736564');

describe('icmpv4', () => {
  it('parses a captured echo request', () => {
    const v = new Icmpv4View();
    expect(v.reset(ECHO_REQUEST, 0, ECHO_REQUEST.length)).toBe(true);
    expect(v.verifyChecksum()).toBe(true);
    expect(v.type).toBe(Icmpv4Type.EchoRequest);
    expect(v.isError).toBe(false);
    expect(parseIcmpv4(v)).toEqual({ kind: 'echo-request', ident: 0x1234, seq: 1, data: ascii('abcdefgh') });
  });

  it('emits the captured echo reply byte for byte', () => {
    const r: Icmpv4Repr = { kind: 'echo-reply', ident: 0x1234, seq: 1, data: ascii('abcdefgh') };
    const out = new Uint8Array(icmpv4Len(r));
    expect(emitIcmpv4(r, out, 0)).toBe(16);
    expect(out).toEqual(ECHO_REPLY);
  });

  it('turns a request into the captured reply in place with an incremental checksum', () => {
    const p = ECHO_REQUEST.slice();
    const v = new Icmpv4View();
    v.reset(p, 0, p.length);
    v.echoToReply();
    expect(p).toEqual(ECHO_REPLY);
  });

  it('echoToReply agrees with a full recompute for any payload', () => {
    fc.assert(
      fc.property(fc.nat(0xffff), fc.nat(0xffff), fc.uint8Array({ maxLength: 64 }), (ident, seq, data) => {
        const p = new Uint8Array(8 + data.length);
        emitIcmpv4({ kind: 'echo-request', ident, seq, data }, p, 0);
        const v = new Icmpv4View();
        v.reset(p, 0, p.length);
        v.echoToReply();
        expect(v.verifyChecksum()).toBe(true);
      }),
    );
  });

  it('parses a captured port unreachable and reaches the quoted UDP header', () => {
    const v = new Icmpv4View();
    expect(v.reset(PORT_UNREACH, 0, PORT_UNREACH.length)).toBe(true);
    expect(v.verifyChecksum()).toBe(true);
    expect(v.isError).toBe(true);
    const r = parseIcmpv4(v);
    expect(r).toMatchObject({ kind: 'dst-unreachable', code: Icmpv4DstUnreachable.PortUnreachable, nextHopMtu: 0 });
    expect(r.data.length).toBe(34);
    const ip = new Ipv4View();
    expect(ip.resetQuoted(PORT_UNREACH, v.dataOffset, v.dataLen)).toBe(true);
    const udp = new UdpView();
    expect(udp.reset(PORT_UNREACH, ip.payloadOffset, ip.payloadLen)).toBe(true);
    expect(udp.srcPort).toBe(33517);
    expect(udp.dstPort).toBe(9999);
  });

  it('emits the captured port unreachable byte for byte', () => {
    const r: Icmpv4Repr = { kind: 'dst-unreachable', code: 3, nextHopMtu: 0, data: PORT_UNREACH.slice(8) };
    const out = new Uint8Array(icmpv4Len(r));
    emitIcmpv4(r, out, 0);
    expect(out).toEqual(PORT_UNREACH);
  });

  it('carries the next-hop MTU of fragmentation needed (RFC 1191)', () => {
    const r: Icmpv4Repr = { kind: 'dst-unreachable', code: Icmpv4DstUnreachable.FragNeeded, nextHopMtu: 1400, data: PORT_UNREACH.slice(8, 36) };
    const out = new Uint8Array(icmpv4Len(r));
    emitIcmpv4(r, out, 0);
    expect([...out.subarray(0, 8)].map((x) => x.toString(16))).toEqual(['3', '4', expect.any(String), expect.any(String), '0', '0', '5', '78']);
    const v = new Icmpv4View();
    v.reset(out, 0, out.length);
    expect(v.nextHopMtu).toBe(1400);
    expect(parseIcmpv4(v)).toEqual(r);
  });

  it('builds a time exceeded whose checksum verifies', () => {
    const r: Icmpv4Repr = { kind: 'time-exceeded', code: Icmpv4TimeExceeded.TtlExpired, data: PORT_UNREACH.slice(8, 36) };
    const out = new Uint8Array(icmpv4Len(r) + 4);
    expect(emitIcmpv4(r, out, 4)).toBe(36);
    expect(out[4]).toBe(11);
    expect(checksum(out, 4, 36)).toBe(0);
    const v = new Icmpv4View();
    v.reset(out, 4, 36);
    expect(parseIcmpv4(v)).toEqual(r);
  });

  it('keeps other types verbatim', () => {
    const redirect = hex('0501 0000 0a000201 45000022a70e400040117bac0a00020f0a000202 82ed270f000e1830');
    const v = new Icmpv4View();
    v.reset(redirect, 0, redirect.length);
    const r = parseIcmpv4(v);
    expect(r).toMatchObject({ kind: 'other', type: 5, code: 1, rest: 0x0a000201 });
    const out = new Uint8Array(redirect.length);
    emitIcmpv4(r, out, 0);
    expect(v.reset(out, 0, out.length) && v.verifyChecksum()).toBe(true);
    expect(out.subarray(4)).toEqual(redirect.subarray(4));
  });

  it('quotes as much as fits in 576 bytes, as Linux did for a 2028-byte datagram', () => {
    expect(icmpv4QuoteLen(2028)).toBe(548);
    expect(icmpv4QuoteLen(34)).toBe(34);
    expect(ICMPV4_MAX_QUOTE + 20 + 8).toBe(576);
  });

  it('rejects messages shorter than 8 bytes and a bad checksum', () => {
    const v = new Icmpv4View();
    expect(v.reset(ECHO_REQUEST, 0, 7)).toBe(false);
    const p = ECHO_REQUEST.slice();
    p[15] ^= 1;
    v.reset(p, 0, p.length);
    expect(v.verifyChecksum()).toBe(false);
  });

  it('never throws on arbitrary bytes', () => {
    const v = new Icmpv4View();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        if (v.reset(b, 0, b.length)) {
          parseIcmpv4(v);
          v.verifyChecksum();
        }
      }),
    );
  });

  it('parse(emit(x)) round-trips', () => {
    const data = fc.uint8Array({ maxLength: 40 });
    const u16 = fc.nat(0xffff);
    const repr: fc.Arbitrary<Icmpv4Repr> = fc.oneof(
      fc.record({ kind: fc.constantFrom('echo-request' as const, 'echo-reply' as const), ident: u16, seq: u16, data }),
      fc.record({ kind: fc.constant('dst-unreachable' as const), code: fc.nat(15), nextHopMtu: u16, data }),
      fc.record({ kind: fc.constant('time-exceeded' as const), code: fc.nat(1), data }),
      fc.record({ kind: fc.constant('other' as const), type: fc.constantFrom(4, 5, 12, 13, 14, 200), code: fc.nat(255), rest: fc.nat(0xffffffff), data }),
    );
    fc.assert(
      fc.property(repr, (r) => {
        const buf = new Uint8Array(icmpv4Len(r));
        emitIcmpv4(r, buf, 0);
        const v = new Icmpv4View();
        expect(v.reset(buf, 0, buf.length)).toBe(true);
        expect(v.verifyChecksum()).toBe(true);
        expect(parseIcmpv4(v)).toEqual(r);
      }),
    );
  });
});
