/**
 * The virtio-net packet header (virtio 1.x §5.1.6, struct virtio_net_hdr), which TAP devices with
 * IFF_VNET_HDR and vhost/virtqueue transports put before every frame.
 *
 * Two sizes: 10 bytes (legacy, no mergeable rx buffers) and 12 bytes (VIRTIO_NET_F_MRG_RXBUF or
 * any virtio 1.0 device: adds num_buffers). Fields are LITTLE-endian, unlike everything else in
 * this package: virtio 1.0 mandates it, and Linux TAP uses it with TUNSETVNETLE (and natively on
 * little-endian hosts). Big-endian legacy hosts are not supported.
 *
 * Offload semantics the view does not enforce (the backend does): NEEDS_CSUM means the checksum
 * field at csum_start + csum_offset holds the folded pseudo-header sum (Linux CHECKSUM_PARTIAL) and
 * the sum over [csum_start, end) must still be folded in; `virtioNetCompleteChecksum` does that.
 * gso_type != NONE means the frame is a super-segment to be cut into gso_size pieces (not done here).
 * The hash report fields of VIRTIO_NET_F_HASH_REPORT (20-byte header) are not supported.
 */
import { EMPTY } from './addr.ts';
import { checksum } from './checksum.ts';

export const VirtioNetField = { FLAGS: 0, GSO_TYPE: 1, HDR_LEN: 2, GSO_SIZE: 4, CSUM_START: 6, CSUM_OFFSET: 8, NUM_BUFFERS: 10 } as const;

/** struct virtio_net_hdr. */
export const VIRTIO_NET_HDR_LEN = 10;
/** struct virtio_net_hdr_mrg_rxbuf (and the virtio 1.0 header). */
export const VIRTIO_NET_HDR_MRG_LEN = 12;

export const VirtioNetFlags = { NEEDS_CSUM: 1, DATA_VALID: 2, RSC_INFO: 4 } as const;

/** gso_type values; ECN may be or-ed into the TCP ones. */
export const VirtioNetGso = { NONE: 0, TCPV4: 1, UDP: 3, TCPV6: 4, UDP_L4: 5, ECN: 0x80 } as const;

function rd16le(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}
function wr16le(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
}

export class VirtioNetView {
  bytes: Uint8Array = EMPTY;
  off = 0;
  len = 0;
  /** 10 or 12, as given to `reset`. */
  hdrSize: number = VIRTIO_NET_HDR_LEN;

  /** Point the view at bytes[off, off+len) (header + frame). `hdrSize` is the negotiated header
   * size (10 or 12); any other value fails. */
  reset(bytes: Uint8Array, off: number, len: number, hdrSize: number = VIRTIO_NET_HDR_LEN): boolean {
    if (hdrSize !== VIRTIO_NET_HDR_LEN && hdrSize !== VIRTIO_NET_HDR_MRG_LEN) return false;
    if (off < 0 || len < hdrSize || off + len > bytes.length) return false;
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    this.hdrSize = hdrSize;
    return true;
  }

  get flags(): number {
    return this.bytes[this.off + VirtioNetField.FLAGS]!;
  }
  set flags(v: number) {
    this.bytes[this.off + VirtioNetField.FLAGS] = v;
  }
  get gsoType(): number {
    return this.bytes[this.off + VirtioNetField.GSO_TYPE]!;
  }
  set gsoType(v: number) {
    this.bytes[this.off + VirtioNetField.GSO_TYPE] = v;
  }
  get hdrLen(): number {
    return rd16le(this.bytes, this.off + VirtioNetField.HDR_LEN);
  }
  set hdrLen(v: number) {
    wr16le(this.bytes, this.off + VirtioNetField.HDR_LEN, v);
  }
  get gsoSize(): number {
    return rd16le(this.bytes, this.off + VirtioNetField.GSO_SIZE);
  }
  set gsoSize(v: number) {
    wr16le(this.bytes, this.off + VirtioNetField.GSO_SIZE, v);
  }
  get csumStart(): number {
    return rd16le(this.bytes, this.off + VirtioNetField.CSUM_START);
  }
  set csumStart(v: number) {
    wr16le(this.bytes, this.off + VirtioNetField.CSUM_START, v);
  }
  get csumOffset(): number {
    return rd16le(this.bytes, this.off + VirtioNetField.CSUM_OFFSET);
  }
  set csumOffset(v: number) {
    wr16le(this.bytes, this.off + VirtioNetField.CSUM_OFFSET, v);
  }
  /** Buffers this packet spans (mergeable rx); 1 for the 10-byte header, which has no field. */
  get numBuffers(): number {
    return this.hdrSize === VIRTIO_NET_HDR_MRG_LEN ? rd16le(this.bytes, this.off + VirtioNetField.NUM_BUFFERS) : 1;
  }
  /** Ignored for the 10-byte header. */
  set numBuffers(v: number) {
    if (this.hdrSize === VIRTIO_NET_HDR_MRG_LEN) wr16le(this.bytes, this.off + VirtioNetField.NUM_BUFFERS, v);
  }
  /** The Ethernet frame after the header. */
  get payloadOffset(): number {
    return this.off + this.hdrSize;
  }
  get payloadLen(): number {
    return this.len - this.hdrSize;
  }
}

