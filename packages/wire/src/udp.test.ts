import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { UDP_HEADER_LEN, UdpView, emitUdp, parseUdp, type UdpRepr } from './udp.ts';
import { ipv4PseudoSum } from './ipv4.ts';
import { ipv6PseudoSum } from './ipv6.ts';
import { foldSum, sum16 } from './checksum.ts';
import { parseIpv6Addr } from './addr.ts';

const hex = (s: string): Uint8Array => Uint8Array.from((s.replace(/\s+/g, '').match(/../g) ?? []).map((x) => parseInt(x, 16)));

// Captured on a Linux veth with tx checksum offload, so the UDP checksum field holds the
// CHECKSUM_PARTIAL pseudo-header sum; the complete values (0x32a4, 0xb23a) were computed
// independently (Python) from the same bytes.
// IPv4: 10.0.2.15:49511 -> 10.0.2.2:5353 "ping".
const V4 = hex('45000020d462400040114e5a0a00020f0a000202 c16714e9000c182e 70696e67');
// IPv6: [fd00::15]:51303 -> [fd00::2]:5353 "v6".
const V6 = hex('600dd95e000a1140 fd000000000000000000000000000015 fd000000000000000000000000000002 c86714e9000afa33 7636');

describe('udp', () => {
  it('parses a captured IPv4 datagram', () => {
    const v = new UdpView();
    expect(v.reset(V4, 20, 12)).toBe(true);
    expect(parseUdp(v)).toEqual({ srcPort: 49511, dstPort: 5353, payloadLen: 4 });
    expect(v.length).toBe(12);
    expect(v.payloadOffset).toBe(28);
    expect(v.checksum).toBe(0x182e); // partial: the pseudo-header sum
    expect(foldSum(ipv4PseudoSum(0x0a00020f, 0x0a000202, 17, 12))).toBe(0x182e);
  });

  it('fills the IPv4 checksum Linux would have sent and verifies it', () => {
    const p = V4.slice();
    const v = new UdpView();
    v.reset(p, 20, 12);
    expect(v.verifyChecksumV4(p, 0)).toBe(false);
    v.fillChecksumV4(p, 0);
    expect(v.checksum).toBe(0x32a4);
    expect(v.verifyChecksumV4(p, 0)).toBe(true);
  });

  it('fills the IPv6 checksum and verifies it', () => {
    const p = V6.slice();
    const v = new UdpView();
    expect(v.reset(p, 40, 10)).toBe(true);
    expect(v.checksum).toBe(0xfa33);
    v.fillChecksumV6(p, 0);
    expect(v.checksum).toBe(0xb23a);
    expect(v.verifyChecksumV6(p, 0)).toBe(true);
    p[49] ^= 0x10;
    expect(v.verifyChecksumV6(p, 0)).toBe(false);
  });

  it('emits the completed IPv4 datagram byte for byte', () => {
    const out = V4.slice();
    out.fill(0, 20, 28);
    const ps = ipv4PseudoSum(0x0a00020f, 0x0a000202, 17, 12);
    expect(emitUdp({ srcPort: 49511, dstPort: 5353, payloadLen: 4 }, out, 20, ps)).toBe(UDP_HEADER_LEN);
    expect([...out.subarray(20, 28)]).toEqual([...hex('c16714e9000c32a4')]);
    // Without a pseudo-header sum the checksum is left 0 ("none" over IPv4).
    emitUdp({ srcPort: 49511, dstPort: 5353, payloadLen: 4 }, out, 20);
    expect(out[26]! | out[27]!).toBe(0);
  });

  it('treats a zero checksum as none over IPv4 and as invalid over IPv6', () => {
    const p4 = V4.slice();
    p4[26] = 0;
    p4[27] = 0;
    const v = new UdpView();
    v.reset(p4, 20, 12);
    expect(v.verifyChecksumV4(p4, 0)).toBe(true);
    const p6 = V6.slice();
    p6[46] = 0;
    p6[47] = 0;
    v.reset(p6, 40, 10);
    expect(v.verifyChecksumV6(p6, 0)).toBe(false);
  });

  it('sends a computed zero checksum as 0xffff (RFC 768)', () => {
    // Pick the last two payload bytes so that the one's-complement sum is 0xffff, i.e. checksum 0.
    const p = V4.slice();
    const v = new UdpView();
    v.reset(p, 20, 12);
    p[26] = p[27] = p[30] = p[31] = 0;
    const ps = ipv4PseudoSum(0x0a00020f, 0x0a000202, 17, 12);
    const w = 0xffff - foldSum(sum16(p, 20, 12, ps));
    p[30] = w >>> 8;
    p[31] = w & 0xff;
    v.fillChecksumV4(p, 0);
    expect(v.checksum).toBe(0xffff);
    expect(v.verifyChecksumV4(p, 0)).toBe(true);
    emitUdp(parseUdp(v), p, 20, ps);
    expect(v.checksum).toBe(0xffff);
  });

  it('honours the length field: shorter than the IP payload is trimmed, longer is refused', () => {
    const v = new UdpView();
    const padded = new Uint8Array(40);
    padded.set(V4.subarray(20));
    expect(v.reset(padded, 0, padded.length)).toBe(true);
    expect(v.payloadLen).toBe(4);
    expect(v.reset(V4, 20, 11)).toBe(false); // length 12 > 11 available
    const p = V4.slice();
    p[25] = 7; // length 7 < 8
    expect(v.reset(p, 20, 12)).toBe(false);
    expect(v.reset(V4, 20, 7)).toBe(false);
  });

  it('verifies against an IPv6 pseudo-header built from address arrays', () => {
    const v = new UdpView();
    v.reset(V6, 40, 10);
    const ps = ipv6PseudoSum(parseIpv6Addr('fd00::15')!, parseIpv6Addr('fd00::2')!, 17, 10);
    expect(foldSum(ps)).toBe(0xfa33);
  });

  it('never throws on arbitrary bytes', () => {
    const v = new UdpView();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 40, maxLength: 40 }), (b, ip) => {
        if (v.reset(b, 0, b.length)) {
          parseUdp(v);
          v.verifyChecksumV4(ip, 0);
          v.verifyChecksumV6(ip, 0);
          expect(v.payloadOffset + v.payloadLen).toBeLessThanOrEqual(b.length);
        }
      }),
    );
  });

  it('parse(emit(x)) round-trips with a valid checksum', () => {
    fc.assert(
      fc.property(fc.nat(0xffff), fc.nat(0xffff), fc.uint8Array({ maxLength: 64 }), fc.nat(0xffffffff), fc.nat(0xffffffff), (sp, dp, payload, src, dst) => {
        const r: UdpRepr = { srcPort: sp, dstPort: dp, payloadLen: payload.length };
        const buf = new Uint8Array(8 + payload.length);
        buf.set(payload, 8);
        const ps = ipv4PseudoSum(src, dst, 17, buf.length);
        emitUdp(r, buf, 0, ps);
        const v = new UdpView();
        expect(v.reset(buf, 0, buf.length)).toBe(true);
        expect(parseUdp(v)).toEqual(r);
        expect(v.checksum).not.toBe(0);
        expect(v.verifyChecksumPseudo(ps, false)).toBe(true);
      }),
    );
  });
});
