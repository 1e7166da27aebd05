import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { IpProto, Ipv4View, emitIpv4, ipv4HeaderLen, ipv4PseudoSum, parseIpv4, type Ipv4Repr } from './ipv4.ts';
import { checksum, foldSum, pseudoSumV4 } from './checksum.ts';

const hex = (s: string): Uint8Array => Uint8Array.from(s.replace(/\s+/g, '').match(/../g)!.map((x) => parseInt(x, 16)));

// All captured on a Linux veth, Ethernet header stripped.
// TCP SYN 10.0.2.15:50006 -> 10.0.2.2:8080, DF, id 0x9c55.
const SYN = hex('4500003c9c554000400686560a00020f0a000202 c3561f90b5f72ac300000000a002faf0183f0000020405b40402080a16753a5d000000000103030a');
// UDP with a Record Route option (IHL 8): RR len 11, ptr 8, 10.0.2.15, 0.0.0.0, then EOL.
const RR = hex('4800002aa712400040115a890a00020f0a000202 070b080a00020f0000000000 b01314e9000a182c7272');
// First and second fragments of a 2008-byte UDP datagram, id 0xa72f.
const FRAG1_HDR = hex('450005dca72f2000401195d10a00020f0a000202');
const FRAG2_HDR = hex('45000224a72f00b94011b8d00a00020f0a000202');
function frame(hdr: Uint8Array, payload: Uint8Array | number, fill = 0x78): Uint8Array {
  const n = typeof payload === 'number' ? payload : payload.length;
  const f = new Uint8Array(hdr.length + n).fill(fill);
  f.set(hdr);
  if (typeof payload !== 'number') f.set(payload, hdr.length);
  return f;
}

