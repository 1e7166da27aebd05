/**
 * netmap-style rings in shared memory: the layout of one switch port ("port region") and the
 * ring protocol both sides speak over it.
 *
 * ## Theory of operation
 * A port region is one contiguous piece of a SharedArrayBuffer (an in-process SAB, or an mmap'd
 * file for the cross-process case). It holds a small header, two rings and their buffers:
 * the **tx ring** carries frames guest → switch, the **rx ring** switch → guest. Each ring is a
 * single-producer / single-consumer array of `slots` slots `{u32 buffer index, u16 length,
 * u16 flags}`, after netmap's `struct netmap_slot`; a frame longer than one buffer spans several
 * slots, all but the last flagged {@link NS_MOREFRAG}.
 *
 * In shared memory each ring stores two indexes, each written by one side only:
 * `prod` (the producer has filled every slot before it) and `cons` (the consumer has released
 * every slot before it). The producer may fill slots up to `cons - 1`: one slot stays reserved,
 * so a full ring (`prod + 1 == cons`) and an empty one (`prod == cons`) look different, and a ring
 * of N slots carries at most N - 1 of them. Each side sees the ring as netmap's user sees it
 * (`head`, `cur`, `tail`, the side owns slots `[head, tail)`):
 *   - producer (netmap tx ring): `head = prod`, `tail = cons - 1`;
 *   - consumer (netmap rx ring): `head = cons`, `tail = prod`.
 * Work is batched as in netmap: the side moves `head` locally over many slots and makes it
 * visible with one {@link NetmapRing.publish} (netmap's txsync/rxsync); {@link NetmapRing.refresh}
 * loads the other side's index, so `tail` moves only on a sync, never under the user's feet.
 *
 * Need-wakeup: each ring header has one flag per side. A side about to sleep sets its flag,
 * re-checks the ring, and only then waits on its doorbell ({@link NetmapRing.armWakeup}); the
 * other side, after publishing, clears the flag and rings the doorbell only if it was set
 * ({@link NetmapRing.publish} returns whether to ring). Both steps are sequentially consistent
 * atomics, so either the sleeper sees the new index on its re-check or the publisher sees the
 * flag: no lost wake-up, and no doorbell at all while both sides are busy.
 *
 * ## Trust
 * The other side may be a hostile process that writes anything anywhere in the region. The
 * geometry is read once at open and kept privately; every index loaded from shared memory is
 * range- and monotonicity-checked; every slot's buffer index and length is checked before a byte
 * is copied. Bad values are counted ({@link RingErrors}) and skipped; nothing on the data path
 * throws or reads outside the region. What a hostile peer can do is garble its own traffic.
 *
 * ## Limits
 * - slots 2..65536 per ring; bufSize 64..65528 (a multiple of 8; lengths are u16).
 * - frames up to {@link MAX_FRAME_LEN} bytes (65535 + Ethernet + VLAN + a 12-byte virtio-net
 *   header) and at most `slots - 1` buffers.
 * - slot and header words are in host byte order: regions are shared between processes on one
 *   host only.
 * - buffer indexes may be swapped between slots as in netmap (any index in the region's pool is
 *   accepted), but the helpers here never swap: they copy (VALE copies too).
 *
 * Not done: netmap's per-slot NS_BUF_CHANGED bookkeeping, extra buffers, host rings, multiple
 * ring pairs per port.
 */
import { ErrorCode, GuestnetError } from '@guestnet/core';

/** Slot flag: the frame continues in the next slot (netmap NS_MOREFRAG). */
export const NS_MOREFRAG = 0x1;

/** The largest frame a ring carries: 65535 + 14 (Ethernet) + 4 (VLAN) + 12 (virtio-net header). */
export const MAX_FRAME_LEN = 65535 + 14 + 4 + 12;

export interface RingGeometry {
  /** Slots per ring (each direction has one ring). */
  slots: number;
  /** Bytes per buffer; a frame longer than this spans several slots. */
  bufSize: number;
}

