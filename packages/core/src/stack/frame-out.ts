/**
 * Frame output: every frame the stack sends to the guest is built here, in one preallocated
 * buffer, and handed to the backend's `deliver` as a view that is valid only during delivery.
 *
 * Theory of operation
 * - One buffer of 64 KiB + headers per stack; frames are built front to back (virtio-net header if
 *   negotiated, Ethernet, IP, L4, payload copied in once) and delivered synchronously, so the
 *   buffer is free again when `deliver` returns. No allocation per frame besides the view.
 * - TCP with GSO: when the hypervisor granted TSO for the family, a TCP segment larger than the
 *   MSS is sent as one super-frame with `gso_type=TCPV4/6`, `gso_size=mss`, and a partial checksum
 *   (NEEDS_CSUM, pseudo-header sum in the field, as Linux's CHECKSUM_PARTIAL): the guest kernel
 *   neither segments nor checksums it. With csum offload only, checksums are left partial too.
 *   Without a vnet header every frame is fully checksummed.
 * - UDP/IPv4 datagrams larger than the MTU are fragmented (RFC 791), as libslirp does, so a host
 *   service's large reply reaches the guest; IPv6 UDP larger than the MTU is dropped and counted
 *   (a router does not fragment IPv6; the guest would need PMTU discovery towards a virtual hop).
 * - Link-layer destination: the neighbour tables (ARP / NDP) give the guest's MAC for an address;
 *   when unknown, the most recently seen guest MAC is used (one NIC, one guest), else the frame is
 *   dropped as `no-neighbor`.
 */
import {
  EtherType,
  IpProto,
  VirtioNetFlags,
  VirtioNetGso,
  checksum,
  emitTcpOptions,
  ipv4PseudoSum,
  pseudoSumV6,
  TcpOptions,
  writeU16,
  writeU32,
  foldSum,
  sum16,
} from '@guestnet/wire';
import type { TcpPayloadSource, TcpSegmentOut } from './tcp-segment.ts';

export const MAX_FRAME = 12 + 14 + 60 + 60 + 65535;

export interface OutputHost {
  /** Hand a frame to the guest. The view is valid only during the call. */
  deliver(frame: Uint8Array): void;
  drop(reason: string): void;
  gatewayMac: Uint8Array;
  /** Guest MAC for an IPv4 address (or the last seen guest MAC), null if none known. */
  macFor4(ip: number): Uint8Array | null;
  macFor6(ip: Uint8Array, off: number): Uint8Array | null;
}

export interface OutputCaps {
  vnetHdrLen: number;
  csum: boolean;
  tso4: boolean;
  tso6: boolean;
  mtu: number;
}

export class FrameOut {
  readonly buf = new Uint8Array(MAX_FRAME);
  private readonly host: OutputHost;
  private caps: OutputCaps = { vnetHdrLen: 0, csum: false, tso4: false, tso6: false, mtu: 1500 };
  private ipId = 1;
  private readonly opts = new TcpOptions();

  constructor(host: OutputHost) {
    this.host = host;
  }

  setCaps(c: OutputCaps): void {
    this.caps = { ...c };
  }

  get mtu(): number {
    return this.caps.mtu;
  }
  get tso4(): boolean {
    return this.caps.vnetHdrLen > 0 && this.caps.tso4;
  }
  get tso6(): boolean {
    return this.caps.vnetHdrLen > 0 && this.caps.tso6;
  }

  /**
   * Write the virtio-net header (zeroed) and the Ethernet header. Returns the L3 offset, or -1
   * (counted) when the destination MAC is unknown.
   */
  private l2(dstMac: Uint8Array | null, etherType: number): number {
    if (!dstMac) {
      this.host.drop('no-neighbor');
      return -1;
    }
    const b = this.buf;
    const v = this.caps.vnetHdrLen;
    if (v > 0) {
      b.fill(0, 0, v);
      if (v === 12) b[10] = 1; // num_buffers
    }
    b.set(dstMac, v);
    b.set(this.host.gatewayMac, v + 6);
    b[v + 12] = etherType >>> 8;
    b[v + 13] = etherType & 0xff;
    return v + 14;
  }

