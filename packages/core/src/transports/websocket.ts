/**
 * WebSocket framing (RFC 6455 §5) for carrying Ethernet frames, one binary message per frame, as
 * the v86 / jor1k network relays (websockproxy, wsnic) expect. Pure and browser-safe; the opening
 * handshake and the Node socket glue live in websocket-node.ts.
 *
 * ## Decoder
 * `WebSocketFrameDecoder` is incremental like StreamFrameDecoder: chunks may split a frame header
 * or payload anywhere. It checks what §5.2 and §5.5 require and fails the connection otherwise
 * (reported once through `onError` with the close code to send, later input ignored):
 * - RSV1-3 must be 0 (no extension is negotiated), opcodes 3-7 and 0xB-0xF are reserved → 1002;
 * - a server (`role: 'server'`) requires every client frame to be masked (§5.1), a client requires
 *   server frames to be unmasked → 1002;
 * - control frames (close, ping, pong) must not be fragmented and carry ≤ 125 bytes → 1002; they
 *   may arrive between the fragments of a data message (§5.4);
 * - a continuation frame without a message in progress, or a new data frame inside one → 1002;
 * - a 64-bit length with the top bit set → 1002; a message longer than `maxMessageLen` → 1009,
 *   decided from the frame header, before any of its payload is buffered.
 *
 * Payloads are unmasked **in place in the input chunk** (the chunk must belong to the caller, as a
 * Node `data` chunk does). An unfragmented binary message lying wholly in one chunk is delivered as
 * a view of that chunk (no copy); a split or fragmented message is gathered into one buffer owned
 * by the decoder, grown on demand up to `maxMessageLen` and reused. Either way the payload is a
 * view **valid only during the callback**. Text messages are delivered with `binary = false` so
 * the caller can drop and count them; their UTF-8 is not validated (§8.1 is the caller's business;
 * a frame relay never interprets text).
 *
 * Flow control: `pause()` from inside a callback stops decoding after that message; the rest of
 * the input is kept by reference until `resume()`.
 *
 * ## Encoder
 * `writeWebSocketFrame` writes one frame (FIN set, optionally masked) into a caller's buffer;
 * `WebSocketFrameWriter` coalesces binary messages into one chunk per microtask, like
 * StreamFrameWriter. A server never masks (§5.1); a client masks with a fresh random key per frame
 * (crypto.getRandomValues, present in browsers and Node ≥ 19).
 *
 * Not supported: extensions (permessage-deflate is never negotiated, so RSV bits are errors),
 * sending fragmented messages (we never need to: an Ethernet frame is small).
 */

export const WsOpcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;
export type WsOpcode = (typeof WsOpcode)[keyof typeof WsOpcode];

/** Close status codes (RFC 6455 §7.4.1). */
export const WsCloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  /** Never sent on the wire: "no status code was present". */
  NoStatus: 1005,
  InvalidPayload: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  InternalError: 1011,
} as const;
export type WsCloseCode = (typeof WsCloseCode)[keyof typeof WsCloseCode];

/** Same default as the stream framing: a 64 KiB GSO super-frame + vnet header + Ethernet header. */
export const DEFAULT_WS_MAX_MESSAGE = 65535 + 12 + 14;

/** The most a frame header takes: 2 + 8 (64-bit length) + 4 (mask key). */
export const WS_MAX_HEADER = 14;

const MAX_CONTROL_PAYLOAD = 125;

export interface WebSocketFrameDecoderOptions {
  /** 'server' expects masked frames (from a client); 'client' expects unmasked ones. */
  role: 'server' | 'client';
  /** Largest data message accepted. Default {@link DEFAULT_WS_MAX_MESSAGE}. */
  maxMessageLen?: number;
}

export interface WebSocketDecoderEvents {
  /** A complete data message. `payload` is valid only during the call. */
  message(payload: Uint8Array, binary: boolean): void;
  /** A close, ping or pong frame (unmasked payload, ≤ 125 bytes, valid only during the call). */
  control(opcode: WsOpcode, payload: Uint8Array): void;
  /** The connection must fail with close code `code` (1002 or 1009). Called once. */
  error(code: number, reason: string): void;
}