describe('ipv4', () => {
  it('parses the header of a captured SYN', () => {
    const v = new Ipv4View();
    expect(v.reset(SYN, 0, SYN.length)).toBe(true);
    expect(v.version).toBe(4);
    expect(v.headerLen).toBe(20);
    expect(v.totalLen).toBe(60);
    expect(v.ident).toBe(0x9c55);
    expect(v.dontFragment).toBe(true);
    expect(v.moreFragments).toBe(false);
    expect(v.isFragment).toBe(false);
    expect(v.ttl).toBe(64);
    expect(v.protocol).toBe(IpProto.TCP);
    expect(v.src).toBe(0x0a00020f);
    expect(v.dst).toBe(0x0a000202);
    expect(v.checksum).toBe(0x8656);
    expect(v.verifyChecksum()).toBe(true);
    expect(v.payloadOffset).toBe(20);
    expect(v.payloadLen).toBe(40);
  });

  it('emits the captured SYN header byte for byte, checksum included', () => {
    const v = new Ipv4View();
    v.reset(SYN, 0, SYN.length);
    const r = parseIpv4(v);
    expect(r).toEqual({ src: 0x0a00020f, dst: 0x0a000202, protocol: 6, payloadLen: 40, ttl: 64, dscp: 0, ecn: 0, ident: 0x9c55, dontFragment: true, moreFragments: false, fragmentOffset: 0 });
    const out = new Uint8Array(20);
    expect(emitIpv4(r, out, 0)).toBe(20);
    expect(out).toEqual(SYN.subarray(0, 20));
  });

  it('keeps options (Record Route) through parse and emit', () => {
    const v = new Ipv4View();
    expect(v.reset(RR, 0, RR.length)).toBe(true);
    expect(v.headerLen).toBe(32);
    expect(v.optionsLen).toBe(12);
    expect(RR[v.optionsOffset]).toBe(7); // RR
    expect(v.payloadOffset).toBe(32);
    expect(v.payloadLen).toBe(10);
    expect(v.verifyChecksum()).toBe(true);
    const r = parseIpv4(v);
    expect([...r.options!]).toEqual([...hex('070b080a00020f0000000000')]);
    const out = new Uint8Array(32);
    expect(emitIpv4(r, out, 0)).toBe(32);
    expect(out).toEqual(RR.subarray(0, 32));
  });

  it('pads options to a 4-byte boundary with End of Option List', () => {
    const r: Ipv4Repr = { src: 1, dst: 2, protocol: 17, payloadLen: 0, ttl: 1, options: Uint8Array.of(0x94, 0x04, 0, 0, 1) };
    expect(ipv4HeaderLen(r)).toBe(28);
    const out = new Uint8Array(28).fill(0xee);
    expect(emitIpv4(r, out, 0)).toBe(28);
    expect([...out.subarray(20)]).toEqual([0x94, 4, 0, 0, 1, 0, 0, 0]);
    expect(out[0]).toBe(0x47);
    expect(checksum(out, 0, 28)).toBe(0);
    expect(() => emitIpv4({ ...r, options: new Uint8Array(41) }, new Uint8Array(80), 0)).toThrow(RangeError);
  });

  it('reads the fragmentation fields of a captured fragment pair', () => {
    const f1 = frame(FRAG1_HDR, 1480);
    const f2 = frame(FRAG2_HDR, 528);
    const v = new Ipv4View();
    expect(v.reset(f1, 0, f1.length)).toBe(true);
    expect(v.moreFragments).toBe(true);
    expect(v.dontFragment).toBe(false);
    expect(v.fragmentOffset).toBe(0);
    expect(v.isFragment).toBe(true);
    expect(v.verifyChecksum()).toBe(true);
    const r1 = parseIpv4(v);
    expect(v.reset(f2, 0, f2.length)).toBe(true);
    expect(v.moreFragments).toBe(false);
    expect(v.fragmentOffset).toBe(1480);
    expect(v.isFragment).toBe(true);
    expect(v.payloadLen).toBe(528);
    const out = new Uint8Array(20);
    emitIpv4(parseIpv4(v), out, 0);
    expect(out).toEqual(FRAG2_HDR);
    emitIpv4(r1, out, 0);
    expect(out).toEqual(FRAG1_HDR);
  });

  it('excludes trailing Ethernet padding from the payload', () => {
    // 32-byte UDP datagram padded to fill a 60-byte frame (46 bytes of IP payload room).
    const udp = hex('45000020d462400040114e5a0a00020f0a000202c16714e9000c182e70696e67');
    const padded = frame(udp, 14, 0);
    const v = new Ipv4View();
    expect(v.reset(padded, 0, padded.length)).toBe(true);
    expect(v.payloadLen).toBe(12);
    expect(v.len).toBe(46);
  });

  it('rejects a wrong version, IHL < 5, a header past the buffer, and lying total lengths', () => {
    const v = new Ipv4View();
    const mutate = (i: number, b: number) => {
      const p = SYN.slice();
      p[i] = b;
      return v.reset(p, 0, p.length);
    };
    expect(mutate(0, 0x65)).toBe(false); // version 6
    expect(mutate(0, 0x44)).toBe(false); // IHL 4
    expect(mutate(0, 0x4f)).toBe(true); // IHL 15 = 60 bytes: fits in this 60-byte buffer...
    expect(v.reset(SYN, 0, 40)).toBe(false); // ...total length 60 > 40 available
    expect(mutate(3, 0x13)).toBe(false); // total length 19 < header
    expect(mutate(3, 0x3d)).toBe(false); // total length 61 > 60 available
    expect(v.reset(SYN, 0, 19)).toBe(false);
    expect(v.reset(SYN, 50, 20)).toBe(false); // beyond the buffer
  });

  it('fills the checksum and decrements the TTL incrementally', () => {
    const p = SYN.slice();
    const v = new Ipv4View();
    v.reset(p, 0, p.length);
    v.checksum = 0;
    v.fillChecksum();
    expect(v.checksum).toBe(0x8656);
    v.decrementTtl();
    expect(v.ttl).toBe(63);
    expect(v.verifyChecksum()).toBe(true);
    const incremental = v.checksum;
    v.fillChecksum();
    expect(v.checksum).toBe(incremental);
  });

  it('reads a truncated datagram quoted in an ICMP error with resetQuoted', () => {
    // Linux's port unreachable for the 2028-byte datagram quoted 548 bytes of it.
    const quoted = frame(hex('450007eca72f00004011b3c10a00020f0a000202 82ed14e907d8a9c0'), 520);
    const v = new Ipv4View();
    expect(v.reset(quoted, 0, quoted.length)).toBe(false);
    expect(v.resetQuoted(quoted, 0, quoted.length)).toBe(true);
    expect(v.totalLen).toBe(2028);
    expect(v.payloadLen).toBe(528);
    expect(v.protocol).toBe(IpProto.UDP);
    expect(v.verifyChecksum()).toBe(true);
  });

  it('computes the pseudo-header sum from numbers like checksum.ts does from bytes', () => {
    const s = ipv4PseudoSum(0x0a00020f, 0x0a000202, 6, 40);
    expect(foldSum(s)).toBe(foldSum(pseudoSumV4(SYN, 12, 16, 6, 40)));
    expect(foldSum(s)).toBe(0x183f); // the CHECKSUM_PARTIAL value Linux left in this SYN
  });

  it('never throws on arbitrary bytes', () => {
    const v = new Ipv4View();
    const likely = fc.uint8Array({ minLength: 20, maxLength: 80 }).map((b) => {
      b[0] = 0x40 | (b[0]! & 0x0f);
      b[2] = 0;
      return b;
    });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 80 }), likely), (b) => {
        for (const quoted of [false, true]) {
          const ok = quoted ? v.resetQuoted(b, 0, b.length) : v.reset(b, 0, b.length);
          if (ok) {
            parseIpv4(v);
            v.verifyChecksum();
            expect(v.payloadOffset + v.payloadLen).toBeLessThanOrEqual(b.length);
            expect(v.payloadLen).toBeGreaterThanOrEqual(0);
          }
        }
      }),
    );
  });

  it('parse(emit(x)) round-trips', () => {
    const repr = fc.record({
      src: fc.nat(0xffffffff),
      dst: fc.nat(0xffffffff),
      protocol: fc.nat(255),
      payloadLen: fc.nat(100),
      ttl: fc.nat(255),
      dscp: fc.nat(63),
      ecn: fc.nat(3),
      ident: fc.nat(0xffff),
      dontFragment: fc.boolean(),
      moreFragments: fc.boolean(),
      fragmentOffset: fc.nat(0x1fff).map((x) => x * 8),
      options: fc.option(fc.nat(10).chain((n) => fc.uint8Array({ minLength: 4 * n, maxLength: 4 * n })), { nil: undefined }),
    });
    fc.assert(
      fc.property(repr, (r0) => {
        const r: Ipv4Repr = { ...r0 };
        if (!r.options || r.options.length === 0) delete r.options;
        const buf = new Uint8Array(200);
        const hl = emitIpv4(r, buf, 3);
        const v = new Ipv4View();
        expect(v.reset(buf, 3, hl + r.payloadLen)).toBe(true);
        expect(v.verifyChecksum()).toBe(true);
        expect(parseIpv4(v)).toEqual(r);
      }),
    );
  });
});