  private ipv4Header(off: number, src: number, dst: number, proto: number, payloadLen: number, id: number, flagsFrag: number): void {
    const b = this.buf;
    b[off] = 0x45;
    b[off + 1] = 0;
    writeU16(b, off + 2, 20 + payloadLen);
    writeU16(b, off + 4, id);
    writeU16(b, off + 6, flagsFrag);
    b[off + 8] = 64;
    b[off + 9] = proto;
    b[off + 10] = 0;
    b[off + 11] = 0;
    writeU32(b, off + 12, src);
    writeU32(b, off + 16, dst);
    writeU16(b, off + 10, checksum(b, off, 20));
  }

  private ipv6Header(off: number, src: Uint8Array, dst: Uint8Array, next: number, payloadLen: number, hopLimit = 64): void {
    const b = this.buf;
    b[off] = 0x60;
    b[off + 1] = 0;
    b[off + 2] = 0;
    b[off + 3] = 0;
    writeU16(b, off + 4, payloadLen);
    b[off + 6] = next;
    b[off + 7] = hopLimit;
    b.set(src, off + 8);
    b.set(dst, off + 24);
  }

  private nextId(): number {
    const id = this.ipId;
    this.ipId = (this.ipId + 1) & 0xffff || 1;
    return id;
  }

  /** Write TCP header + options at `off`; returns header length. */
  private tcpHeader(off: number, srcPort: number, dstPort: number, h: TcpSegmentOut): number {
    const b = this.buf;
    const o = this.opts;
    o.clear();
    if (h.mss > 0) o.mss = h.mss;
    if (h.wscale >= 0) o.wscale = h.wscale;
    o.sackPermitted = h.sackPermitted;
    if (h.hasTimestamp) {
      o.hasTimestamp = true;
      o.tsVal = h.tsVal;
      o.tsEcr = h.tsEcr;
    }
    for (let i = 0; i < h.sackCount && i < 4; i++) {
      o.sackLeft[i] = h.sackBlocks[2 * i]!;
      o.sackRight[i] = h.sackBlocks[2 * i + 1]!;
    }
    o.sackCount = Math.min(h.sackCount, 4);
    const ol = emitTcpOptions(o, b, off + 20);
    const hl = 20 + ol;
    writeU16(b, off, srcPort);
    writeU16(b, off + 2, dstPort);
    writeU32(b, off + 4, h.seq);
    writeU32(b, off + 8, h.ack);
    b[off + 12] = (hl >>> 2) << 4;
    b[off + 13] = h.flags;
    writeU16(b, off + 14, h.window);
    b[off + 16] = 0;
    b[off + 17] = 0;
    b[off + 18] = 0;
    b[off + 19] = 0;
    return hl;
  }

  /**
   * Finish the L4 checksum at `l4` over `l4len` bytes with pseudo-header sum `ps`: in full, or
   * partial (NEEDS_CSUM) when offloaded. `csumField` is relative to `l4`.
   */
  private l4Checksum(l4: number, l4len: number, ps: number, csumField: number, gsoType: number, gsoSize: number, hdrLen: number, isUdp: boolean): void {
    const b = this.buf;
    const v = this.caps.vnetHdrLen;
    if (v > 0 && (this.caps.csum || gsoType !== VirtioNetGso.NONE)) {
      const partial = foldSum(ps);
      b[l4 + csumField] = partial >>> 8;
      b[l4 + csumField + 1] = partial & 0xff;
      b[0] = VirtioNetFlags.NEEDS_CSUM;
      b[1] = gsoType;
      writeLe16(b, 2, hdrLen);
      writeLe16(b, 4, gsoSize);
      writeLe16(b, 6, l4 - v);
      writeLe16(b, 8, csumField);
      return;
    }
    let c = checksum(b, l4, l4len, ps);
    if (isUdp && c === 0) c = 0xffff;
    b[l4 + csumField] = c >>> 8;
    b[l4 + csumField + 1] = c & 0xff;
  }

  private deliver(len: number): void {
    this.host.deliver(this.buf.subarray(0, len));
  }

  // ---- TCP -----------------------------------------------------------------------------------