/** netmap's defaults: 1024 slots of 2048-byte buffers per ring (4 MiB per port). */
export const DEFAULT_GEOMETRY: Readonly<RingGeometry> = Object.freeze({ slots: 1024, bufSize: 2048 });

export const RING_MAGIC = 0x474e4d31; // "1MNG" little-endian: guestnet netmap region v1
export const RING_VERSION = 1;

/**
 * Region layout, byte offsets from the region start (all words 32-bit, host order):
 *
 * | offset | field            | written by | meaning                                          |
 * |-------:|------------------|------------|--------------------------------------------------|
 * |      0 | magic            | creator    | {@link RING_MAGIC}                               |
 * |      4 | version          | creator    | {@link RING_VERSION}                             |
 * |      8 | slots            | creator    | slots per ring                                   |
 * |     12 | bufSize          | creator    | bytes per buffer                                 |
 * |     16 | regionBytes      | creator    | {@link portRegionBytes} of the geometry          |
 * |     20 | vnetHdrLen       | port side  | 0/10/12: virtio-net header on every frame        |
 * |     24 | bell toSwitch    | port side  | doorbell word the switch side waits on           |
 * |     28 | bell toPort      | switch side| doorbell word the port side waits on             |
 * |     32 | state            | both       | bit 0 port side closed, bit 1 switch side closed |
 * |  36-63 | reserved         |            | zero                                             |
 * |     64 | tx ring header   |            | guest → switch (see below)                       |
 * |    128 | rx ring header   |            | switch → guest                                   |
 * |    192 | tx slots         | producer   | `slots` × 8 bytes                                |
 * | +8·N   | rx slots         | producer   | `slots` × 8 bytes                                |
 * | B      | buffers          |            | 2·slots × stride, B = align64(192 + 16·slots),   |
 * |        |                  |            | stride = align64(bufSize); tx slot i starts on   |
 * |        |                  |            | buffer i, rx slot i on buffer slots + i          |
 *
 * Ring header (64 bytes): +0 `prod`, +4 `cons`, +8 producer need-wakeup flag, +12 consumer
 * need-wakeup flag, the rest reserved. Slot (8 bytes): +0 u32 buffer index, +4 u16 length,
 * +6 u16 flags.
 */
export const RegionOffset = {
  magic: 0,
  version: 4,
  slots: 8,
  bufSize: 12,
  regionBytes: 16,
  vnetHdrLen: 20,
  bellToSwitch: 24,
  bellToPort: 28,
  state: 32,
  txRing: 64,
  rxRing: 128,
  slotsStart: 192,
} as const;

/** Ring header fields, byte offsets from the ring header. */
export const RingOffset = { prod: 0, cons: 4, prodWake: 8, consWake: 12 } as const;

/** Bits of the region `state` word. */
export const RegionState = { portClosed: 1, switchClosed: 2 } as const;

const SLOT_BYTES = 8;
const MIN_SLOTS = 2;
const MAX_SLOTS = 65536;
const MIN_BUF = 64;
const MAX_BUF = 65528;
/** Below this many bytes a plain loop copies faster than `set(subarray())` and allocates nothing. */
const SMALL_COPY = 128;

function align64(n: number): number {
  return (n + 63) & ~63;
}

function checkGeometry(g: RingGeometry): void {
  if (!Number.isInteger(g.slots) || g.slots < MIN_SLOTS || g.slots > MAX_SLOTS) {
    throw new GuestnetError(ErrorCode.BadConfig, `netmap: ring slots ${g.slots} is out of range ${MIN_SLOTS}..${MAX_SLOTS}`, {
      hint: 'use e.g. slots=1024',
    });
  }
  if (!Number.isInteger(g.bufSize) || g.bufSize < MIN_BUF || g.bufSize > MAX_BUF || g.bufSize % 8 !== 0) {
    throw new GuestnetError(ErrorCode.BadConfig, `netmap: buffer size ${g.bufSize} must be a multiple of 8 in ${MIN_BUF}..${MAX_BUF}`, {
      hint: 'use e.g. bufsize=2048',
    });
  }
}

