/**
 * QEMU stream framing (`-netdev stream`, `-netdev socket,connect=`; also what passt, gvproxy's
 * qemu mode and container2wasm speak): each Ethernet frame is preceded by its length as a 4-byte
 * big-endian integer. Pure and browser-safe; the Node socket glue lives in stream-node.ts.
 *
 * ## Decoder
 * `StreamFrameDecoder` is incremental: chunks may split the length prefix or the frame at any byte
 * boundary. A frame lying wholly inside one chunk is delivered as a view of that chunk (no copy);
 * a frame split across chunks is reassembled into one buffer owned by the decoder, grown on
 * demand up to `maxFrameLen` and then reused (no per-frame allocation). Either way the frame is a
 * view **valid only during the callback**.
 *
 * A length of 0 or above `maxFrameLen` (default 65535 + 12 + 14: a 64 KiB GSO super-frame with a
 * 12-byte virtio-net header) is rejected as soon as its 4 bytes are read, before any payload is
 * buffered: the stream is unrecoverable (no resync marker in this framing), so the decoder fails
 * and reports a GUESTNET_PROTOCOL error once; later input is ignored. A hostile peer cannot make
 * it hold more than 4 + maxFrameLen bytes.
 *
 * Flow control: `pause()` from inside the frame callback stops decoding after that frame; the rest
 * of the chunk is kept (by reference, not copied) until `resume()`. Chunks pushed while paused
 * are kept the same way, so a caller that pushes while paused must not reuse those chunks.
 *
 * ## Encoder
 * `encodeStreamFrame` frames one frame into a new buffer; `StreamFrameWriter` copies frames into a
 * batch buffer and hands the transport one chunk per batch (flushed from a microtask by default,
 * or when the batch is full), so a burst of frames costs one socket write, not one per frame.
 */
import { ErrorCode, GuestnetError } from '../errors.ts';

/** 64 KiB GSO super-frame + 12-byte virtio-net header + Ethernet header. */
export const DEFAULT_STREAM_MAX_FRAME = 65535 + 12 + 14;

export interface StreamFrameDecoderOptions {
  /** Largest acceptable frame length. Default {@link DEFAULT_STREAM_MAX_FRAME}. */
  maxFrameLen?: number;
}

export class StreamFrameDecoder {
  readonly maxFrameLen: number;
  /** Frames delivered. */
  frames = 0;

  private readonly onFrame: (frame: Uint8Array) => void;
  private readonly onError: (err: GuestnetError) => void;
  private readonly hdr = new Uint8Array(4);
  private hdrHave = 0;
  /** Length of the frame being read; 0 while reading a length prefix. */
  private need = 0;
  /** Bytes of a split frame gathered in `buf`. */
  private have = 0;
  private buf: Uint8Array;
  private isPaused = false;
  private isFailed = false;
  private consuming = false;
  /** Unconsumed input kept while paused. */
  private readonly pending: { chunk: Uint8Array; off: number }[] = [];

  constructor(onFrame: (frame: Uint8Array) => void, onError: (err: GuestnetError) => void, opts: StreamFrameDecoderOptions = {}) {
    this.onFrame = onFrame;
    this.onError = onError;
    this.maxFrameLen = opts.maxFrameLen ?? DEFAULT_STREAM_MAX_FRAME;
    this.buf = new Uint8Array(Math.min(2048, this.maxFrameLen));
  }

  get paused(): boolean {
    return this.isPaused;
  }

  get failed(): boolean {
    return this.isFailed;
  }

  /** Bytes of partial input copied into the decoder (length prefix + split frame). */
  get bufferedBytes(): number {
    return this.hdrHave + this.have;
  }

  /** Bytes of input kept by reference while paused. */
  get pendingBytes(): number {
    let n = 0;
    for (const p of this.pending) n += p.chunk.length - p.off;
    return n;
  }

  /** Feed bytes read from the stream. Frames are delivered synchronously from here. */
  push(chunk: Uint8Array): void {
    if (this.isFailed || chunk.length === 0) return;
    if (this.isPaused || this.pending.length > 0) {
      this.pending.push({ chunk, off: 0 });
      return;
    }
    const off = this.consume(chunk, 0);
    if (off < chunk.length && !this.isFailed) this.pending.push({ chunk, off });
  }

  /** Stop delivering after the current frame. */
  pause(): void {
    this.isPaused = true;
  }

  /** Continue with input kept while paused. */
  resume(): void {
    if (!this.isPaused) return;
    this.isPaused = false;
    // Called from inside a frame callback: the running loop sees the flag and carries on.
    if (this.consuming) return;
    while (this.pending.length > 0 && !this.isPaused && !this.isFailed) {
      const p = this.pending[0]!;
      p.off = this.consume(p.chunk, p.off);
      if (p.off >= p.chunk.length) this.pending.shift();
    }
    if (this.isFailed) this.pending.length = 0;
  }

