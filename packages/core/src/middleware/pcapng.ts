/**
 * A pcapng writer (draft-ietf-opsawg-pcapng): one Section Header Block, one Interface
 * Description Block (LINKTYPE_ETHERNET, snaplen, if_name, if_tsresol = 10^-6) and one Enhanced
 * Packet Block per frame, carrying the direction in the `epb_flags` option.
 *
 * Direction convention: the capture point is the **guest's NIC**, so the file reads like
 * `tcpdump -i eth0` inside the guest: tx (guest → backend) is *outbound* (epb_flags bits 0-1 =
 * 0b10, tshark "Outbound", tcpdump `Out`) and rx (backend → guest) is *inbound* (0b01, "In").
 *
 * Output goes to a sink `(chunk) => void`, so it works in a browser (collect chunks into a Blob)
 * as well as with a file. Blocks are assembled in a preallocated buffer and handed to the sink
 * when it fills or on `flush()`; every chunk given to the sink is a fresh copy the sink may keep.
 * All blocks are little-endian (the byte-order magic says so; readers swap as needed).
 *
 * Limits: one section, one interface, microsecond timestamps. Frames are written as given: a
 * caller with a virtio-net header passes `start` so the file holds plain Ethernet. A sink that
 * throws stops the capture (counted in `writeErrors`); the data path never sees the exception.
 */

/** epb_flags direction values (bits 0-1). */
export const PcapDirection = {
  Unknown: 0,
  /** Backend → guest (rx), as seen on the guest NIC. */
  Inbound: 1,
  /** Guest → backend (tx), as seen on the guest NIC. */
  Outbound: 2,
} as const;
export type PcapDirection = (typeof PcapDirection)[keyof typeof PcapDirection];

export type PcapSink = (chunk: Uint8Array) => void;

export interface PcapngWriterOptions {
  /** Bytes of each frame kept. Default 262144 (tcpdump's default). */
  snaplen?: number;
  /** Interface name in the IDB. Default "guestnet0". */
  ifName?: string;
  /** Size of the assembly buffer; the sink gets chunks of about this size. Default 65536. */
  bufferBytes?: number;
  /** Clock in microseconds since the Unix epoch (inject for deterministic files). */
  now?: () => number;
  /** shb_userappl. Default "guestnet". */
  userAppl?: string;
}

export const BLOCK_SHB = 0x0a0d0d0a;
export const BLOCK_IDB = 0x00000001;
export const BLOCK_EPB = 0x00000006;
export const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
export const LINKTYPE_ETHERNET = 1;

const OPT_ENDOFOPT = 0;
const OPT_SHB_USERAPPL = 4;
const OPT_IF_NAME = 2;
const OPT_IF_TSRESOL = 9;
const OPT_EPB_FLAGS = 2;

/** EPB fixed part (28) + epb_flags option (8) + opt_endofopt (4) + trailing length (4). */
const EPB_OVERHEAD = 44;

const pad4 = (n: number): number => (n + 3) & ~3;

const defaultNow = (): number => Math.round((performance.timeOrigin + performance.now()) * 1000);

const utf8 = new TextEncoder();

export class PcapngWriter {
  readonly snaplen: number;
  /** Packets written (handed to the buffer). */
  packets = 0;
  /** Bytes handed to the sink so far. */
  bytesFlushed = 0;
  /** Sink failures; after the first one the writer stops. */
  writeErrors = 0;
  /** The sink's exception, if it threw. */
  error: unknown = undefined;

  private readonly sink: PcapSink;
  private readonly now: () => number;
  private readonly bufferBytes: number;
  private buf: Uint8Array;
  private dv: DataView;
  private used = 0;

  constructor(sink: PcapSink, opts: PcapngWriterOptions = {}) {
    this.sink = sink;
    this.snaplen = opts.snaplen ?? 262144;
    this.now = opts.now ?? defaultNow;
    this.bufferBytes = Math.max(opts.bufferBytes ?? 65536, 256);
    this.buf = new Uint8Array(this.bufferBytes);
    this.dv = new DataView(this.buf.buffer);
    this.writeShb(opts.userAppl ?? 'guestnet');
    this.writeIdb(opts.ifName ?? 'guestnet0');
  }

