import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checksum, foldSum, sum16 } from './checksum.ts';
import { EtherType, emitEthernet } from './ethernet.ts';
import { IpProto, Ipv4View, emitIpv4, ipv4PseudoSum } from './ipv4.ts';
import { Ipv6View, emitIpv6, ipv6PseudoSum } from './ipv6.ts';
import { TcpFlags, TcpView, emitTcp } from './tcp.ts';
import { UdpView, emitUdp } from './udp.ts';
import { VirtioNetFlags, VirtioNetGso, emitVirtioNet } from './virtio-net.ts';
import { GsoStatus, finalizeVirtioNet, virtioNetNeedsFinalize } from './gso.ts';

const MAC_A = Uint8Array.of(2, 0, 0, 0, 0, 1);
const MAC_B = Uint8Array.of(2, 0, 0, 0, 0, 2);
const V4_SRC = 0x0a00020f;
const V4_DST = 0x0a000202;
const V6_SRC = Uint8Array.of(0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0f);
const V6_DST = Uint8Array.of(0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02);

interface Super {
  bytes: Uint8Array;
  hdrSize: number;
  payload: Uint8Array;
  l4: number;
}

/** Build a vnet header + Ethernet + IP + TCP/UDP super-frame the way Linux hands one to a device:
 * the L4 checksum field holds the pseudo-header sum (NEEDS_CSUM), lengths are the total. */
function superFrame(opts: {
  v6?: boolean;
  udp?: boolean;
  payload: Uint8Array;
  gsoSize: number;
  flags?: number;
  hdrSize?: 10 | 12;
  vlan?: boolean;
  ecn?: boolean;
  tsOption?: boolean;
  gsoType?: number;
}): Super {
  const hdrSize = opts.hdrSize ?? 12;
  const buf = new Uint8Array(hdrSize + 18 + 40 + 60 + opts.payload.length);
  let o = hdrSize;
  o += emitEthernet({ dst: MAC_B, src: MAC_A, ethertype: opts.v6 ? EtherType.IPv6 : EtherType.IPv4, vlanId: opts.vlan ? 7 : -1 }, buf, o);
  const l3 = o;
  const proto = opts.udp ? IpProto.UDP : IpProto.TCP;
  const l4hdr = opts.udp ? 8 : opts.tsOption ? 32 : 20;
  const l4len = l4hdr + opts.payload.length;
  if (opts.v6) o += emitIpv6({ src: V6_SRC, dst: V6_DST, nextHeader: proto, payloadLen: l4len, hopLimit: 64 }, buf, o);
  else o += emitIpv4({ src: V4_SRC, dst: V4_DST, protocol: proto, payloadLen: l4len, ttl: 64, ident: 0xfffe, dontFragment: true }, buf, o);
  const l4 = o;
  buf.set(opts.payload, l4 + l4hdr);
  if (opts.udp) emitUdp({ srcPort: 5000, dstPort: 53, payloadLen: opts.payload.length }, buf, l4);
  else
    emitTcp(
      {
        srcPort: 40000,
        dstPort: 80,
        seqNum: 0xfffff000,
        ackNum: 1234,
        flags: opts.flags ?? TcpFlags.ACK | TcpFlags.PSH | TcpFlags.FIN | TcpFlags.CWR,
        window: 512,
        options: opts.tsOption ? { tsVal: 1, tsEcr: 2 } : {},
        payloadLen: opts.payload.length,
      },
      buf,
      l4,
    );
  const len = l4 + l4hdr + opts.payload.length;
  // The pseudo-header sum (with length, as for CHECKSUM_PARTIAL) in the checksum field.
  const ps = opts.v6 ? ipv6PseudoSum(V6_SRC, V6_DST, proto, l4len) : ipv4PseudoSum(V4_SRC, V4_DST, proto, l4len);
  const field = l4 + (opts.udp ? 6 : 16);
  const f = foldSum(ps);
  buf[field] = f >>> 8;
  buf[field + 1] = f;
  const gsoType = opts.gsoType ?? ((opts.udp ? VirtioNetGso.UDP_L4 : opts.v6 ? VirtioNetGso.TCPV6 : VirtioNetGso.TCPV4) | (opts.ecn ? VirtioNetGso.ECN : 0));
  emitVirtioNet(
    { flags: VirtioNetFlags.NEEDS_CSUM, gsoType, hdrLen: l4 + l4hdr - hdrSize, gsoSize: opts.gsoSize, csumStart: l4 - hdrSize, csumOffset: opts.udp ? 6 : 16, numBuffers: 1 },
    buf,
    0,
    hdrSize,
  );
  return { bytes: buf.subarray(0, len), hdrSize, payload: opts.payload, l4: l4 - hdrSize };
}