  /** Returns the offset where decoding stopped (chunk.length unless paused or failed). */
  private consume(chunk: Uint8Array, off: number): number {
    const len = chunk.length;
    this.consuming = true;
    try {
      while (off < len && !this.isPaused && !this.isFailed) {
        if (this.need === 0) {
          let n: number;
          if (this.hdrHave === 0 && len - off >= 4) {
            n = ((chunk[off]! << 24) | (chunk[off + 1]! << 16) | (chunk[off + 2]! << 8) | chunk[off + 3]!) >>> 0;
            off += 4;
          } else {
            while (this.hdrHave < 4 && off < len) this.hdr[this.hdrHave++] = chunk[off++]!;
            if (this.hdrHave < 4) break;
            const h = this.hdr;
            n = ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
            this.hdrHave = 0;
          }
          if (n === 0 || n > this.maxFrameLen) {
            this.fail(n);
            break;
          }
          this.need = n;
          this.have = 0;
          continue;
        }
        const need = this.need;
        if (this.have === 0 && len - off >= need) {
          // Whole frame inside this chunk: deliver a view, no copy.
          this.need = 0;
          off += need;
          this.frames++;
          this.onFrame(chunk.subarray(off - need, off));
          continue;
        }
        if (this.buf.length < need) this.grow(need);
        const take = Math.min(need - this.have, len - off);
        this.buf.set(chunk.subarray(off, off + take), this.have);
        this.have += take;
        off += take;
        if (this.have === need) {
          this.need = 0;
          this.have = 0;
          this.frames++;
          this.onFrame(this.buf.subarray(0, need));
        }
      }
    } finally {
      this.consuming = false;
    }
    return off;
  }

  private grow(need: number): void {
    let cap = this.buf.length;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(Math.min(cap, this.maxFrameLen));
    next.set(this.buf.subarray(0, this.have));
    this.buf = next;
  }

  private fail(n: number): void {
    this.isFailed = true;
    this.need = 0;
    this.have = 0;
    this.hdrHave = 0;
    this.pending.length = 0;
    const why = n === 0 ? 'a zero-length frame' : `a frame length of ${n} bytes (limit ${this.maxFrameLen})`;
    this.onError(
      new GuestnetError(ErrorCode.Protocol, `stream framing error: the peer sent ${why}`, {
        hint: 'the peer does not speak QEMU stream framing (4-byte big-endian length + frame), or the stream is out of sync',
      }),
    );
  }
}

/** `frame` with its 4-byte big-endian length prefix, in a new buffer. */
export function encodeStreamFrame(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + frame.length);
  writeStreamFrame(frame, out, 0);
  return out;
}

/** Write the prefixed frame into `out` at `off`; returns the offset after it. */
export function writeStreamFrame(frame: Uint8Array, out: Uint8Array, off: number): number {
  const n = frame.length;
  out[off] = n >>> 24;
  out[off + 1] = (n >>> 16) & 0xff;
  out[off + 2] = (n >>> 8) & 0xff;
  out[off + 3] = n & 0xff;
  out.set(frame, off + 4);
  return off + 4 + n;
}

export interface StreamFrameWriterOptions {
  /** Batch buffer size; a batch is written when the next frame would not fit. Default 256 KiB. */
  batchBytes?: number;
  /** How a flush is deferred so frames of one tick coalesce. Default queueMicrotask. */
  schedule?: (fn: () => void) => void;
}

/**
 * Coalesces framed frames into few writes. `push` copies the frame (so an rx frame, valid only
 * during its callback, may be passed directly); every chunk handed to `write` is fresh and may be
 * kept by the transport.
 */
export class StreamFrameWriter {
  /** Frames accepted. */
  frames = 0;
  /** Chunks handed to `write`. */
  writes = 0;

  private readonly write: (chunk: Uint8Array) => void;
  private readonly schedule: (fn: () => void) => void;
  private readonly buf: Uint8Array;
  private used = 0;
  private scheduled = false;
  private closed = false;

  constructor(write: (chunk: Uint8Array) => void, opts: StreamFrameWriterOptions = {}) {
    this.write = write;
    this.schedule = opts.schedule ?? queueMicrotask;
    this.buf = new Uint8Array(Math.max(opts.batchBytes ?? 256 * 1024, 64));
  }

  /** Bytes waiting for the next flush. */
  get pendingBytes(): number {
    return this.used;
  }

  push(frame: Uint8Array): void {
    if (this.closed) return;
    this.frames++;
    const n = 4 + frame.length;
    if (this.used + n > this.buf.length) this.flush();
    if (n > this.buf.length) {
      this.emit(encodeStreamFrame(frame));
      return;
    }
    this.used = writeStreamFrame(frame, this.buf, this.used);
    if (!this.scheduled) {
      this.scheduled = true;
      this.schedule(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  /** Write the current batch now. */
  flush(): void {
    if (this.used === 0 || this.closed) return;
    const chunk = this.buf.slice(0, this.used);
    this.used = 0;
    this.emit(chunk);
  }

  /** Flush and refuse further frames. */
  close(): void {
    this.flush();
    this.closed = true;
  }

  private emit(chunk: Uint8Array): void {
    this.writes++;
    this.write(chunk);
  }
}