function buffersOffset(slots: number): number {
  return align64(RegionOffset.slotsStart + 2 * slots * SLOT_BYTES);
}

/** Bytes one port needs: header, both rings' slots and 2·slots buffers. Multiple of 64. */
export function portRegionBytes(g: RingGeometry): number {
  checkGeometry(g);
  const n = buffersOffset(g.slots) + 2 * g.slots * align64(g.bufSize);
  if (n > 0x7fffffc0) {
    throw new GuestnetError(ErrorCode.BadConfig, `netmap: ${g.slots} slots of ${g.bufSize} bytes need ${n} bytes, more than 2 GiB`, {
      hint: 'use fewer slots or smaller buffers',
    });
  }
  return n;
}

function checkPlacement(mem: SharedArrayBuffer, byteOffset: number, bytes: number): void {
  if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % 64 !== 0) {
    throw new GuestnetError(ErrorCode.BadConfig, `netmap: region offset ${byteOffset} must be a non-negative multiple of 64`);
  }
  if (byteOffset + bytes > mem.byteLength) {
    throw new GuestnetError(ErrorCode.Protocol, `netmap: region of ${bytes} bytes at ${byteOffset} does not fit in ${mem.byteLength} bytes of shared memory`);
  }
}

/**
 * Lay out an empty port region (both rings empty, slot i on buffer i). The creator (the switch,
 * or the pipe) calls this once before anyone opens the region. The magic is written last.
 */
export function formatPortRegion(mem: SharedArrayBuffer, g: RingGeometry, byteOffset = 0): void {
  const bytes = portRegionBytes(g);
  checkPlacement(mem, byteOffset, bytes);
  const w = new Int32Array(mem, byteOffset, buffersOffset(g.slots) >> 2);
  w.fill(0);
  w[RegionOffset.slots >> 2] = g.slots;
  w[RegionOffset.bufSize >> 2] = g.bufSize;
  w[RegionOffset.regionBytes >> 2] = bytes;
  w[RegionOffset.version >> 2] = RING_VERSION;
  const slot0 = RegionOffset.slotsStart >> 2;
  for (let i = 0; i < 2 * g.slots; i++) w[slot0 + 2 * i] = i;
  Atomics.store(w, RegionOffset.magic >> 2, RING_MAGIC);
}

/** Which side of a region a view is for. */
export type RegionSide =
  /** The guest port: produces on tx, consumes rx. */
  | 'port'
  /** The switch: consumes tx, produces on rx (netmap's "kernel" side). */
  | 'switch'
  /**
   * The far end of a pipe: like 'switch' it consumes tx and produces on rx, but its view is
   * named from its own point of view: its `tx` is the region's rx ring, its `rx` the tx ring.
   */
  | 'peer';

/** Counters of what a ring refused from shared memory. Plain fields: read them, never reset. */
export interface RingErrors {
  /** The other side published an index out of range or moving backwards. */
  badIndex: number;
  /** A slot with a buffer index outside the region or a length above bufSize. */
  badSlot: number;
  /** A MOREFRAG chain longer than MAX_FRAME_LEN or than the ring: dropped. */
  badFrame: number;
  /** This side's own head was set outside [head, tail] before a publish: not published. */
  badHead: number;
}

/**
 * One ring as seen by one side. `role` says whether this side fills slots ('producer', netmap
 * tx ring) or drains them ('consumer', netmap rx ring). The side owns slots `[head, tail)`.
 * `head` and `cur` are this side's to move (netmap semantics: `cur` may run ahead of `head`
 * inside the owned range; only `head` is published); `tail` changes only in {@link refresh}.
 */
