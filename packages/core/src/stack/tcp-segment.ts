/**
 * The representation of TCP segments exchanged between the sans-IO engine (`connection.ts`) and
 * the glue that parses and builds wire bytes.
 *
 * Input: the glue parses a frame into a {@link TcpSegmentIn} (it may reuse one object for every
 * frame) and calls `conn.input(seg, now)`. `payload` is borrowed: valid only during the call.
 *
 * Output: the engine fills one shared {@link TcpSegmentOut} and calls
 * `out.emit(hdr, payloadLen, conn)`. The header object is reused for every segment of every
 * connection: it is valid only during `emit`, which must not call back into any engine. The
 * payload is not copied by the engine: the glue copies it straight into the frame it builds with
 * `conn.copySendData(hdr.payloadSeqOffset, dst, dstOff, payloadLen)` during `emit`.
 *
 * Not here: wire parsing/emitting (the glue uses `@guestnet/wire`'s tcp view), checksums, IP.
 */

/** TCP header flag bits (RFC 9293 §3.1; ECE/CWR from RFC 3168). */
export const TcpFlag = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

/** At most 4 SACK blocks fit in the 40-byte option space (3 alongside timestamps), RFC 2018 §3. */
export const TCP_MAX_SACK_BLOCKS = 4;

/**
 * A parsed segment from the guest. Optional option fields are `undefined` when the option is
 * absent (a reused object must reset them).
 */
export interface TcpSegmentIn {
  seq: number;
  ack: number;
  /** {@link TcpFlag} bits. */
  flags: number;
  /** The raw 16-bit window field, not yet scaled. */
  window: number;
  /** Segment data; borrowed, valid only during `input()`. */
  payload: Uint8Array;
  /** MSS option (SYN only). */
  mss?: number | undefined;
  /** Window-scale shift option (SYN only). */
  wscale?: number | undefined;
  /** SACK-permitted option (SYN only). */
  sackPermitted?: boolean | undefined;
  /** Timestamps option (RFC 7323): present when `tsVal` is defined. */
  tsVal?: number | undefined;
  tsEcr?: number | undefined;
  /** SACK blocks as flat [left0, right0, left1, right1, …] pairs. The engine currently ignores them (see connection.ts). */
  sackBlocks?: ArrayLike<number> | undefined;
  /** Number of blocks in `sackBlocks` (defaults to its length / 2), so a fixed array can be reused. */
  sackCount?: number | undefined;
}

/**
 * A segment to send to the guest. Every field is always present so the object keeps one shape;
 * "absent" options use the sentinels documented per field.
 */
export interface TcpSegmentOut {
  seq: number;
  /** Meaningful only when flags has ACK (0 otherwise). */
  ack: number;
  flags: number;
  /** The 16-bit window field, already scaled down by our window-scale shift. */
  window: number;
  /** MSS option value, 0 = no option. */
  mss: number;
  /** Window-scale option shift, -1 = no option. */
  wscale: number;
  sackPermitted: boolean;
  /** Whether to emit the timestamps option (`tsVal`, `tsEcr`). */
  hasTimestamp: boolean;
  tsVal: number;
  tsEcr: number;
  /** Number of SACK blocks in `sackBlocks` to emit (0 = no SACK option). */
  sackCount: number;
  /** Flat [left, right] pairs, capacity {@link TCP_MAX_SACK_BLOCKS}. */
  readonly sackBlocks: Uint32Array;
  /** Where the payload starts, as an offset for `conn.copySendData` (0 when there is no payload). */
  payloadSeqOffset: number;
}

/** What `copySendData` is called on; {@link TcpConnection} implements it. */
export interface TcpPayloadSource {
  /** Copy `len` payload bytes starting `seqOffset` bytes into the send buffer into `dst[dstOff…]`. */
  copySendData(seqOffset: number, dst: Uint8Array, dstOff: number, len: number): void;
}

/** Implemented by the glue: builds and sends one frame per call. */
export interface TcpOutput {
  /**
   * Emit one segment. `hdr` is shared and valid only during this call; the payload (`payloadLen`
   * bytes) must be copied from `conn` during this call too. `payloadLen` may exceed the MSS only
   * when the connection's `maxSegmentPayload` allows it (GSO): the glue then segments with
   * `gso_size = conn.sendMss`. Must not re-enter any TcpConnection.
   */
  emit(hdr: TcpSegmentOut, payloadLen: number, conn: TcpPayloadSource): void;
}

/** A fresh output header (the engine keeps one; tests and the glue may make their own). */
export function createSegmentOut(): TcpSegmentOut {
  return {
    seq: 0,
    ack: 0,
    flags: 0,
    window: 0,
    mss: 0,
    wscale: -1,
    sackPermitted: false,
    hasTimestamp: false,
    tsVal: 0,
    tsEcr: 0,
    sackCount: 0,
    sackBlocks: new Uint32Array(TCP_MAX_SACK_BLOCKS * 2),
    payloadSeqOffset: 0,
  };
}

/** Clear every option of a reused header. */
export function clearSegmentOut(h: TcpSegmentOut): void {
  h.ack = 0;
  h.mss = 0;
  h.wscale = -1;
  h.sackPermitted = false;
  h.hasTimestamp = false;
  h.tsVal = 0;
  h.tsEcr = 0;
  h.sackCount = 0;
  h.payloadSeqOffset = 0;
}

/**
 * Fill `hdr` with the RST that answers `seg` when no connection owns it (RFC 9293 §3.10.7.1):
 * if `seg` carries an ACK the reset is `<SEQ=SEG.ACK><CTL=RST>`, otherwise
 * `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`. Returns false (and leaves hdr alone) for an
 * incoming RST, which is never answered.
 */
export function resetFor(seg: TcpSegmentIn, hdr: TcpSegmentOut): boolean {
  if (seg.flags & TcpFlag.RST) return false;
  clearSegmentOut(hdr);
  hdr.window = 0;
  if (seg.flags & TcpFlag.ACK) {
    hdr.seq = seg.ack >>> 0;
    hdr.flags = TcpFlag.RST;
  } else {
    const segLen = seg.payload.length + (seg.flags & TcpFlag.SYN ? 1 : 0) + (seg.flags & TcpFlag.FIN ? 1 : 0);
    hdr.seq = 0;
    hdr.ack = (seg.seq + segLen) >>> 0;
    hdr.flags = TcpFlag.RST | TcpFlag.ACK;
  }
  return true;
}
