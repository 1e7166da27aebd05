import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  TCP_MAX_OPTIONS_LEN,
  TcpFlags,
  TcpOptions,
  TcpView,
  emitTcp,
  emitTcpOptions,
  parseTcp,
  scanTcpOptionBytes,
  scanTcpOptions,
  tcpHeaderLen,
  tcpOptionsLen,
  type TcpOptionsRepr,
  type TcpRepr,
} from './tcp.ts';
import { ipv4PseudoSum } from './ipv4.ts';
import { ipv6PseudoSum } from './ipv6.ts';
import { parseIpv6Addr } from './addr.ts';

const hex = (s: string): Uint8Array => Uint8Array.from((s.replace(/\s+/g, '').match(/../g) ?? []).map((x) => parseInt(x, 16)));

// Captured on a Linux 6.x veth (IPv4/IPv6 header + TCP segment). Transmit checksum offload was on,
// so the TCP checksum fields hold the CHECKSUM_PARTIAL pseudo-header sums (0x183f, ...); the
// complete checksums in the comments were computed independently (Python) from the same bytes.
// SYN 10.0.2.15:50006 -> 10.0.2.2:8080: mss 1460, sackOK, TS val 376781405 ecr 0, nop, wscale 10. Checksum 0x2088.
const SYN = hex('4500003c9c554000400686560a00020f0a000202 c3561f90b5f72ac300000000a002faf0183f0000 020405b40402080a16753a5d000000000103030a');
// SYN-ACK back. Checksum 0x6372.
const SYNACK = hex('4500003c00004000400622ac0a0002020a00020f 1f90c356483a1d37b5f72ac4a012fe88183f0000 020405b40402080af9ad5a4d16753a5d0103030a');
// PSH|ACK carrying "hello": nop, nop, TS. Checksum 0x4cac.
const PSH = hex('450000399c574000400686570a00020f0a000202 c3561f90b5f72ac4483a1d388018003f183c0000 0101080a16753a5df9ad5a4d 68656c6c6f');
// IPv6 SYN [fd00::15]:47566 -> [fd00::2]:8081, mss 1440. Checksum 0x5507.
const SYN6 = hex(
  '600bc51900280640 fd000000000000000000000000000015 fd000000000000000000000000000002' +
    'b9ce1f915e16859f00000000a002fd20fa460000 020405a00402080ace937027000000000103030a',
);

function view(pkt: Uint8Array, ipLen: number): TcpView {
  const v = new TcpView();
  expect(v.reset(pkt, ipLen, pkt.length - ipLen)).toBe(true);
  return v;
}