export class NetmapRing implements RingErrors {
  readonly role: 'producer' | 'consumer';
  readonly numSlots: number;
  readonly bufSize: number;
  /** The whole region as bytes: buffer `i` starts at {@link bufOffset}(i). */
  readonly bytes: Uint8Array;

  head = 0;
  cur = 0;
  tail = 0;

  badIndex = 0;
  badSlot = 0;
  badFrame = 0;
  badHead = 0;

  private readonly words: Int32Array; // the region as 32-bit words (headers, slot buffer indexes)
  private readonly halves: Uint16Array; // the region as 16-bit halves (slot length / flags)
  private readonly prodW: number;
  private readonly consW: number;
  private readonly myWakeW: number;
  private readonly peerWakeW: number;
  private readonly slotW: number; // word index of slot 0's buffer index
  private readonly bufBase: number; // byte offset (in `bytes`) of buffer 0
  private readonly bufStride: number;
  private readonly numBufs: number;
  private readonly firstBuf: number; // the buffer slot i was formatted with is firstBuf + i
  /** The index this side last published (head at the last publish). */
  private published = 0;
  /** The last index of the other side that passed validation. */
  private peerSeen = 0;
  // Result of the last scan() (consumer): slots and bytes of the next complete frame.
  private scanSlots = 0;
  private scanLen = 0;

  constructor(mem: SharedArrayBuffer, regionOffset: number, which: 'tx' | 'rx', role: 'producer' | 'consumer', g: RingGeometry) {
    this.role = role;
    this.numSlots = g.slots;
    this.bufSize = g.bufSize;
    const bytes = portRegionBytes(g);
    this.bytes = new Uint8Array(mem, regionOffset, bytes);
    this.words = new Int32Array(mem, regionOffset, bytes >> 2);
    this.halves = new Uint16Array(mem, regionOffset, bytes >> 1);
    const hdrW = (which === 'tx' ? RegionOffset.txRing : RegionOffset.rxRing) >> 2;
    this.prodW = hdrW + (RingOffset.prod >> 2);
    this.consW = hdrW + (RingOffset.cons >> 2);
    const prodWake = hdrW + (RingOffset.prodWake >> 2);
    const consWake = hdrW + (RingOffset.consWake >> 2);
    this.myWakeW = role === 'producer' ? prodWake : consWake;
    this.peerWakeW = role === 'producer' ? consWake : prodWake;
    this.slotW = (RegionOffset.slotsStart >> 2) + (which === 'tx' ? 0 : 2 * g.slots);
    this.bufBase = buffersOffset(g.slots);
    this.bufStride = align64(g.bufSize);
    this.numBufs = 2 * g.slots;
    this.firstBuf = which === 'tx' ? 0 : g.slots;
    // Pick up where the shared indexes are (a side may reopen a live region).
    const prod = this.loadIndex(this.prodW);
    const cons = this.loadIndex(this.consW);
    if (role === 'producer') {
      this.head = this.cur = this.published = prod;
      this.peerSeen = cons;
      this.tail = this.prev(cons);
    } else {
      this.head = this.cur = this.published = cons;
      this.peerSeen = prod;
      this.tail = prod;
    }
  }

  // ---- netmap user API ------------------------------------------------------------------------

  /** Slots this side owns: `tail - head` modulo the ring size (netmap nm_ring_space). */
  space(): number {
    const d = this.tail - this.head;
    return d < 0 ? d + this.numSlots : d;
  }

  /** The slot after `i` (netmap nm_ring_next). */
  next(i: number): number {
    return i + 1 === this.numSlots ? 0 : i + 1;
  }

