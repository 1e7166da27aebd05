import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  VIRTIO_NET_HDR_LEN,
  VIRTIO_NET_HDR_MRG_LEN,
  VirtioNetFlags,
  VirtioNetGso,
  VirtioNetView,
  emitVirtioNet,
  emitVirtioNetNone,
  parseVirtioNet,
  virtioNetCompleteChecksum,
  type VirtioNetRepr,
} from './virtio-net.ts';
import { TcpView } from './tcp.ts';
import { UdpView } from './udp.ts';

const hex = (s: string): Uint8Array => Uint8Array.from((s.replace(/\s+/g, '').match(/../g) ?? []).map((x) => parseInt(x, 16)));

// A TSO super-frame header as the Linux TAP driver writes it (little-endian): NEEDS_CSUM,
// GSO TCPv4, hdr_len 66, gso_size 1448, csum_start 34 (Ethernet 14 + IPv4 20), csum_offset 16.
const TSO_HDR = hex('01 01 4200 a805 2200 1000');

// Frames captured on a Linux veth with transmit checksum offload: the L4 checksum field holds the
// CHECKSUM_PARTIAL pseudo-header sum, exactly what a guest hands over with NEEDS_CSUM set.
// Complete values computed independently (Python): TCP SYN 0x2088, UDP 0x32a4, TCP/IPv6 SYN 0x5507.
const SYN_FRAME = hex(
  '26e628a2bd79da46349a11130800 4500003c9c554000400686560a00020f0a000202 c3561f90b5f72ac300000000a002faf0183f0000020405b40402080a16753a5d000000000103030a',
);
const UDP_FRAME = hex('26e628a2bd79da46349a11130800 45000020d462400040114e5a0a00020f0a000202 c16714e9000c182e70696e67');
const SYN6_FRAME = hex(
  '26e628a2bd79da46349a111386dd 600bc51900280640fd000000000000000000000000000015fd000000000000000000000000000002' +
    'b9ce1f915e16859f00000000a002fd20fa460000020405a00402080ace937027000000000103030a',
);