  sendTcp4(src: number, srcPort: number, dst: number, dstPort: number, h: TcpSegmentOut, payloadLen: number, data: TcpPayloadSource, mss: number): void {
    const l3 = this.l2(this.host.macFor4(dst), EtherType.IPv4);
    if (l3 < 0) return;
    const l4 = l3 + 20;
    const hl = this.tcpHeader(l4, srcPort, dstPort, h);
    if (payloadLen > 0) data.copySendData(h.payloadSeqOffset, this.buf, l4 + hl, payloadLen);
    const l4len = hl + payloadLen;
    const gso = payloadLen > mss && this.tso4;
    if (payloadLen > mss && !gso) {
      this.host.drop('tcp-oversize');
      return;
    }
    this.ipv4Header(l3, src, dst, IpProto.TCP, l4len, this.nextId(), 0x4000);
    this.l4Checksum(l4, l4len, ipv4PseudoSum(src, dst, IpProto.TCP, l4len), 16, gso ? VirtioNetGso.TCPV4 : VirtioNetGso.NONE, gso ? mss : 0, l4 + hl - this.caps.vnetHdrLen, false);
    this.deliver(l4 + l4len);
  }

  sendTcp6(src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number, h: TcpSegmentOut, payloadLen: number, data: TcpPayloadSource, mss: number): void {
    const l3 = this.l2(this.host.macFor6(dst, 0), EtherType.IPv6);
    if (l3 < 0) return;
    const l4 = l3 + 40;
    const hl = this.tcpHeader(l4, srcPort, dstPort, h);
    if (payloadLen > 0) data.copySendData(h.payloadSeqOffset, this.buf, l4 + hl, payloadLen);
    const l4len = hl + payloadLen;
    const gso = payloadLen > mss && this.tso6;
    if (payloadLen > mss && !gso) {
      this.host.drop('tcp-oversize');
      return;
    }
    this.ipv6Header(l3, src, dst, IpProto.TCP, l4len);
    const ps = pseudoSumV6(this.buf, l3 + 8, l3 + 24, IpProto.TCP, l4len);
    this.l4Checksum(l4, l4len, ps, 16, gso ? VirtioNetGso.TCPV6 : VirtioNetGso.NONE, gso ? mss : 0, l4 + hl - this.caps.vnetHdrLen, false);
    this.deliver(l4 + l4len);
  }

  // ---- UDP -----------------------------------------------------------------------------------

  /** A UDP/IPv4 datagram to the guest, fragmented when larger than the MTU. */
  sendUdp4(src: number, srcPort: number, dst: number, dstPort: number, data: Uint8Array, dstMac: Uint8Array | null = null): void {
    const mac = dstMac ?? this.host.macFor4(dst);
    const udpLen = 8 + data.length;
    if (udpLen > 65515) {
      this.host.drop('udp-oversize');
      return;
    }
    const l3 = this.l2(mac, EtherType.IPv4);
    if (l3 < 0) return;
    const b = this.buf;
    if (20 + udpLen <= this.caps.mtu) {
      const l4 = l3 + 20;
      writeU16(b, l4, srcPort);
      writeU16(b, l4 + 2, dstPort);
      writeU16(b, l4 + 4, udpLen);
      b[l4 + 6] = 0;
      b[l4 + 7] = 0;
      b.set(data, l4 + 8);
      this.ipv4Header(l3, src, dst, IpProto.UDP, udpLen, this.nextId(), 0);
      this.l4Checksum(l4, udpLen, ipv4PseudoSum(src, dst, IpProto.UDP, udpLen), 6, VirtioNetGso.NONE, 0, 0, true);
      this.deliver(l4 + udpLen);
      return;
    }
    // Fragment (RFC 791 §3.2): compute the UDP checksum over the whole datagram first.
    const hdr = new Uint8Array(8);
    writeU16(hdr, 0, srcPort);
    writeU16(hdr, 2, dstPort);
    writeU16(hdr, 4, udpLen);
    let c = ~foldSum(sum16(data, 0, data.length, sum16(hdr, 0, 8, ipv4PseudoSum(src, dst, IpProto.UDP, udpLen)))) & 0xffff;
    if (c === 0) c = 0xffff;
    writeU16(hdr, 6, c);
    const id = this.nextId();
    const maxChunk = (this.caps.mtu - 20) & ~7;
    let off = 0; // offset in the UDP datagram (header + data)
    while (off < udpLen) {
      const l3b = this.l2(mac, EtherType.IPv4);
      const n = Math.min(maxChunk, udpLen - off);
      const more = off + n < udpLen;
      const p = l3b + 20;
      // Copy the slice [off, off+n) of (hdr ++ data).
      let k = 0;
      while (k < n) {
        const pos = off + k;
        if (pos < 8) {
          b[p + k] = hdr[pos]!;
          k++;
        } else {
          const take = n - k;
          b.set(data.subarray(pos - 8, pos - 8 + take), p + k);
          k += take;
        }
      }
      this.ipv4Header(l3b, src, dst, IpProto.UDP, n, id, (more ? 0x2000 : 0) | (off >>> 3));
      if (this.caps.vnetHdrLen > 0) b.fill(0, 0, 10);
      this.deliver(p + n);
      off += n;
    }
  }