  /** Buffer index of slot `i` as stored (untrusted: check it with {@link bufOffset}). */
  slotBufIdx(i: number): number {
    return this.words[this.slotW + 2 * i]! >>> 0;
  }
  slotLen(i: number): number {
    return this.halves[(this.slotW + 2 * i + 1) * 2]!;
  }
  slotFlags(i: number): number {
    return this.halves[(this.slotW + 2 * i + 1) * 2 + 1]!;
  }
  setSlot(i: number, len: number, flags: number): void {
    const h = (this.slotW + 2 * i + 1) * 2;
    this.halves[h] = len;
    this.halves[h + 1] = flags;
  }
  /** Byte offset in {@link bytes} of buffer `idx`, or -1 if the index is outside the region. */
  bufOffset(idx: number): number {
    return idx >= 0 && idx < this.numBufs ? this.bufBase + idx * this.bufStride : -1;
  }

  /**
   * Make `head` visible to the other side (the publishing half of netmap's txsync/rxsync).
   * Returns true when the other side is asleep waiting for this: ring its doorbell (once per
   * batch). A `head` moved outside the owned range is refused and counted in `badHead`.
   */
  publish(): boolean {
    const h = this.head;
    if (h !== this.published) {
      // head may only move forward within [published, tail].
      if (!(h >= 0 && h < this.numSlots) || this.dist(this.published, h) > this.dist(this.published, this.tail)) {
        this.badHead++;
        this.head = this.cur = this.published;
        return false;
      }
      Atomics.store(this.words, this.role === 'producer' ? this.prodW : this.consW, h);
      this.published = h;
    }
    if (this.cur !== h && this.dist(h, this.cur) > this.dist(h, this.tail)) this.cur = h;
    return Atomics.load(this.words, this.peerWakeW) !== 0 && Atomics.exchange(this.words, this.peerWakeW, 0) !== 0;
  }

  /**
   * Load the other side's index and move `tail` (the loading half of txsync/rxsync). An index out
   * of range or moving backwards is ignored and counted in `badIndex`. Returns {@link space}.
   */
  refresh(): number {
    const producer = this.role === 'producer';
    const v = Atomics.load(this.words, producer ? this.consW : this.prodW);
    if (v !== this.peerSeen) {
      // Producer: cons may advance up to what we published. Consumer: prod may advance up to
      // one slot short of our released index (the reserved slot).
      const base = this.peerSeen;
      const limit = producer ? this.dist(base, this.published) : this.dist(base, this.prev(this.published));
      if (!(v >= 0 && v < this.numSlots) || this.dist(base, v) > limit) {
        this.badIndex++;
      } else {
        this.peerSeen = v;
        this.tail = producer ? this.prev(v) : v;
      }
    }
    return this.space();
  }

  /** publish() then refresh(): netmap's txsync / rxsync. Returns whether to ring the peer. */
  sync(): boolean {
    const kick = this.publish();
    this.refresh();
    return kick;
  }

  /**
   * About to sleep: set this side's need-wakeup flag, then re-check the ring. Returns true if
   * there is work after all (a consumer has a frame's first slot; a producer has at least
   * `minSpace` free slots); then the flag is cleared again and the caller should not sleep.
   * Returns false when it is safe to wait for the doorbell.
   */
  armWakeup(minSpace = 1): boolean {
    Atomics.store(this.words, this.myWakeW, 1);
    const s = this.refresh();
    const ready = this.role === 'producer' ? s >= minSpace : s > 0;
    if (ready) Atomics.store(this.words, this.myWakeW, 0);
    return ready;
  }

  /** Clear this side's need-wakeup flag (it is busy again). */
  disarmWakeup(): void {
    if (Atomics.load(this.words, this.myWakeW) !== 0) Atomics.store(this.words, this.myWakeW, 0);
  }

  // ---- frame helpers (no allocation for frames under 128 bytes per buffer) ---------------------

  /** Slots a frame of `len` bytes needs. */
  slotsFor(len: number): number {
    return len <= this.bufSize ? 1 : Math.ceil(len / this.bufSize);
  }