function collect(s: Super, out = new Uint8Array(70000), outOff = 12): { status: number; frames: Uint8Array[] } {
  const frames: Uint8Array[] = [];
  const status = finalizeVirtioNet(s.bytes, 0, s.bytes.length, s.hdrSize, out, outOff, (b, off, len) => {
    expect(b).toBe(out);
    expect(off).toBe(outOff);
    frames.push(b.slice(off, off + len));
  });
  return { status, frames };
}

/** Checks one output segment like gVisor's checkers: lengths and every checksum. */
function checkTcpSegment(f: Uint8Array, v6: boolean, l3: number): { seq: number; flags: number; payload: Uint8Array; ident: number } {
  let l4: number;
  let ident = -1;
  let pseudo: number;
  if (v6) {
    const ip = new Ipv6View();
    expect(ip.reset(f, l3, f.length - l3)).toBe(true);
    expect(ip.payloadLen).toBe(f.length - l3 - 40);
    l4 = l3 + 40;
    pseudo = ipv6PseudoSum(V6_SRC, V6_DST, IpProto.TCP, f.length - l4);
  } else {
    const ip = new Ipv4View();
    expect(ip.reset(f, l3, f.length - l3)).toBe(true);
    expect(ip.totalLen).toBe(f.length - l3);
    expect(ip.verifyChecksum()).toBe(true);
    ident = ip.ident;
    l4 = l3 + ip.headerLen;
    pseudo = ipv4PseudoSum(V4_SRC, V4_DST, IpProto.TCP, f.length - l4);
  }
  const tcp = new TcpView();
  expect(tcp.reset(f, l4, f.length - l4)).toBe(true);
  expect(tcp.verifyChecksumPseudo(pseudo)).toBe(true);
  return { seq: tcp.seqNum, flags: tcp.flags, payload: f.slice(l4 + tcp.headerLen), ident };
}

function pattern(n: number): Uint8Array {
  const p = new Uint8Array(n);
  for (let i = 0; i < n; i++) p[i] = (i * 7 + (i >> 8)) & 0xff;
  return p;
}