describe('tcp › header', () => {
  it('parses a captured Linux SYN with MSS, SACK-permitted, timestamps and window scale', () => {
    const v = view(SYN, 20);
    expect(v.headerLen).toBe(40);
    expect(v.payloadLen).toBe(0);
    expect(v.segLen).toBe(1);
    expect(v.hasFlags(TcpFlags.SYN)).toBe(true);
    expect(v.hasFlags(TcpFlags.ACK)).toBe(false);
    expect(parseTcp(v)).toEqual({
      srcPort: 50006,
      dstPort: 8080,
      seqNum: 3052874435,
      ackNum: 0,
      flags: TcpFlags.SYN,
      window: 64240,
      urgent: 0,
      payloadLen: 0,
      options: { mss: 1460, sackPermitted: true, tsVal: 376781405, tsEcr: 0, wscale: 10 },
    });
  });

  it('emits the captured SYN byte for byte, filling the checksum Linux would have', () => {
    const v = view(SYN, 20);
    const r = parseTcp(v);
    expect(tcpHeaderLen(r)).toBe(40);
    const out = new Uint8Array(40);
    expect(emitTcp(r, out, 0, ipv4PseudoSum(0x0a00020f, 0x0a000202, 6, 40))).toBe(40);
    const expected = SYN.slice(20);
    expected[16] = 0x20;
    expected[17] = 0x88;
    expect(out).toEqual(expected);
  });

  it('emits the captured SYN-ACK byte for byte', () => {
    const r = parseTcp(view(SYNACK, 20));
    expect(r.flags).toBe(TcpFlags.SYN | TcpFlags.ACK);
    expect(r.options).toEqual({ mss: 1460, sackPermitted: true, tsVal: 4188887629, tsEcr: 376781405, wscale: 10 });
    const out = new Uint8Array(40);
    emitTcp(r, out, 0);
    const expected = SYNACK.slice(20);
    expected[16] = expected[17] = 0; // no pseudo-header sum: checksum left for the caller
    expect(out).toEqual(expected);
  });

  it('emits a captured data segment with its payload and checksum', () => {
    const v = view(PSH, 20);
    const r = parseTcp(v);
    expect(r).toMatchObject({ flags: TcpFlags.PSH | TcpFlags.ACK, payloadLen: 5, options: { tsVal: 376781405, tsEcr: 4188887629 } });
    expect(v.payloadOffset).toBe(52);
    const out = new Uint8Array(37);
    out.set(PSH.subarray(52), 32); // payload first, then the header (and checksum) over it
    emitTcp(r, out, 0, ipv4PseudoSum(0x0a00020f, 0x0a000202, 6, 37));
    const expected = PSH.slice(20);
    expected[16] = 0x4c;
    expected[17] = 0xac;
    expect(out).toEqual(expected);
  });

  it('fills and verifies checksums with the IPv4 pseudo-header', () => {
    for (const [pkt, sum] of [[SYN, 0x2088], [SYNACK, 0x6372], [PSH, 0x4cac]] as const) {
      const p = pkt.slice();
      const v = view(p, 20);
      expect(v.verifyChecksumV4(p, 0)).toBe(false); // partial checksum as captured
      v.fillChecksumV4(p, 0);
      expect(v.checksum).toBe(sum);
      expect(v.verifyChecksumV4(p, 0)).toBe(true);
    }
  });

  it('fills and verifies checksums with the IPv6 pseudo-header', () => {
    const p = SYN6.slice();
    const v = view(p, 40);
    expect(parseTcp(v).options).toEqual({ mss: 1440, sackPermitted: true, tsVal: 3465768999, tsEcr: 0, wscale: 10 });
    v.fillChecksumV6(p, 0);
    expect(v.checksum).toBe(0x5507);
    expect(v.verifyChecksumV6(p, 0)).toBe(true);
    const ps = ipv6PseudoSum(parseIpv6Addr('fd00::15')!, parseIpv6Addr('fd00::2')!, 6, 40);
    expect(v.verifyChecksumPseudo(ps)).toBe(true);
    p[60] ^= 1;
    expect(v.verifyChecksumV6(p, 0)).toBe(false);
  });

  it('rejects data offsets below 5 or beyond the segment', () => {
    const v = new TcpView();
    const p = SYN.slice();
    p[32] = 0x40; // 16 bytes
    expect(v.reset(p, 20, 40)).toBe(false);
    p[32] = 0xb0; // 44 bytes > 40
    expect(v.reset(p, 20, 40)).toBe(false);
    p[32] = 0xa0;
    expect(v.reset(p, 20, 39)).toBe(false);
    expect(v.reset(p, 20, 19)).toBe(false);
    expect(v.reset(p, 20, 40)).toBe(true);
  });

  it('setters rewrite ports, sequence numbers, flags and window in place', () => {
    const p = SYN.slice();
    const v = view(p, 20);
    v.srcPort = 1;
    v.dstPort = 2;
    v.seqNum = 0xffffffff;
    v.ackNum = 0x80000000;
    v.flags = TcpFlags.RST | TcpFlags.ACK;
    v.window = 0;
    expect([v.srcPort, v.dstPort, v.seqNum, v.ackNum, v.flags, v.window]).toEqual([1, 2, 0xffffffff, 0x80000000, 0x14, 0]);
    expect(v.headerLen).toBe(40);
  });
});