  /**
   * Producer: copy `len` bytes of `src` from `off` into slots at `head`, chaining with
   * NS_MOREFRAG, and move `head`/`cur` past them. Not visible until {@link publish}. Refreshes
   * `tail` once if the owned space is short. Returns false, writing nothing, when the frame does
   * not fit now (ring full) and also when it can never fit (callers check {@link canCarry}).
   */
  writeFrame(src: Uint8Array, off: number, len: number): boolean {
    if (len <= 0 || len > MAX_FRAME_LEN || off < 0 || off + len > src.length) return false;
    const need = this.slotsFor(len);
    if (this.space() < need && this.refresh() < need) return false;
    let k = this.head;
    let rem = len;
    let p = off;
    while (rem > 0) {
      let o = this.bufOffset(this.slotBufIdx(k));
      if (o < 0) {
        // The peer scribbled on a slot we own: put back the buffer the slot was formatted with.
        this.badSlot++;
        this.words[this.slotW + 2 * k] = this.firstBuf + k;
        o = this.bufOffset(this.firstBuf + k);
      }
      const n = rem < this.bufSize ? rem : this.bufSize;
      copyBytes(src, p, this.bytes, o, n);
      rem -= n;
      p += n;
      this.setSlot(k, n, rem > 0 ? NS_MOREFRAG : 0);
      k = this.next(k);
    }
    this.head = this.cur = k;
    return true;
  }

  /** Whether a frame of `len` bytes could ever fit this ring (length and slot count). */
  canCarry(len: number): boolean {
    return len > 0 && len <= MAX_FRAME_LEN && this.slotsFor(len) <= this.numSlots - 1;
  }

  /**
   * Consumer: the length of the next complete frame at `head`, or 0 if none is complete yet.
   * Broken frames in front of it (bad slot, chain too long) are skipped and counted.
   */
  peekFrameLen(): number {
    return this.scan();
  }

  /**
   * Consumer: copy the next complete frame into `dst` at `dstOff` and move `head` past it (release
   * with {@link publish}). Returns its length, 0 if no complete frame is waiting, or -1 if the
   * frame did not fit in `dst` (it is consumed and dropped; the caller counts it).
   */
  readFrame(dst: Uint8Array, dstOff = 0): number {
    const len = this.scan();
    if (len === 0) return 0;
    if (len > dst.length - dstOff) {
      this.skipScanned();
      return -1;
    }
    let k = this.head;
    let p = dstOff;
    for (let s = 0; s < this.scanSlots; s++) {
      // Re-read and re-check: a hostile producer may have changed the slot since the scan.
      const o = this.bufOffset(this.slotBufIdx(k));
      let n = this.slotLen(k);
      if (n > this.bufSize) n = this.bufSize;
      if (p + n > dstOff + len) n = dstOff + len - p;
      if (o >= 0 && n > 0) copyBytes(this.bytes, o, dst, p, n);
      p += n;
      k = this.next(k);
    }
    this.skipScanned();
    return p - dstOff;
  }

  /**
   * Consumer: skip the next complete frame without reading it. Returns its length, 0 if none.
   */
  dropFrame(): number {
    const len = this.scan();
    if (len > 0) this.skipScanned();
    return len;
  }

  /**
   * Consumer, zero-copy: after {@link peekFrameLen} returned a frame that sits in one slot, the
   * byte offset of its data in {@link bytes}; -1 if the frame spans several slots. Release it with
   * {@link dropFrame}.
   */
  singleSlotOffset(): number {
    if (this.scanSlots !== 1) return -1;
    return this.bufOffset(this.slotBufIdx(this.head));
  }

  // ---- internals ------------------------------------------------------------------------------

