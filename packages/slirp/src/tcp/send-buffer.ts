/**
 * The host→guest send buffer of one TCP connection: a bounded byte ring holding data from the
 * first unacknowledged byte (SND.UNA) to the last byte the host wrote.
 *
 * - Bounded: `append` copies at most `free` bytes and returns how many it took; the caller (the
 *   connection) turns a short write into backpressure on the host socket.
 * - Lazy: storage starts empty and grows by doubling (from {@link SEND_BUFFER_MIN_STORAGE}) only
 *   as far as the data actually queued needs, up to `capacity`; `trim()` gives it back when empty.
 *   1000 idle connections therefore hold no ring storage at all.
 * - `copyOut` serves retransmissions and first transmissions alike: payload bytes are copied once,
 *   from here straight into the frame the glue is building.
 *
 * Not here: sequence numbers (offsets are relative to the first buffered byte).
 */

/** Smallest storage allocated once data arrives. */
export const SEND_BUFFER_MIN_STORAGE = 4096;

const EMPTY = new Uint8Array(0);

export class SendBuffer {
  /** Upper bound on buffered bytes. */
  readonly capacity: number;
  private buf: Uint8Array = EMPTY;
  private head = 0;
  private len = 0;

  constructor(capacity: number) {
    this.capacity = Math.max(1, Math.floor(capacity));
  }

  /** Bytes buffered (unacknowledged plus not yet sent). */
  get length(): number {
    return this.len;
  }

  /** Bytes `append` would accept now. */
  get free(): number {
    return this.capacity - this.len;
  }

  /** Bytes of storage currently allocated (for memory accounting). */
  get storageBytes(): number {
    return this.buf.length;
  }

  /** Copy up to `n` bytes of `src[off…]` in; returns the number taken (0 when full). */
  append(src: Uint8Array, off: number, n: number): number {
    const free = this.capacity - this.len;
    if (n > free) n = free;
    if (n <= 0) return 0;
    this.ensure(this.len + n);
    const buf = this.buf;
    const size = buf.length;
    let tail = this.head + this.len;
    if (tail >= size) tail -= size;
    const first = n < size - tail ? n : size - tail;
    buf.set(off === 0 && first === src.length ? src : src.subarray(off, off + first), tail);
    if (n > first) buf.set(src.subarray(off + first, off + n), 0);
    this.len += n;
    return n;
  }

  /** Release `n` bytes from the front (they were acknowledged). */
  ack(n: number): void {
    if (n <= 0) return;
    if (n >= this.len) {
      this.len = 0;
      this.head = 0;
      return;
    }
    this.len -= n;
    let h = this.head + n;
    if (h >= this.buf.length) h -= this.buf.length;
    this.head = h;
  }

  /** Copy `n` bytes starting `offset` bytes past the front into `dst[dstOff…]`. */
  copyOut(offset: number, dst: Uint8Array, dstOff: number, n: number): void {
    if (n <= 0) return;
    const buf = this.buf;
    const size = buf.length;
    let pos = this.head + offset;
    if (pos >= size) pos -= size;
    const first = n < size - pos ? n : size - pos;
    // One view per contiguous run: the only allocation on the send path (no allocation-free
    // Uint8Array-to-Uint8Array copy with offsets exists outside Node's Buffer).
    dst.set(buf.subarray(pos, pos + first), dstOff);
    if (n > first) dst.set(buf.subarray(0, n - first), dstOff + first);
  }

  /** Give the storage back if nothing is buffered. */
  trim(): void {
    if (this.len === 0) {
      this.buf = EMPTY;
      this.head = 0;
    }
  }

  /** Drop everything and the storage. */
  reset(): void {
    this.buf = EMPTY;
    this.head = 0;
    this.len = 0;
  }

  private ensure(needed: number): void {
    const old = this.buf;
    if (needed <= old.length) return;
    let size = old.length < SEND_BUFFER_MIN_STORAGE ? SEND_BUFFER_MIN_STORAGE : old.length;
    while (size < needed) size *= 2;
    if (size > this.capacity) size = this.capacity;
    const next = new Uint8Array(size);
    if (this.len > 0) this.copyOut(0, next, 0, this.len);
    this.buf = next;
    this.head = 0;
  }
}