describe('virtio-net', () => {
  it('reads a 10-byte TSO header little-endian', () => {
    const v = new VirtioNetView();
    expect(v.reset(TSO_HDR, 0, TSO_HDR.length)).toBe(true);
    expect(parseVirtioNet(v)).toEqual({ flags: VirtioNetFlags.NEEDS_CSUM, gsoType: VirtioNetGso.TCPV4, hdrLen: 66, gsoSize: 1448, csumStart: 34, csumOffset: 16 });
    expect(v.numBuffers).toBe(1);
    expect(v.payloadOffset).toBe(10);
    expect(v.payloadLen).toBe(0);
  });

  it('writes the same 10 bytes back', () => {
    const r: VirtioNetRepr = { flags: 1, gsoType: 1, hdrLen: 66, gsoSize: 1448, csumStart: 34, csumOffset: 16 };
    const out = new Uint8Array(10);
    expect(emitVirtioNet(r, out, 0)).toBe(10);
    expect(out).toEqual(TSO_HDR);
  });

  it('handles the 12-byte mergeable-buffer form with num_buffers', () => {
    const b = hex('02 00 0000 0000 0000 0000 0300 ffff');
    const v = new VirtioNetView();
    expect(v.reset(b, 0, b.length, VIRTIO_NET_HDR_MRG_LEN)).toBe(true);
    expect(v.flags).toBe(VirtioNetFlags.DATA_VALID);
    expect(v.numBuffers).toBe(3);
    expect(v.payloadOffset).toBe(12);
    expect(v.payloadLen).toBe(2);
    const r = parseVirtioNet(v);
    expect(r.numBuffers).toBe(3);
    const out = new Uint8Array(12);
    expect(emitVirtioNet(r, out, 0, VIRTIO_NET_HDR_MRG_LEN)).toBe(12);
    expect(out).toEqual(b.subarray(0, 12));
  });

  it('writes an all-zero header for plain frames (num_buffers 1 in the 12-byte form)', () => {
    const out = new Uint8Array(12).fill(0xaa);
    expect(emitVirtioNetNone(out, 0)).toBe(10);
    expect([...out.subarray(0, 10)]).toEqual(new Array(10).fill(0));
    expect(emitVirtioNetNone(out, 0, VIRTIO_NET_HDR_MRG_LEN)).toBe(12);
    expect([...out.subarray(10)]).toEqual([1, 0]);
  });

  it('rejects short buffers and unknown header sizes', () => {
    const v = new VirtioNetView();
    expect(v.reset(TSO_HDR, 0, 9)).toBe(false);
    expect(v.reset(TSO_HDR, 0, 10, VIRTIO_NET_HDR_MRG_LEN)).toBe(false);
    expect(v.reset(TSO_HDR, 0, 10, 20)).toBe(false);
  });

  it('completes CHECKSUM_PARTIAL frames (TCP and UDP over IPv4, TCP over IPv6)', () => {
    const cases = [
      [SYN_FRAME, 34, 16, 0x2088],
      [UDP_FRAME, 34, 6, 0x32a4],
      [SYN6_FRAME, 54, 16, 0x5507],
    ] as const;
    for (const [frame, start, off, want] of cases) {
      const f = new Uint8Array(frame.length + 10);
      emitVirtioNet({ flags: VirtioNetFlags.NEEDS_CSUM, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: start, csumOffset: off }, f, 0);
      f.set(frame, 10);
      const v = new VirtioNetView();
      v.reset(f, 0, f.length);
      expect(virtioNetCompleteChecksum(f, v.payloadOffset, v.payloadLen, v.csumStart, v.csumOffset)).toBe(true);
      expect((f[10 + start + off]! << 8) | f[10 + start + off + 1]!).toBe(want);
    }
    const t = SYN_FRAME.slice();
    virtioNetCompleteChecksum(t, 0, t.length, 34, 16);
    const tcp = new TcpView();
    tcp.reset(t, 34, 40);
    expect(tcp.verifyChecksumV4(t, 14)).toBe(true);
    const u = UDP_FRAME.slice();
    virtioNetCompleteChecksum(u, 0, u.length, 34, 6);
    const udp = new UdpView();
    udp.reset(u, 34, 12);
    expect(udp.verifyChecksumV4(u, 14)).toBe(true);
  });

  it('refuses checksum offsets outside the frame and leaves it untouched', () => {
    const f = SYN_FRAME.slice();
    expect(virtioNetCompleteChecksum(f, 0, f.length, 72, 1)).toBe(false);
    expect(virtioNetCompleteChecksum(f, 0, f.length, 34, 39)).toBe(false);
    expect(virtioNetCompleteChecksum(f, 10, f.length, 0, 0)).toBe(false);
    expect(f).toEqual(SYN_FRAME);
  });

  it('never throws on arbitrary bytes', () => {
    const v = new VirtioNetView();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.constantFrom(10, 12, 0, 20), (b, size) => {
        if (v.reset(b, 0, b.length, size)) {
          parseVirtioNet(v);
          virtioNetCompleteChecksum(b, v.payloadOffset, v.payloadLen, v.csumStart, v.csumOffset);
        }
      }),
    );
  });

  it('parse(emit(x)) round-trips in both sizes', () => {
    const u16 = fc.nat(0xffff);
    const repr = fc.record({ flags: fc.nat(255), gsoType: fc.nat(255), hdrLen: u16, gsoSize: u16, csumStart: u16, csumOffset: u16 });
    fc.assert(
      fc.property(repr, fc.boolean(), u16, (r0, mrg, nb) => {
        const size = mrg ? VIRTIO_NET_HDR_MRG_LEN : VIRTIO_NET_HDR_LEN;
        const r: VirtioNetRepr = mrg ? { ...r0, numBuffers: nb } : r0;
        const buf = new Uint8Array(14);
        expect(emitVirtioNet(r, buf, 1, size)).toBe(size);
        const v = new VirtioNetView();
        expect(v.reset(buf, 1, size, size)).toBe(true);
        expect(parseVirtioNet(v)).toEqual(r);
      }),
    );
  });
});