  private scan(): number {
    this.scanSlots = 0;
    this.scanLen = 0;
    for (;;) {
      let avail = this.space();
      if (avail === 0) avail = this.refresh();
      if (avail === 0) return 0;
      let k = this.head;
      let len = 0;
      let slots = 0;
      let bad = false;
      let complete = false;
      while (slots < avail) {
        const n = this.slotLen(k);
        const flags = this.slotFlags(k);
        slots++;
        if (this.bufOffset(this.slotBufIdx(k)) < 0 || n > this.bufSize) bad = true;
        len += n;
        k = this.next(k);
        if ((flags & NS_MOREFRAG) === 0) {
          complete = true;
          break;
        }
        if (len > MAX_FRAME_LEN) break;
      }
      if (!complete) {
        if (len <= MAX_FRAME_LEN && slots < this.numSlots - 1) {
          // The rest of the frame is not published yet; look again after a refresh.
          if (this.refresh() > avail) continue;
          return 0;
        }
        // A chain that can never end (longer than a frame or than the ring): drop it.
        this.badFrame++;
        this.head = this.cur = k;
        continue;
      }
      if (bad || len === 0 || len > MAX_FRAME_LEN) {
        if (bad) this.badSlot++;
        else this.badFrame++;
        this.head = this.cur = k;
        continue;
      }
      this.scanSlots = slots;
      this.scanLen = len;
      return len;
    }
  }

  private skipScanned(): void {
    let k = this.head;
    for (let s = 0; s < this.scanSlots; s++) k = this.next(k);
    this.head = this.cur = k;
    this.scanSlots = 0;
    this.scanLen = 0;
  }

  private loadIndex(w: number): number {
    const v = Atomics.load(this.words, w);
    if (v >= 0 && v < this.numSlots) return v;
    this.badIndex++;
    return 0;
  }

  private prev(i: number): number {
    return i === 0 ? this.numSlots - 1 : i - 1;
  }

  /** Slots from `a` forward to `b`. */
  private dist(a: number, b: number): number {
    const d = b - a;
    return d < 0 ? d + this.numSlots : d;
  }
}

/** Copy without allocating for small chunks; `set(subarray)` (one view object) for large ones. */
export function copyBytes(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number, n: number): void {
  if (n < SMALL_COPY) {
    for (let i = 0; i < n; i++) dst[dstOff + i] = src[srcOff + i]!;
  } else {
    dst.set(src.subarray(srcOff, srcOff + n), dstOff);
  }
}

/** One port's rings, as one side sees them. */
export interface PortRegion {
  readonly geometry: RingGeometry;
  /** The ring this side sends on ('port': guest → switch; 'switch': the same ring, consumed). */
  readonly tx: NetmapRing;
  /** The ring this side receives on ('port': switch → guest; 'switch': the same ring, produced). */
  readonly rx: NetmapRing;
  readonly mem: SharedArrayBuffer;
  readonly byteOffset: number;
  readonly side: RegionSide;
  /** Byte offsets in `mem` of the doorbell word this side rings and the one it waits on. */
  readonly bellOut: number;
  readonly bellIn: number;
  /** The virtio-net header length the port side declared (0 if the word holds garbage). */
  vnetHdrLen(): 0 | 10 | 12;
  /** Port side: declare the virtio-net header length of every frame in both rings. */
  setVnetHdrLen(n: 0 | 10 | 12): void;
  /** Mark this side closed (the other side sees it in {@link peerClosed}). */
  markClosed(): void;
  /** Whether the other side has marked the region closed. */
  peerClosed(): boolean;
}

/**
 * Open a formatted region. Validates magic, version and geometry (throws a GuestnetError with
 * code GUESTNET_PROTOCOL on mismatch); after that the geometry is private and the data path
 * trusts nothing else in the region.
 *
 * For side 'switch', `tx` is the guest → switch ring seen as its consumer and `rx` the switch →
 * guest ring seen as its producer. For side 'peer' (the far end of a pipe) the rings are swapped
 * so that `tx` is the ring it produces on and `rx` the one it consumes.
 */