export class WebSocketFrameDecoder {
  readonly maxMessageLen: number;
  /** Data messages delivered. */
  messages = 0;

  private readonly ev: WebSocketDecoderEvents;
  private readonly expectMask: boolean;
  /** A header split across chunks. */
  private readonly hdr = new Uint8Array(WS_MAX_HEADER);
  private hdrHave = 0;
  /** The frame being read: payload bytes still expected, -1 while reading a header. */
  private remaining = -1;
  private opcode = 0;
  private fin = false;
  private readonly mask = new Uint8Array(4);
  private masked = false;
  /** Payload bytes of the current frame consumed so far (mask key index). */
  private framePos = 0;
  /** Opcode of the fragmented data message in progress, or -1. */
  private msgOpcode = -1;
  /** Gathered message (data) bytes. */
  private buf: Uint8Array;
  private have = 0;
  /** Whether the current data frame is being gathered (split or fragmented) rather than delivered as a view. */
  private gathering = false;
  private readonly ctl = new Uint8Array(MAX_CONTROL_PAYLOAD);
  private ctlHave = 0;
  private isPaused = false;
  private isFailed = false;
  private consuming = false;
  private readonly pending: { chunk: Uint8Array; off: number }[] = [];

  constructor(events: WebSocketDecoderEvents, opts: WebSocketFrameDecoderOptions) {
    this.ev = events;
    this.expectMask = opts.role === 'server';
    this.maxMessageLen = opts.maxMessageLen ?? DEFAULT_WS_MAX_MESSAGE;
    this.buf = new Uint8Array(Math.min(2048, this.maxMessageLen));
  }

  get paused(): boolean {
    return this.isPaused;
  }

  get failed(): boolean {
    return this.isFailed;
  }

  /** Feed bytes read from the connection (unmasked in place). Messages are delivered synchronously. */
  push(chunk: Uint8Array): void {
    if (this.isFailed || chunk.length === 0) return;
    if (this.isPaused || this.pending.length > 0) {
      this.pending.push({ chunk, off: 0 });
      return;
    }
    const off = this.consume(chunk, 0);
    if (off < chunk.length && !this.isFailed) this.pending.push({ chunk, off });
  }

  pause(): void {
    this.isPaused = true;
  }

  resume(): void {
    if (!this.isPaused) return;
    this.isPaused = false;
    if (this.consuming) return;
    while (this.pending.length > 0 && !this.isPaused && !this.isFailed) {
      const p = this.pending[0]!;
      p.off = this.consume(p.chunk, p.off);
      if (p.off >= p.chunk.length) this.pending.shift();
    }
    if (this.isFailed) this.pending.length = 0;
  }

  /** Stop decoding for good (after a close frame: §5.5.1, nothing after it is data). */
  stop(): void {
    this.isFailed = true;
    this.pending.length = 0;
  }

  private consume(chunk: Uint8Array, off: number): number {
    const len = chunk.length;
    this.consuming = true;
    try {
      while (off < len && !this.isPaused && !this.isFailed) {
        if (this.remaining < 0) {
          off = this.readHeader(chunk, off);
          if (this.remaining < 0) break; // header incomplete, or failed
          if (this.remaining === 0) this.endFrame(chunk, off, 0);
          continue;
        }
        off = this.readPayload(chunk, off);
      }
    } finally {
      this.consuming = false;
    }
    return off;
  }

  /** Read a header starting at `off` (or continue a split one). Sets `remaining` once complete. */
  private readHeader(chunk: Uint8Array, off: number): number {
    if (this.hdrHave === 0) {
      const avail = chunk.length - off;
      if (avail >= 2) {
        const hl = headerLen(chunk[off + 1]!);
        if (avail >= hl) {
          this.parseHeader(chunk, off);
          return off + hl;
        }
      }
    }
    // A header split across chunks (rare): gather it byte by byte, never past its end.
    while (off < chunk.length) {
      this.hdr[this.hdrHave++] = chunk[off++]!;
      if (this.hdrHave >= 2 && this.hdrHave === headerLen(this.hdr[1]!)) {
        this.hdrHave = 0;
        this.parseHeader(this.hdr, 0);
        return off;
      }
    }
    return off;
  }

