import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ICMPV6_ERROR_MAX_INVOKING,
  Icmpv6DstUnreachableCode,
  Icmpv6Type,
  Icmpv6View,
  emitIcmpv6,
  icmpv6Checksum,
  icmpv6Len,
  parseIcmpv6,
} from './icmpv6.ts';
import type { Icmpv6Repr } from './icmpv6.ts';

const hex = (s: string): Uint8Array => Uint8Array.from((s.replace(/\s+/g, '').match(/../g) ?? []).map((b) => parseInt(b, 16)));
const LOOPBACK = '00000000000000000000000000000001';

// Captured on lo (Linux 6.x): an echo request to ::1 and the kernel's echo reply, and the
// kernel's port unreachable for a UDP datagram to ::1 port 9. Whole IPv6 packets.
const ECHO_REQUEST = hex(`6008871c 0018 3a 40 ${LOOPBACK} ${LOOPBACK} 8000 3536 1234 0001 000102030405060708090a0b0c0d0e0f`);
const ECHO_REPLY = hex(`600deb80 0018 3a 40 ${LOOPBACK} ${LOOPBACK} 8100 3436 1234 0001 000102030405060708090a0b0c0d0e0f`);
const UDP_TO_PORT_9 = hex(`6008b07d 000d 11 40 ${LOOPBACK} ${LOOPBACK} a102 0009 000d 0020 68656c6c6f`);
const PORT_UNREACHABLE = hex(`600391d4 003d 3a 40 ${LOOPBACK} ${LOOPBACK} 0104 f7a2 00000000`);
const PORT_UNREACHABLE_FULL = new Uint8Array(PORT_UNREACHABLE.length + UDP_TO_PORT_9.length);
PORT_UNREACHABLE_FULL.set(PORT_UNREACHABLE);
PORT_UNREACHABLE_FULL.set(UDP_TO_PORT_9, PORT_UNREACHABLE.length);

// Packet Too Big from fe80::1 to fe80::2 (smoltcp's test vector), MTU 1500.
const FE80_1 = hex('fe800000000000000000000000000001');
const FE80_2 = hex('fe800000000000000000000000000002');
const PTB_IP = new Uint8Array(40);
PTB_IP.set(FE80_1, 8);
PTB_IP.set(FE80_2, 24);
const PTB = hex(
  '0200 0fc9 000005dc 60000000000c1140 fe800000000000000000000000000001 fe800000000000000000000000000002 bf000035000c124d aa0000ff',
);

function view(b: Uint8Array, off = 40): Icmpv6View {
  const v = new Icmpv6View();
  expect(v.reset(b, off, b.length - off)).toBe(true);
  return v;
}

describe('icmpv6 real packets', () => {
  it('verifies the kernel’s checksums over the IPv6 pseudo-header', () => {
    for (const pkt of [ECHO_REQUEST, ECHO_REPLY, PORT_UNREACHABLE_FULL]) expect(view(pkt).verifyChecksum(pkt, 0)).toBe(true);
    const bad = ECHO_REPLY.slice();
    bad[bad.length - 1] ^= 1;
    expect(view(bad).verifyChecksum(bad, 0)).toBe(false);
  });

  it('parses an echo request and emits the same bytes', () => {
    const r = parseIcmpv6(view(ECHO_REQUEST));
    expect(r).toEqual({ kind: 'echoRequest', ident: 0x1234, seq: 1, data: hex('000102030405060708090a0b0c0d0e0f') });
    const out = ECHO_REQUEST.slice();
    out.fill(0xee, 40);
    expect(emitIcmpv6(r!, out, 40, out, 0)).toBe(24);
    expect(out).toEqual(ECHO_REQUEST);
  });

  it('answers the echo request with the kernel’s exact echo reply', () => {
    const req = parseIcmpv6(view(ECHO_REQUEST))!;
    if (req.kind !== 'echoRequest') throw new Error('kind');
    const out = new Uint8Array(ECHO_REPLY.length);
    out.set(ECHO_REPLY.subarray(0, 40));
    emitIcmpv6({ kind: 'echoReply', ident: req.ident, seq: req.seq, data: req.data }, out, 40, out, 0);
    expect(out).toEqual(ECHO_REPLY);
  });

  it('parses the kernel’s port unreachable with the invoking packet and emits it back', () => {
    const r = parseIcmpv6(view(PORT_UNREACHABLE_FULL))!;
    expect(r).toEqual({ kind: 'dstUnreachable', code: Icmpv6DstUnreachableCode.PORT_UNREACHABLE, invoking: UDP_TO_PORT_9 });
    const out = new Uint8Array(PORT_UNREACHABLE_FULL.length);
    out.set(PORT_UNREACHABLE_FULL.subarray(0, 40));
    expect(emitIcmpv6(r, out, 40, out, 0)).toBe(icmpv6Len(r));
    expect(out).toEqual(PORT_UNREACHABLE_FULL);
  });

  it('parses and emits a Packet Too Big with the IPv6 header in a separate buffer', () => {
    const v = view(PTB, 0);
    expect(v.verifyChecksum(PTB_IP, 0)).toBe(true);
    expect(v.mtu).toBe(1500);
    const r = parseIcmpv6(v)!;
    expect(r).toEqual({ kind: 'packetTooBig', mtu: 1500, invoking: PTB.slice(8) });
    const out = new Uint8Array(PTB.length);
    emitIcmpv6(r, out, 0, PTB_IP, 0);
    expect(out).toEqual(PTB);
  });
});

