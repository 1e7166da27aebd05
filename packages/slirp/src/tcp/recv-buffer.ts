/**
 * Guest→host receive side of one TCP connection: RCV.NXT plus out-of-order reassembly.
 *
 * In-order data is never stored: it is handed to the sink straight from the incoming segment
 * (zero copy, the common case is O(1)). Only data that arrives ahead of a hole is copied, into a
 * ring allocated lazily on the first out-of-order segment and indexed by `seq & mask` (the ring
 * size is a power of two, so the mapping survives sequence wrap-around). Contiguous stored runs
 * are tracked as at most {@link MAX_OOO_RANGES} sorted `[start, end)` ranges (smoltcp's Assembler
 * idea); once the hole fills they are delivered in order as 1–2 chunks each.
 *
 * Bounds (RFC 9293 §3.10.7.4): nothing past the advertised right edge is kept — the excess is
 * dropped and counted (`beyondWindow`) — and nothing farther than the ring size past RCV.NXT
 * (`overflow`); a segment that would need one range more than the
 * limit is dropped too. The sender retransmits.
 *
 * Also produces SACK blocks (RFC 2018 §4): the range holding the latest out-of-order segment first,
 * then the others. Not here: FIN handling, window computation (connection.ts).
 */

import { seqAdd, seqGt, seqLe, seqLt, seqSub } from './seq.ts';

/** Maximum number of disjoint out-of-order runs remembered. */
export const MAX_OOO_RANGES = 32;

/** Receives in-order data; `chunk` is borrowed (valid only during the call). */
export interface RecvSink {
  deliver(chunk: Uint8Array): void;
}

function nextPow2(n: number): number {
  let p = 1024;
  while (p < n && p < 0x40000000) p *= 2;
  return p;
}

export class RecvBuffer {
  /** RCV.NXT: the next sequence number expected in order. */
  nxt = 0;
  /** Ring size: the farthest past RCV.NXT that out-of-order data may be kept. */
  readonly cap: number;

  /** Results of the last `accept` call (bytes). */
  inOrder = 0;
  ooo = 0;
  dup = 0;
  beyondWindow = 0;
  overflow = 0;
  /** The last `accept` delivered data that had been waiting in the reassembly ring. */
  filledGap = false;

  private ring: Uint8Array | null = null;
  private readonly mask: number;
  private readonly ranges = new Uint32Array(MAX_OOO_RANGES * 2);
  private n = 0;
  private lastOooSeq = 0;
  private readonly sink: RecvSink;

  /** `limit`: reassembly bound in bytes (rounded up to a power of two, min 1 KiB). */
  constructor(limit: number, sink: RecvSink) {
    this.cap = nextPow2(limit);
    this.mask = this.cap - 1;
    this.sink = sink;
  }

  /** Number of out-of-order runs waiting for a hole to fill. */
  get rangeCount(): number {
    return this.n;
  }

  /** Bytes of reassembly storage allocated. */
  get storageBytes(): number {
    return this.ring === null ? 0 : this.ring.length;
  }

  /**
   * Take a segment's data: `seq` is its first byte, `rightEdge` the advertised window's right edge.
   * In-order bytes (including any run the segment completes) go to the sink before this returns;
   * the result counters say what happened to each byte.
   */
  accept(seq: number, data: Uint8Array, rightEdge: number): void {
    this.inOrder = 0;
    this.ooo = 0;
    this.dup = 0;
    this.beyondWindow = 0;
    this.overflow = 0;
    this.filledGap = false;
    let len = data.length;
    let off = 0;
    const old = seqSub(this.nxt, seq);
    if (old > 0) {
      if (old >= len) {
        this.dup = len;
        return;
      }
      this.dup = old;
      off = old;
      len -= old;
      seq = this.nxt;
    }
    let room = seqSub(rightEdge, seq);
    if (room < 0) room = 0;
    if (len > room) {
      this.beyondWindow = len - room;
      len = room;
    }
    if (len === 0) return;
    if (seq === this.nxt) {
      this.nxt = seqAdd(seq, len);
      this.inOrder = len;
      this.sink.deliver(off === 0 && len === data.length ? data : data.subarray(off, off + len));
      if (this.n > 0) this.drain();
      return;
    }
    // Out of order: keep it only within the ring's reach.
    const endOff = seqSub(seq, this.nxt) + len;
    if (endOff > this.cap) {
      const cut = endOff - this.cap;
      if (cut >= len) {
        this.overflow = len;
        return;
      }
      this.overflow = cut;
      len -= cut;
    }
    if (!this.insertRange(seq, seqAdd(seq, len))) {
      this.overflow += len;
      return;
    }
    this.copyIn(seq, data, off, len);
    this.ooo = len;
    this.lastOooSeq = seq;
  }