  private parseHeader(h: Uint8Array, p: number): void {
    const b0 = h[p]!;
    const b1 = h[p + 1]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    let n = b1 & 0x7f;
    let q = p + 2;
    if (n === 126) {
      n = (h[q]! << 8) | h[q + 1]!;
      q += 2;
    } else if (n === 127) {
      const hi = ((h[q]! << 24) | (h[q + 1]! << 16) | (h[q + 2]! << 8) | h[q + 3]!) >>> 0;
      const lo = ((h[q + 4]! << 24) | (h[q + 5]! << 16) | (h[q + 6]! << 8) | h[q + 7]!) >>> 0;
      q += 8;
      if (hi >= 0x80000000) return this.fail(1002, 'a 64-bit frame length with the most significant bit set');
      // Beyond 2^53 this is inexact, but far beyond any limit we accept.
      n = hi * 0x100000000 + lo;
    }
    if ((b0 & 0x70) !== 0) return this.fail(1002, 'RSV bits set without a negotiated extension');
    if (masked !== this.expectMask) {
      return this.fail(1002, this.expectMask ? 'an unmasked frame from a client (RFC 6455 §5.1)' : 'a masked frame from a server (RFC 6455 §5.1)');
    }
    if (opcode >= 0x8) {
      if (opcode > 0xa) return this.fail(1002, `reserved control opcode 0x${opcode.toString(16)}`);
      if (!fin) return this.fail(1002, 'a fragmented control frame (RFC 6455 §5.5)');
      if (n > MAX_CONTROL_PAYLOAD) return this.fail(1002, `a control frame of ${n} bytes (limit 125, RFC 6455 §5.5)`);
      this.ctlHave = 0;
    } else if (opcode === WsOpcode.Continuation) {
      if (this.msgOpcode < 0) return this.fail(1002, 'a continuation frame with no message in progress');
      if (this.have + n > this.maxMessageLen) return this.fail(1009, `a message of more than ${this.maxMessageLen} bytes`);
      this.gathering = true;
    } else if (opcode === WsOpcode.Text || opcode === WsOpcode.Binary) {
      if (this.msgOpcode >= 0) return this.fail(1002, 'a new data frame inside a fragmented message (RFC 6455 §5.4)');
      if (n > this.maxMessageLen) return this.fail(1009, `a message of ${n} bytes (limit ${this.maxMessageLen})`);
      this.have = 0;
      // An unfragmented message lying wholly in one chunk is delivered as a view (see readPayload).
      this.gathering = !fin;
      if (!fin) this.msgOpcode = opcode;
    } else {
      return this.fail(1002, `reserved data opcode 0x${opcode.toString(16)}`);
    }
    this.fin = fin;
    this.opcode = opcode;
    this.masked = masked;
    if (masked) {
      this.mask[0] = h[q]!;
      this.mask[1] = h[q + 1]!;
      this.mask[2] = h[q + 2]!;
      this.mask[3] = h[q + 3]!;
    }
    this.framePos = 0;
    this.remaining = n;
  }

  private readPayload(chunk: Uint8Array, off: number): number {
    const take = Math.min(this.remaining, chunk.length - off);
    if (this.opcode >= 0x8) {
      this.unmask(chunk, off, take);
      this.ctl.set(chunk.subarray(off, off + take), this.ctlHave);
      this.ctlHave += take;
    } else if (!this.gathering && this.framePos === 0 && take === this.remaining) {
      // Whole unfragmented message in this chunk: unmask in place and deliver a view.
      this.unmask(chunk, off, take);
      this.remaining = 0;
      off += take;
      this.endFrame(chunk, off - take, take);
      return off;
    } else {
      this.gathering = true;
      if (this.buf.length < this.have + take) this.grow(this.have + take);
      this.unmask(chunk, off, take);
      this.buf.set(chunk.subarray(off, off + take), this.have);
      this.have += take;
    }
    this.remaining -= take;
    off += take;
    if (this.remaining === 0) this.endFrame(chunk, 0, 0);
    return off;
  }