  sendUdp6(src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number, data: Uint8Array, dstMac: Uint8Array | null = null): void {
    const udpLen = 8 + data.length;
    if (40 + udpLen > this.caps.mtu) {
      this.host.drop('udp6-too-big');
      return;
    }
    const l3 = this.l2(dstMac ?? this.host.macFor6(dst, 0), EtherType.IPv6);
    if (l3 < 0) return;
    const b = this.buf;
    const l4 = l3 + 40;
    writeU16(b, l4, srcPort);
    writeU16(b, l4 + 2, dstPort);
    writeU16(b, l4 + 4, udpLen);
    b[l4 + 6] = 0;
    b[l4 + 7] = 0;
    b.set(data, l4 + 8);
    this.ipv6Header(l3, src, dst, IpProto.UDP, udpLen);
    this.l4Checksum(l4, udpLen, pseudoSumV6(b, l3 + 8, l3 + 24, IpProto.UDP, udpLen), 6, VirtioNetGso.NONE, 0, 0, true);
    this.deliver(l4 + udpLen);
  }

  // ---- ICMP, ICMPv6, ARP (control path) ------------------------------------------------------

  /** An ICMPv4 message; `body` is the message from its type byte, with the checksum field zero. */
  sendIcmp4(src: number, dst: number, body: Uint8Array): void {
    const l3 = this.l2(this.host.macFor4(dst), EtherType.IPv4);
    if (l3 < 0) return;
    if (20 + body.length > this.caps.mtu) {
      this.host.drop('icmp-oversize');
      return;
    }
    const b = this.buf;
    const l4 = l3 + 20;
    b.set(body, l4);
    b[l4 + 2] = 0;
    b[l4 + 3] = 0;
    writeU16(b, l4 + 2, checksum(b, l4, body.length));
    this.ipv4Header(l3, src, dst, IpProto.ICMP, body.length, this.nextId(), 0);
    if (this.caps.vnetHdrLen > 0) b.fill(0, 0, 10);
    this.deliver(l4 + body.length);
  }

  /** An ICMPv6 message (checksum filled here); `dstMac` for multicast or before the neighbour is known. */
  sendIcmp6(src: Uint8Array, dst: Uint8Array, body: Uint8Array, hopLimit = 255, dstMac: Uint8Array | null = null): void {
    const l3 = this.l2(dstMac ?? this.host.macFor6(dst, 0), EtherType.IPv6);
    if (l3 < 0) return;
    if (40 + body.length > this.caps.mtu) {
      this.host.drop('icmp6-oversize');
      return;
    }
    const b = this.buf;
    const l4 = l3 + 40;
    b.set(body, l4);
    b[l4 + 2] = 0;
    b[l4 + 3] = 0;
    this.ipv6Header(l3, src, dst, IpProto.ICMPv6, body.length, hopLimit);
    writeU16(b, l4 + 2, checksum(b, l4, body.length, pseudoSumV6(b, l3 + 8, l3 + 24, IpProto.ICMPv6, body.length)));
    if (this.caps.vnetHdrLen > 0) b.fill(0, 0, 10);
    this.deliver(l4 + body.length);
  }

  /** A raw L3 payload of `etherType` (ARP). */
  sendL2(dstMac: Uint8Array, etherType: number, payload: Uint8Array): void {
    const l3 = this.l2(dstMac, etherType);
    if (l3 < 0) return;
    this.buf.set(payload, l3);
    let end = l3 + payload.length;
    // Pad to the Ethernet minimum (60 bytes without FCS) like a real NIC would.
    const min = this.caps.vnetHdrLen + 60;
    if (end < min) {
      this.buf.fill(0, end, min);
      end = min;
    }
    this.deliver(end);
  }
}

function writeLe16(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
}