describe('icmpv6 view and limits', () => {
  it('rejects messages shorter than 8 octets', () => {
    const v = new Icmpv6View();
    expect(v.reset(new Uint8Array(7), 0, 7)).toBe(false);
    expect(v.reset(new Uint8Array(8), 1, 8)).toBe(false);
    expect(v.reset(new Uint8Array(8), 0, 8)).toBe(true);
  });

  it('fills the checksum in place and flags errors by type', () => {
    const pkt = ECHO_REQUEST.slice();
    const v = view(pkt);
    v.checksum = 0;
    v.fillChecksum(pkt, 0);
    expect(v.checksum).toBe(0x3536);
    expect(v.isError).toBe(false);
    expect(view(PORT_UNREACHABLE_FULL).isError).toBe(true);
    expect(icmpv6Checksum(ECHO_REQUEST, 40, 24, ECHO_REQUEST, 0)).toBe(0); // includes the stored checksum
  });

  it('truncates the invoking packet so the error fits the 1280-octet minimum MTU', () => {
    const big = new Uint8Array(3000).fill(7);
    const r: Icmpv6Repr = { kind: 'timeExceeded', code: 0, invoking: big };
    expect(icmpv6Len(r)).toBe(1280 - 40);
    const out = new Uint8Array(40 + 1240);
    expect(emitIcmpv6(r, out, 40, out, 0)).toBe(1240);
    const p = parseIcmpv6(view(out))!;
    expect(p.kind === 'timeExceeded' && p.invoking.length).toBe(ICMPV6_ERROR_MAX_INVOKING);
  });

  it('returns null for NDP types and for echo with a non-zero code', () => {
    const b = new Uint8Array(8);
    const v = new Icmpv6View();
    v.reset(b, 0, 8);
    v.type = Icmpv6Type.ROUTER_SOLICIT;
    expect(parseIcmpv6(v)).toBeNull();
    v.type = Icmpv6Type.ECHO_REQUEST;
    v.code = 1;
    expect(parseIcmpv6(v)).toBeNull();
    v.type = Icmpv6Type.PARAM_PROBLEM;
    v.pointer = 6;
    expect(parseIcmpv6(v)).toEqual({ kind: 'paramProblem', code: 1, pointer: 6, invoking: new Uint8Array(0) });
  });
});

const u16 = fc.nat({ max: 0xffff });
const reprArb: fc.Arbitrary<Icmpv6Repr> = fc.oneof(
  fc.record({ kind: fc.constantFrom('echoRequest' as const, 'echoReply' as const), ident: u16, seq: u16, data: fc.uint8Array({ maxLength: 200 }) }),
  fc.record({ kind: fc.constant('dstUnreachable' as const), code: fc.nat({ max: 255 }), invoking: fc.uint8Array({ maxLength: 200 }) }),
  fc.record({ kind: fc.constant('packetTooBig' as const), mtu: fc.nat({ max: 0xffffffff }), invoking: fc.uint8Array({ maxLength: 200 }) }),
  fc.record({ kind: fc.constant('timeExceeded' as const), code: fc.nat({ max: 255 }), invoking: fc.uint8Array({ maxLength: 200 }) }),
  fc.record({ kind: fc.constant('paramProblem' as const), code: fc.nat({ max: 255 }), pointer: fc.nat({ max: 0xffffffff }), invoking: fc.uint8Array({ maxLength: 200 }) }),
);

describe('icmpv6 properties', () => {
  it('never throws on arbitrary bytes', () => {
    const v = new Icmpv6View();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (b) => {
        if (v.reset(b, 0, b.length)) {
          parseIcmpv6(v);
          v.verifyChecksum(ECHO_REQUEST, 0);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips parse(emit(x)) and the emitted checksum verifies', () => {
    fc.assert(
      fc.property(reprArb, fc.uint8Array({ minLength: 32, maxLength: 32 }), (r, addrs) => {
        const out = new Uint8Array(40 + icmpv6Len(r));
        out.set(addrs, 8);
        const n = emitIcmpv6(r, out, 40, out, 0);
        const v = view(out.subarray(0, 40 + n));
        expect(v.verifyChecksum(out, 0)).toBe(true);
        expect(parseIcmpv6(v)).toEqual(r);
      }),
      { numRuns: 500 },
    );
  });
});