  /**
   * Write up to `max` SACK blocks into `dst` as flat pairs (RFC 2018 §4: the block holding the
   * most recent out-of-order segment first). Returns the number written.
   */
  sackBlocks(dst: Uint32Array, max: number): number {
    const r = this.ranges;
    const n = this.n;
    if (n === 0 || max <= 0) return 0;
    let recent = 0;
    for (let i = 0; i < n; i++) {
      if (seqLe(r[2 * i], this.lastOooSeq) && seqLt(this.lastOooSeq, r[2 * i + 1])) {
        recent = i;
        break;
      }
    }
    dst[0] = r[2 * recent];
    dst[1] = r[2 * recent + 1];
    let k = 1;
    for (let i = 0; i < n && k < max; i++) {
      if (i === recent) continue;
      dst[2 * k] = r[2 * i];
      dst[2 * k + 1] = r[2 * i + 1];
      k++;
    }
    return k;
  }

  /** Release the reassembly ring if nothing waits in it. */
  trim(): void {
    if (this.n === 0) this.ring = null;
  }

  /** Forget all buffered data (the connection closed). */
  reset(): void {
    this.n = 0;
    this.ring = null;
  }

  private drain(): void {
    const r = this.ranges;
    while (this.n > 0) {
      const s = r[0];
      const e = r[1];
      if (seqGt(s, this.nxt)) return;
      this.n--;
      if (this.n > 0) r.copyWithin(0, 2, 2 * this.n + 2);
      let len = seqSub(e, this.nxt);
      while (len > 0) {
        const ring = this.ring;
        if (ring === null) return; // reset by the sink (connection aborted)
        const idx = this.nxt & this.mask;
        const chunk = len < this.cap - idx ? len : this.cap - idx;
        const view = ring.subarray(idx, idx + chunk);
        this.nxt = seqAdd(this.nxt, chunk);
        len -= chunk;
        this.inOrder += chunk;
        this.filledGap = true;
        this.sink.deliver(view);
      }
    }
  }

  private insertRange(s: number, e: number): boolean {
    const r = this.ranges;
    const n = this.n;
    let i = 0;
    while (i < n && seqLt(r[2 * i + 1], s)) i++;
    let j = i;
    while (j < n && seqLe(r[2 * j], e)) {
      if (seqLt(r[2 * j], s)) s = r[2 * j];
      if (seqGt(r[2 * j + 1], e)) e = r[2 * j + 1];
      j++;
    }
    const newN = n - (j - i) + 1;
    if (newN > MAX_OOO_RANGES) return false;
    if (j !== i + 1) r.copyWithin(2 * (i + 1), 2 * j, 2 * n);
    r[2 * i] = s;
    r[2 * i + 1] = e;
    this.n = newN;
    return true;
  }

  private copyIn(seq: number, data: Uint8Array, off: number, len: number): void {
    let ring = this.ring;
    if (ring === null) ring = this.ring = new Uint8Array(this.cap);
    const idx = seq & this.mask;
    const first = len < this.cap - idx ? len : this.cap - idx;
    ring.set(data.subarray(off, off + first), idx);
    if (len > first) ring.set(data.subarray(off + first, off + len), 0);
  }
}