export interface VirtioNetRepr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  /** Only in the 12-byte form; emit writes 1 when absent. */
  numBuffers?: number;
}

export function parseVirtioNet(v: VirtioNetView): VirtioNetRepr {
  const r: VirtioNetRepr = {
    flags: v.flags,
    gsoType: v.gsoType,
    hdrLen: v.hdrLen,
    gsoSize: v.gsoSize,
    csumStart: v.csumStart,
    csumOffset: v.csumOffset,
  };
  if (v.hdrSize === VIRTIO_NET_HDR_MRG_LEN) r.numBuffers = v.numBuffers;
  return r;
}

/** Write a `hdrSize`-byte header (10 or 12) at buf[off]; returns hdrSize. */
export function emitVirtioNet(r: VirtioNetRepr, buf: Uint8Array, off: number, hdrSize: number = VIRTIO_NET_HDR_LEN): number {
  buf[off + VirtioNetField.FLAGS] = r.flags;
  buf[off + VirtioNetField.GSO_TYPE] = r.gsoType;
  wr16le(buf, off + VirtioNetField.HDR_LEN, r.hdrLen);
  wr16le(buf, off + VirtioNetField.GSO_SIZE, r.gsoSize);
  wr16le(buf, off + VirtioNetField.CSUM_START, r.csumStart);
  wr16le(buf, off + VirtioNetField.CSUM_OFFSET, r.csumOffset);
  if (hdrSize === VIRTIO_NET_HDR_MRG_LEN) {
    wr16le(buf, off + VirtioNetField.NUM_BUFFERS, r.numBuffers ?? 1);
    return VIRTIO_NET_HDR_MRG_LEN;
  }
  return VIRTIO_NET_HDR_LEN;
}

/** Write an all-zero header (no offloads): what a backend prepends to an ordinary frame. */
export function emitVirtioNetNone(buf: Uint8Array, off: number, hdrSize: number = VIRTIO_NET_HDR_LEN): number {
  buf.fill(0, off, off + VIRTIO_NET_HDR_LEN);
  if (hdrSize === VIRTIO_NET_HDR_MRG_LEN) {
    wr16le(buf, off + VirtioNetField.NUM_BUFFERS, 1);
    return VIRTIO_NET_HDR_MRG_LEN;
  }
  return VIRTIO_NET_HDR_LEN;
}

/**
 * Finish a NEEDS_CSUM frame in software: checksum frame[csumStart, end) (the field already holds
 * the pseudo-header sum) and store it at csumStart + csumOffset. `frameOff`/`frameLen` locate the
 * Ethernet frame (after the virtio header). Returns false, touching nothing, when the offsets do
 * not fit in the frame.
 */
export function virtioNetCompleteChecksum(
  bytes: Uint8Array,
  frameOff: number,
  frameLen: number,
  csumStart: number,
  csumOffset: number,
): boolean {
  if (frameOff < 0 || frameOff + frameLen > bytes.length) return false;
  if (csumStart + csumOffset + 2 > frameLen) return false;
  const start = frameOff + csumStart;
  const field = start + csumOffset;
  // 0 goes out as 0xffff, as Linux's skb_checksum_help does: the same value in one's complement
  // for TCP, and the only correct one for UDP, where 0 means "no checksum".
  const c = checksum(bytes, start, frameLen - csumStart) || 0xffff;
  bytes[field] = c >>> 8;
  bytes[field + 1] = c;
  return true;
}