export function openPortRegion(mem: SharedArrayBuffer, byteOffset = 0, side: RegionSide = 'port'): PortRegion {
  checkPlacement(mem, byteOffset, RegionOffset.slotsStart);
  const w = new Int32Array(mem, byteOffset, RegionOffset.slotsStart >> 2);
  const magic = Atomics.load(w, RegionOffset.magic >> 2);
  if (magic !== RING_MAGIC) {
    throw new GuestnetError(ErrorCode.Protocol, `netmap: no port region at offset ${byteOffset} (magic 0x${(magic >>> 0).toString(16)})`, {
      hint: 'the region must be formatted with formatPortRegion() before it is opened',
    });
  }
  const version = w[RegionOffset.version >> 2]!;
  if (version !== RING_VERSION) {
    throw new GuestnetError(ErrorCode.Protocol, `netmap: port region version ${version}, this build speaks ${RING_VERSION}`, {
      hint: 'run the same guestnet version on both sides of the switch',
    });
  }
  const geometry: RingGeometry = { slots: w[RegionOffset.slots >> 2]!, bufSize: w[RegionOffset.bufSize >> 2]! };
  let bytes: number;
  try {
    bytes = portRegionBytes(geometry);
  } catch (cause) {
    throw new GuestnetError(ErrorCode.Protocol, `netmap: port region has a bad geometry (${geometry.slots} × ${geometry.bufSize})`, { cause });
  }
  if (w[RegionOffset.regionBytes >> 2] !== bytes) {
    throw new GuestnetError(ErrorCode.Protocol, `netmap: port region size field ${w[RegionOffset.regionBytes >> 2]} does not match its geometry (${bytes})`);
  }
  checkPlacement(mem, byteOffset, bytes);
  return new Region(mem, byteOffset, geometry, side, w);
}

class Region implements PortRegion {
  readonly geometry: RingGeometry;
  readonly tx: NetmapRing;
  readonly rx: NetmapRing;
  readonly mem: SharedArrayBuffer;
  readonly byteOffset: number;
  readonly side: RegionSide;
  readonly bellOut: number;
  readonly bellIn: number;
  private readonly w: Int32Array;

  constructor(mem: SharedArrayBuffer, byteOffset: number, geometry: RingGeometry, side: RegionSide, w: Int32Array) {
    this.mem = mem;
    this.byteOffset = byteOffset;
    this.geometry = Object.freeze({ ...geometry });
    this.side = side;
    this.w = w;
    if (side === 'port') {
      this.tx = new NetmapRing(mem, byteOffset, 'tx', 'producer', geometry);
      this.rx = new NetmapRing(mem, byteOffset, 'rx', 'consumer', geometry);
      this.bellOut = byteOffset + RegionOffset.bellToSwitch;
      this.bellIn = byteOffset + RegionOffset.bellToPort;
    } else {
      const txRing = new NetmapRing(mem, byteOffset, 'tx', 'consumer', geometry);
      const rxRing = new NetmapRing(mem, byteOffset, 'rx', 'producer', geometry);
      this.tx = side === 'switch' ? txRing : rxRing;
      this.rx = side === 'switch' ? rxRing : txRing;
      this.bellOut = byteOffset + RegionOffset.bellToPort;
      this.bellIn = byteOffset + RegionOffset.bellToSwitch;
    }
  }

  vnetHdrLen(): 0 | 10 | 12 {
    const v = Atomics.load(this.w, RegionOffset.vnetHdrLen >> 2);
    return v === 10 || v === 12 ? v : 0;
  }
  setVnetHdrLen(n: 0 | 10 | 12): void {
    Atomics.store(this.w, RegionOffset.vnetHdrLen >> 2, n);
  }
  markClosed(): void {
    Atomics.or(this.w, RegionOffset.state >> 2, this.side === 'port' ? RegionState.portClosed : RegionState.switchClosed);
  }
  peerClosed(): boolean {
    const s = Atomics.load(this.w, RegionOffset.state >> 2);
    return (s & (this.side === 'port' ? RegionState.switchClosed : RegionState.portClosed)) !== 0;
  }
}