  /** The current frame's payload is complete. `view` is used for an ungathered data message. */
  private endFrame(chunk: Uint8Array, at: number, n: number): void {
    this.remaining = -1;
    const op = this.opcode;
    if (op >= 0x8) {
      this.ev.control(op as WsOpcode, this.ctl.subarray(0, this.ctlHave));
      return;
    }
    if (!this.fin) return; // more fragments to come
    const opcode = op === WsOpcode.Continuation ? this.msgOpcode : op;
    this.msgOpcode = -1;
    this.messages++;
    if (this.gathering) {
      this.gathering = false;
      const m = this.buf.subarray(0, this.have);
      this.have = 0;
      this.ev.message(m, opcode === WsOpcode.Binary);
    } else {
      this.ev.message(chunk.subarray(at, at + n), opcode === WsOpcode.Binary);
    }
  }

  private unmask(b: Uint8Array, off: number, n: number): void {
    if (!this.masked) {
      this.framePos += n;
      return;
    }
    const m = this.mask;
    let j = this.framePos & 3;
    for (let i = off, end = off + n; i < end; i++) {
      b[i]! ^= m[j]!;
      j = (j + 1) & 3;
    }
    this.framePos += n;
  }

  private grow(need: number): void {
    let cap = this.buf.length;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(Math.min(cap, this.maxMessageLen));
    next.set(this.buf.subarray(0, this.have));
    this.buf = next;
  }

  private fail(code: number, reason: string): void {
    this.isFailed = true;
    this.remaining = -1;
    this.pending.length = 0;
    this.ev.error(code, `websocket framing error: the peer sent ${reason}`);
  }
}