describe('finalizeVirtioNet', () => {
  it('cuts a TCPv4 super-frame into gso_size segments with fixed lengths, ids, seq and checksums', () => {
    const payload = pattern(4000);
    const { status, frames } = collect(superFrame({ payload, gsoSize: 1448 }));
    expect(status).toBe(GsoStatus.OK);
    expect(frames.map((f) => f.length)).toEqual([14 + 20 + 20 + 1448, 14 + 20 + 20 + 1448, 14 + 20 + 20 + 1104]);
    const segs = frames.map((f) => checkTcpSegment(f, false, 14));
    // The sequence number wraps past 2^32.
    expect(segs.map((s) => s.seq)).toEqual([0xfffff000, (0xfffff000 + 1448) >>> 0, (0xfffff000 + 2896) >>> 0]);
    // The IP id advances per segment and wraps at 16 bits.
    expect(segs.map((s) => s.ident)).toEqual([0xfffe, 0xffff, 0]);
    // CWR only on the first, FIN and PSH only on the last.
    expect(segs.map((s) => s.flags)).toEqual([
      TcpFlags.ACK | TcpFlags.CWR,
      TcpFlags.ACK,
      TcpFlags.ACK | TcpFlags.PSH | TcpFlags.FIN,
    ]);
    expect(Buffer.concat(segs.map((s) => s.payload))).toEqual(Buffer.from(payload));
    // Headers other than the fixed fields are copied: MACs, TTL, DF, ports, ack, window.
    for (const f of frames) {
      expect(f.subarray(0, 12)).toEqual(Uint8Array.of(...MAC_B, ...MAC_A));
      expect(f[14 + 8]).toBe(64);
      expect(f[14 + 6]).toBe(0x40);
      expect((f[34]! << 8) | f[35]!).toBe(40000);
    }
  });

  it('pins the bytes of the second TCPv4 segment', () => {
    const { frames } = collect(superFrame({ payload: pattern(20), gsoSize: 8, hdrSize: 10 }));
    expect(frames.length).toBe(3);
    const f = frames[1]!;
    // IPv4: total length 48, id 0xffff, DF, TTL 64, TCP, header checksum, addresses.
    expect(Buffer.from(f.subarray(14, 34)).toString('hex')).toBe(
      '45000030' + 'ffff4000' + '4006' + '22b8' + '0a00020f' + '0a000202',
    );
    // TCP: ports, seq 0xfffff008, ack 1234, data offset 5, flags ACK only, window 512.
    expect(Buffer.from(f.subarray(34, 48)).toString('hex')).toBe('9c400050' + 'fffff008' + '000004d2' + '5010');
    expect(f.subarray(54)).toEqual(pattern(20).subarray(8, 16));
  });

  it('cuts a TCPv6 super-frame with the ECN bit and a timestamp option', () => {
    const payload = pattern(3000);
    const { status, frames } = collect(superFrame({ v6: true, ecn: true, tsOption: true, payload, gsoSize: 1000 }));
    expect(status).toBe(GsoStatus.OK);
    expect(frames.length).toBe(3);
    const segs = frames.map((f) => checkTcpSegment(f, true, 14));
    for (const f of frames) expect(f.length).toBe(14 + 40 + 32 + 1000);
    expect(segs.map((s) => s.seq)).toEqual([0xfffff000, 0xfffff3e8, 0xfffff7d0]);
    expect(Buffer.concat(segs.map((s) => s.payload))).toEqual(Buffer.from(payload));
    // The timestamp option travels in every segment.
    for (const f of frames) expect(f.subarray(14 + 40 + 20, 14 + 40 + 32)).toEqual(frames[0]!.subarray(14 + 40 + 20, 14 + 40 + 32));
  });

  it('keeps a VLAN tag on every segment', () => {
    const { status, frames } = collect(superFrame({ vlan: true, payload: pattern(3000), gsoSize: 1448 }));
    expect(status).toBe(GsoStatus.OK);
    expect(frames.length).toBe(3);
    for (const f of frames) {
      expect((f[12]! << 8) | f[13]!).toBe(0x8100);
      checkTcpSegment(f, false, 18);
    }
  });

  it('emits a super-frame whose payload fits in gso_size as one segment', () => {
    const { status, frames } = collect(superFrame({ payload: pattern(100), gsoSize: 1448 }));
    expect(status).toBe(GsoStatus.OK);
    expect(frames.length).toBe(1);
    const s = checkTcpSegment(frames[0]!, false, 14);
    expect(s.flags).toBe(TcpFlags.ACK | TcpFlags.PSH | TcpFlags.FIN | TcpFlags.CWR);
  });

  it('cuts a USO (UDP_L4) super-frame into datagrams with their own length and checksum', () => {
    const payload = pattern(2500);
    const { status, frames } = collect(superFrame({ udp: true, payload, gsoSize: 1000 }));
    expect(status).toBe(GsoStatus.OK);
    expect(frames.map((f) => f.length)).toEqual([1042, 1042, 542]);
    const got: Uint8Array[] = [];
    for (const f of frames) {
      const ip = new Ipv4View();
      expect(ip.reset(f, 14, f.length - 14)).toBe(true);
      expect(ip.verifyChecksum()).toBe(true);
      const u = new UdpView();
      expect(u.reset(f, 34, f.length - 34)).toBe(true);
      expect(u.length).toBe(f.length - 34);
      expect(checksum(f, 34, f.length - 34, ipv4PseudoSum(V4_SRC, V4_DST, IpProto.UDP, f.length - 34))).toBe(0);
      got.push(f.slice(42));
    }
    expect(Buffer.concat(got)).toEqual(Buffer.from(payload));
  });

  it('completes a NEEDS_CSUM frame without GSO (pseudo-header sum already in the field)', () => {
    const s = superFrame({ payload: pattern(301), gsoSize: 0, gsoType: VirtioNetGso.NONE });
    const before = s.bytes.slice();
    const { status, frames } = collect(s);
    expect(status).toBe(GsoStatus.OK);
    expect(frames.length).toBe(1);
    expect(frames[0]!.length).toBe(s.bytes.length - 12);
    checkTcpSegment(frames[0]!, false, 14);
    // The input is left untouched.
    expect(s.bytes).toEqual(before);
  });

  it('passes a frame without offloads through unchanged', () => {
    const s = superFrame({ payload: pattern(50), gsoSize: 0, gsoType: VirtioNetGso.NONE });
    s.bytes[0] = 0;
    expect(virtioNetNeedsFinalize(s.bytes, 0)).toBe(false);
    const { status, frames } = collect(s);
    expect(status).toBe(GsoStatus.OK);
    expect(frames[0]).toEqual(s.bytes.slice(12));
  });

  it('tells which headers need software work', () => {
    const h = new Uint8Array(12);
    expect(virtioNetNeedsFinalize(h, 0)).toBe(false);
    h[0] = VirtioNetFlags.DATA_VALID;
    expect(virtioNetNeedsFinalize(h, 0)).toBe(false);
    h[0] = VirtioNetFlags.NEEDS_CSUM;
    expect(virtioNetNeedsFinalize(h, 0)).toBe(true);
    h[0] = 0;
    h[1] = VirtioNetGso.TCPV4;
    expect(virtioNetNeedsFinalize(h, 0)).toBe(true);
  });

  describe('rejects malformed input without emitting anything', () => {
    const cases: [string, (s: Super) => void, number][] = [
      ['a csum_start past the frame', (s) => (s.bytes[7] = 0xff), GsoStatus.BAD_CSUM_OFFSETS],
      ['a csum_start inside the Ethernet header', (s) => (s.bytes[6] = 4), GsoStatus.BAD_CSUM_OFFSETS],
      ['an hdr_len past the frame', (s) => (s.bytes[3] = 0xff), GsoStatus.BAD_HDR_LEN],
      ['gso_size 0', (s) => ((s.bytes[4] = 0), (s.bytes[5] = 0)), GsoStatus.BAD_GSO_SIZE],
      ['UDP under a TCP gso_type', (s) => (s.bytes[12 + 14 + 9] = IpProto.UDP), GsoStatus.BAD_L4],
      ['IPv6 under TCPV4', (s) => (s.bytes[1] = VirtioNetGso.TCPV6), GsoStatus.BAD_L3],
      ['an IPv4 fragment', (s) => (s.bytes[12 + 14 + 6] |= 0x20), GsoStatus.BAD_L3],
      ['ARP under TCPV4', (s) => ((s.bytes[12 + 12] = 0x08), (s.bytes[12 + 13] = 0x06)), GsoStatus.BAD_L3],
      ['a TCP data offset below 5', (s) => (s.bytes[12 + 34 + 12] = 0x40), GsoStatus.BAD_L4],
      ['UFO', (s) => (s.bytes[1] = VirtioNetGso.UDP), GsoStatus.UNSUPPORTED],
      ['an unknown gso_type', (s) => (s.bytes[1] = 9), GsoStatus.UNSUPPORTED],
    ];
    for (const [name, mangle, want] of cases) {
      it(name, () => {
        const s = superFrame({ payload: pattern(3000), gsoSize: 1448 });
        mangle(s);
        const { status, frames } = collect(s);
        expect(status).toBe(want);
        expect(frames).toEqual([]);
      });
    }

    it('an IPv6 extension header before TCP', () => {
      const s = superFrame({ v6: true, payload: pattern(3000), gsoSize: 1448 });
      s.bytes[12 + 14 + 6] = 0; // hop-by-hop
      expect(collect(s).status).toBe(GsoStatus.UNSUPPORTED);
    });

    it('a frame shorter than its header, and a bad header size', () => {
      const s = superFrame({ payload: pattern(10), gsoSize: 4 });
      const emit = (): void => {
        throw new Error('must not emit');
      };
      expect(finalizeVirtioNet(s.bytes, 0, 20, 12, new Uint8Array(100), 0, emit)).toBe(GsoStatus.TRUNCATED);
      expect(finalizeVirtioNet(s.bytes, 0, s.bytes.length, 11, new Uint8Array(100), 0, emit)).toBe(GsoStatus.TRUNCATED);
      expect(finalizeVirtioNet(s.bytes, 4, s.bytes.length, 12, new Uint8Array(100), 0, emit)).toBe(GsoStatus.TRUNCATED);
    });

    it('a segment that does not fit in the output buffer', () => {
      const s = superFrame({ payload: pattern(3000), gsoSize: 1448 });
      expect(collect(s, new Uint8Array(1000), 12).status).toBe(GsoStatus.NO_ROOM);
    });
  });

  it('property: segment payloads concatenate to the original, each <= gso_size, checksums verify', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 20000 }),
        fc.integer({ min: 64, max: 9000 }),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 0, max: 0xffffffff }),
        (n, gsoSize, v6, udp, seed) => {
          const payload = pattern(n).map((b) => (b ^ seed) & 0xff);
          const s = superFrame({ v6, udp, payload, gsoSize });
          const { status, frames } = collect(s);
          expect(status).toBe(GsoStatus.OK);
          expect(frames.length).toBe(Math.max(1, Math.ceil(n / gsoSize)));
          const l4 = v6 ? 54 : 34;
          const hl = udp ? 8 : 20;
          const got: Uint8Array[] = [];
          for (const f of frames) {
            const p = f.length - l4 - hl;
            expect(p).toBeLessThanOrEqual(gsoSize);
            const proto = udp ? IpProto.UDP : IpProto.TCP;
            const ps = v6 ? ipv6PseudoSum(V6_SRC, V6_DST, proto, f.length - l4) : ipv4PseudoSum(V4_SRC, V4_DST, proto, f.length - l4);
            expect(foldSum(sum16(f, l4, f.length - l4, ps))).toBe(0xffff);
            if (!v6) expect(checksum(f, 14, 20)).toBe(0);
            got.push(f.slice(l4 + hl));
          }
          expect(Buffer.concat(got)).toEqual(Buffer.from(payload));
        },
      ),
      { numRuns: 100 },
    );
  });
});