describe('tcp › options', () => {
  const scan = (s: string): TcpOptions => {
    const o = new TcpOptions();
    const b = hex(s);
    scanTcpOptionBytes(b, 0, b.length, o);
    return o;
  };

  it('scans into a reusable object without leaking the previous segment', () => {
    const o = new TcpOptions();
    expect(scanTcpOptions(view(SYN, 20), o)).toBe(true);
    expect([o.mss, o.wscale, o.sackPermitted, o.hasTimestamp, o.tsVal]).toEqual([1460, 10, true, true, 376781405]);
    expect(scanTcpOptions(view(PSH, 20), o)).toBe(true);
    expect([o.mss, o.wscale, o.sackPermitted, o.hasTimestamp, o.tsEcr]).toEqual([-1, -1, false, true, 4188887629]);
  });

  it.each([
    ['a zero length', '0200 0000'],
    ['a length of 1', '0101 0801 000000'],
    ['a length running past the header', '020405b4 080a00000001'],
    ['a kind with no room for its length', '01010102'],
  ])('stops and reports malformed on %s', (_name, bytes) => {
    const o = scan(bytes);
    expect(o.malformed).toBe(true);
  });

  it('keeps options read before a malformed one', () => {
    const o = scan('020405b4 0300');
    expect(o.malformed).toBe(true);
    expect(o.mss).toBe(1460);
  });

  it('skips unknown options by their length', () => {
    // MPTCP (30) and a Fast Open cookie (34) around an MSS.
    const o = scan('1e040000 020405dc 220a0102030405060708');
    expect(o.malformed).toBe(false);
    expect(o.mss).toBe(1500);
  });

  it('ignores known options with the wrong length, like Linux', () => {
    // MSS of length 3, window scale of length 4, SACK-permitted of length 3, SACK of length 6.
    const o = scan('020305 0304000a 040300 0506 00000001');
    expect(o.malformed).toBe(false);
    expect(o.mss).toBe(-1);
    expect(o.wscale).toBe(-1);
    expect(o.sackPermitted).toBe(false);
    expect(o.sackCount).toBe(0);
  });

  it('keeps a good SACK block list when a later option runs past the header', () => {
    const o = scan('050a 00000001 00000002 050b');
    expect(o.sackCount).toBe(1);
    expect(o.malformed).toBe(true);
  });

  it('clamps a window-scale shift above 14 (RFC 7323 §2.3)', () => {
    expect(scan('01030300').wscale).toBe(0);
    expect(scan('0103030e').wscale).toBe(14);
    expect(scan('0103030f').wscale).toBe(14);
    expect(scan('010303ff').wscale).toBe(14);
  });

  it('reads up to four SACK blocks', () => {
    const o = scan('0101 0522 00000001 00000002 00000003 00000004 00000005 00000006 fffffff0 ffffffff');
    expect(o.sackCount).toBe(4);
    expect([...o.sackLeft]).toEqual([1, 3, 5, 0xfffffff0]);
    expect([...o.sackRight]).toEqual([2, 4, 6, 0xffffffff]);
  });

  it('stops at End of Option List', () => {
    const o = scan('00 020405b4 000000');
    expect(o.mss).toBe(-1);
    expect(o.malformed).toBe(false);
  });

  it('emits timestamps and SACK blocks in the Linux layout', () => {
    const o = new TcpOptions();
    o.hasTimestamp = true;
    o.tsVal = 0x01020304;
    o.tsEcr = 0x05060708;
    o.sackCount = 2;
    o.sackLeft.set([100, 300]);
    o.sackRight.set([200, 400]);
    const out = new Uint8Array(40);
    const n = emitTcpOptions(o, out, 0);
    expect(n).toBe(32);
    expect(tcpOptionsLen(o)).toBe(32);
    expect(out.subarray(0, n)).toEqual(hex('0101080a0102030405060708 0101051200000064000000c80000012c00000190'));
  });

  it('emits SACK-permitted without timestamps as NOP NOP before window scale', () => {
    const o = new TcpOptions();
    o.mss = 536;
    o.sackPermitted = true;
    o.wscale = 7;
    const out = new Uint8Array(12);
    expect(emitTcpOptions(o, out, 0)).toBe(12);
    expect(out).toEqual(hex('02040218 01010402 01030307'));
  });

  it('leaves out SACK blocks that do not fit in 40 bytes', () => {
    const o = new TcpOptions();
    o.hasTimestamp = true;
    o.sackCount = 4;
    expect(tcpOptionsLen(o)).toBe(12 + 4 + 3 * 8); // 3 blocks with timestamps
    o.mss = 1460;
    o.wscale = 7;
    expect(tcpOptionsLen(o)).toBe(4 + 12 + 4 + 4 + 2 * 8);
    o.hasTimestamp = false;
    expect(tcpOptionsLen(o)).toBe(4 + 4 + 4 + 3 * 8);
    const r: TcpRepr = { srcPort: 1, dstPort: 2, seqNum: 0, ackNum: 0, flags: TcpFlags.ACK, window: 0, payloadLen: 0, options: { sackBlocks: [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]] } };
    expect(tcpHeaderLen(r)).toBe(20 + 4 + 32);
  });

  it('never throws on arbitrary option bytes and always stays in the header', () => {
    const o = new TcpOptions();
    const v = new TcpView();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (opts) => {
        const pad = (4 - (opts.length & 3)) & 3;
        const b = new Uint8Array(20 + opts.length + pad).fill(0x01, 20); // NOP padding
        b.set(SYN.subarray(20, 32));
        b[12] = ((20 + opts.length + pad) >>> 2) << 4;
        b.set(opts, 20);
        expect(v.reset(b, 0, b.length)).toBe(true);
        const ok = scanTcpOptions(v, o);
        expect(ok).toBe(!o.malformed);
        expect(o.sackCount).toBeLessThanOrEqual(4);
        expect(o.wscale).toBeLessThanOrEqual(14);
        parseTcp(v);
      }),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (b) => {
        if (v.reset(b, 0, b.length)) {
          parseTcp(v);
          v.verifyChecksumPseudo(0);
          expect(v.payloadOffset + v.payloadLen).toBe(b.length);
        }
      }),
    );
  });

  it('parse(emit(x)) round-trips', () => {
    const u32 = fc.nat(0xffffffff);
    const optsArb: fc.Arbitrary<TcpOptionsRepr> = fc.record(
      {
        mss: fc.nat(0xffff),
        wscale: fc.nat(14),
        sackPermitted: fc.constant(true),
        sackBlocks: fc.array(fc.tuple(u32, u32), { minLength: 1, maxLength: 4 }),
        tsVal: u32,
      },
      { requiredKeys: [] },
    ).chain((o) => (o.tsVal === undefined ? fc.constant(o) : u32.map((tsEcr) => ({ ...o, tsEcr }))));
    const repr = fc.record({
      srcPort: fc.nat(0xffff),
      dstPort: fc.nat(0xffff),
      seqNum: u32,
      ackNum: u32,
      flags: fc.nat(255),
      window: fc.nat(0xffff),
      urgent: fc.nat(0xffff),
      options: optsArb,
      payloadLen: fc.nat(20),
    });
    fc.assert(
      fc.property(repr, u32, u32, (r, src, dst) => {
        const buf = new Uint8Array(60 + r.payloadLen);
        const hl = emitTcp(r, buf, 0);
        expect(hl).toBe(tcpHeaderLen(r));
        expect(hl - 20).toBeLessThanOrEqual(TCP_MAX_OPTIONS_LEN);
        const seg = hl + r.payloadLen;
        const ps = ipv4PseudoSum(src, dst, 6, seg);
        emitTcp(r, buf, 0, ps);
        const v = new TcpView();
        expect(v.reset(buf, 0, seg)).toBe(true);
        expect(v.verifyChecksumPseudo(ps)).toBe(true);
        // SACK blocks that did not fit are dropped from the end; everything else survives.
        const o = r.options;
        const fixed = (o.mss !== undefined ? 4 : 0) + (o.tsVal !== undefined ? 12 : o.sackPermitted ? 4 : 0) + (o.wscale !== undefined ? 4 : 0);
        const room = Math.max(0, Math.floor((40 - fixed - 4) / 8));
        const expected: TcpRepr = { ...r, options: { ...o } };
        if (o.sackBlocks && room > 0) expected.options!.sackBlocks = o.sackBlocks.slice(0, room);
        else delete expected.options!.sackBlocks;
        expect(parseTcp(v)).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });
});