  /**
   * Append one Enhanced Packet Block for `frame[start..]`. Never throws. `tsMicros` defaults to
   * the writer's clock.
   */
  writePacket(frame: Uint8Array, direction: PcapDirection, start = 0, tsMicros = this.now()): void {
    if (this.writeErrors > 0) return;
    const origLen = Math.max(frame.length - start, 0);
    const capLen = Math.min(origLen, this.snaplen);
    const total = EPB_OVERHEAD + pad4(capLen);
    if (!this.reserve(total)) return;
    const dv = this.dv;
    let o = this.used;
    dv.setUint32(o, BLOCK_EPB, true);
    dv.setUint32(o + 4, total, true);
    dv.setUint32(o + 8, 0, true); // interface id
    dv.setUint32(o + 12, Math.floor(tsMicros / 0x1_0000_0000), true);
    dv.setUint32(o + 16, tsMicros >>> 0, true);
    dv.setUint32(o + 20, capLen, true);
    dv.setUint32(o + 24, origLen, true);
    o += 28;
    this.buf.set(start === 0 && capLen === frame.length ? frame : frame.subarray(start, start + capLen), o);
    o += capLen;
    while (o & 3) this.buf[o++] = 0;
    dv.setUint16(o, OPT_EPB_FLAGS, true);
    dv.setUint16(o + 2, 4, true);
    dv.setUint32(o + 4, direction, true);
    dv.setUint32(o + 8, OPT_ENDOFOPT, true);
    dv.setUint32(o + 12, total, true);
    this.used = o + 16;
    this.packets++;
  }

  /** Hand everything buffered to the sink. */
  flush(): void {
    if (this.used === 0 || this.writeErrors > 0) return;
    const chunk = this.buf.slice(0, this.used);
    this.used = 0;
    this.emit(chunk);
  }

  /** Bytes buffered and not yet handed to the sink. */
  get buffered(): number {
    return this.used;
  }

  private emit(chunk: Uint8Array): void {
    try {
      this.sink(chunk);
      this.bytesFlushed += chunk.length;
    } catch (err) {
      this.writeErrors++;
      this.error = err;
    }
  }

  /** Make room for `n` contiguous bytes at `this.used`. False if the writer has failed. */
  private reserve(n: number): boolean {
    if (this.used + n <= this.buf.length) return true;
    this.flush();
    if (this.writeErrors > 0) return false;
    if (n > this.buf.length) {
      // A block larger than the buffer (huge snaplen): grow once; it is flushed like any other.
      this.buf = new Uint8Array(pad4(n));
      this.dv = new DataView(this.buf.buffer);
    }
    return true;
  }

  private writeShb(userAppl: string): void {
    const app = utf8.encode(userAppl);
    const total = 24 + 4 + pad4(app.length) + 4 + 4;
    this.reserve(total);
    const dv = this.dv;
    let o = this.used;
    dv.setUint32(o, BLOCK_SHB, true);
    dv.setUint32(o + 4, total, true);
    dv.setUint32(o + 8, BYTE_ORDER_MAGIC, true);
    dv.setUint16(o + 12, 1, true); // major
    dv.setUint16(o + 14, 0, true); // minor
    dv.setInt32(o + 16, -1, true); // section length: unknown (-1 as a 64-bit value)
    dv.setInt32(o + 20, -1, true);
    o = this.option(o + 24, OPT_SHB_USERAPPL, app);
    dv.setUint32(o, OPT_ENDOFOPT, true);
    dv.setUint32(o + 4, total, true);
    this.used = o + 8;
  }

  private writeIdb(ifName: string): void {
    const name = utf8.encode(ifName);
    const total = 16 + 4 + pad4(name.length) + 8 + 4 + 4;
    this.reserve(total);
    const dv = this.dv;
    let o = this.used;
    dv.setUint32(o, BLOCK_IDB, true);
    dv.setUint32(o + 4, total, true);
    dv.setUint16(o + 8, LINKTYPE_ETHERNET, true);
    dv.setUint16(o + 10, 0, true);
    dv.setUint32(o + 12, this.snaplen, true);
    o = this.option(o + 16, OPT_IF_NAME, name);
    o = this.option(o, OPT_IF_TSRESOL, Uint8Array.of(6)); // 10^-6 s
    dv.setUint32(o, OPT_ENDOFOPT, true);
    dv.setUint32(o + 4, total, true);
    this.used = o + 8;
  }

  private option(o: number, code: number, value: Uint8Array): number {
    this.dv.setUint16(o, code, true);
    this.dv.setUint16(o + 2, value.length, true);
    this.buf.set(value, o + 4);
    o += 4 + value.length;
    while (o & 3) this.buf[o++] = 0;
    return o;
  }
}