/** Header length implied by the second header byte (payload length code and MASK bit). */
function headerLen(b1: number): number {
  const n = b1 & 0x7f;
  return 2 + (n === 126 ? 2 : n === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
}

/** Bytes a frame header takes for a payload of `n` bytes. */
export function webSocketHeaderLen(n: number, masked: boolean): number {
  return 2 + (n < 126 ? 0 : n < 0x10000 ? 2 : 8) + (masked ? 4 : 0);
}

/**
 * Write one final (FIN) frame into `out` at `off`; returns the offset after it. With `maskKey`
 * the payload is masked (client → server frames); `payload` itself is not modified.
 */
export function writeWebSocketFrame(out: Uint8Array, off: number, opcode: WsOpcode, payload: Uint8Array, maskKey: Uint8Array | null = null): number {
  const n = payload.length;
  out[off++] = 0x80 | opcode;
  const mbit = maskKey ? 0x80 : 0;
  if (n < 126) {
    out[off++] = mbit | n;
  } else if (n < 0x10000) {
    out[off++] = mbit | 126;
    out[off++] = n >>> 8;
    out[off++] = n & 0xff;
  } else {
    out[off++] = mbit | 127;
    const hi = Math.floor(n / 0x100000000);
    out[off++] = hi >>> 24;
    out[off++] = (hi >>> 16) & 0xff;
    out[off++] = (hi >>> 8) & 0xff;
    out[off++] = hi & 0xff;
    out[off++] = n >>> 24;
    out[off++] = (n >>> 16) & 0xff;
    out[off++] = (n >>> 8) & 0xff;
    out[off++] = n & 0xff;
  }
  if (maskKey) {
    out.set(maskKey.subarray(0, 4), off);
    off += 4;
    for (let i = 0; i < n; i++) out[off + i] = payload[i]! ^ maskKey[i & 3]!;
  } else {
    out.set(payload, off);
  }
  return off + n;
}

/** One frame in a new buffer. */
export function encodeWebSocketFrame(opcode: WsOpcode, payload: Uint8Array, maskKey: Uint8Array | null = null): Uint8Array {
  const out = new Uint8Array(webSocketHeaderLen(payload.length, maskKey !== null) + payload.length);
  writeWebSocketFrame(out, 0, opcode, payload, maskKey);
  return out;
}

const utf8enc = new TextEncoder();
const utf8dec = new TextDecoder();

/** A close frame's payload: the status code and a UTF-8 reason cut to fit 125 bytes. */
export function encodeClosePayload(code: number, reason = ''): Uint8Array {
  let r = utf8enc.encode(reason);
  if (r.length > MAX_CONTROL_PAYLOAD - 2) r = r.subarray(0, MAX_CONTROL_PAYLOAD - 2);
  const out = new Uint8Array(2 + r.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(r, 2);
  return out;
}

/**
 * Parse a close frame's payload (§5.5.1). An empty payload is code 1005 (no status); a 1-byte
 * payload or a code that may not be sent (§7.4.1: < 1000, 1004-1006, 1015, 1016-2999 unassigned)
 * is null: the caller fails the connection with 1002.
 */
export function parseClosePayload(p: Uint8Array): { code: number; reason: string } | null {
  if (p.length === 0) return { code: WsCloseCode.NoStatus, reason: '' };
  if (p.length === 1) return null;
  const code = (p[0]! << 8) | p[1]!;
  const sendable = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
  if (!sendable) return null;
  return { code, reason: utf8dec.decode(p.subarray(2)) };
}

export interface WebSocketFrameWriterOptions {
  /** Batch buffer size. Default 256 KiB. */
  batchBytes?: number;
  /** Mask every frame with a random key (a client's frames). Default false (server). */
  mask?: boolean;
  /** How a flush is deferred so messages of one tick coalesce. Default queueMicrotask. */
  schedule?: (fn: () => void) => void;
}

/**
 * Coalesces binary messages into few writes, like StreamFrameWriter. `push` copies (so a borrowed
 * rx frame may be passed directly); every chunk handed to `write` is fresh and may be kept.
 */
export class WebSocketFrameWriter {
  frames = 0;
  writes = 0;

  private readonly write: (chunk: Uint8Array) => void;
  private readonly schedule: (fn: () => void) => void;
  private readonly buf: Uint8Array;
  private readonly maskKey: Uint8Array | null;
  private used = 0;
  private scheduled = false;
  private closed = false;

  constructor(write: (chunk: Uint8Array) => void, opts: WebSocketFrameWriterOptions = {}) {
    this.write = write;
    this.schedule = opts.schedule ?? queueMicrotask;
    this.buf = new Uint8Array(Math.max(opts.batchBytes ?? 256 * 1024, 256));
    this.maskKey = opts.mask ? new Uint8Array(4) : null;
  }

  get pendingBytes(): number {
    return this.used;
  }

  /** Queue one message (binary by default). */
  push(payload: Uint8Array, opcode: WsOpcode = WsOpcode.Binary): void {
    if (this.closed) return;
    this.frames++;
    // §5.3: a fresh, unpredictable key per frame.
    if (this.maskKey) crypto.getRandomValues(this.maskKey);
    const n = webSocketHeaderLen(payload.length, this.maskKey !== null) + payload.length;
    if (this.used + n > this.buf.length) this.flush();
    if (n > this.buf.length) {
      this.emit(encodeWebSocketFrame(opcode, payload, this.maskKey));
      return;
    }
    this.used = writeWebSocketFrame(this.buf, this.used, opcode, payload, this.maskKey);
    if (!this.scheduled) {
      this.scheduled = true;
      this.schedule(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  flush(): void {
    if (this.used === 0 || this.closed) return;
    const chunk = this.buf.slice(0, this.used);
    this.used = 0;
    this.emit(chunk);
  }

  /** Flush, then refuse further messages. */
  close(): void {
    this.flush();
    this.closed = true;
  }

  private emit(chunk: Uint8Array): void {
    this.writes++;
    this.write(chunk);
  }
}
