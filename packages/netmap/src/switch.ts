/**
 * ValeSwitch: a learning Ethernet switch over netmap-style port regions, after netmap's VALE.
 *
 * ## Theory of operation
 * Each port is a port region (ring.ts) whose tx ring the switch drains and whose rx ring it fills,
 * plus two doorbells. Forwarding is batched in rounds: a doorbell (or a pending port) schedules
 * one round (`setImmediate`); a round drains up to `batch` frames from every pending port's tx
 * ring, copies each frame into its destination rx rings (VALE copies too), then publishes every
 * touched ring once and rings each destination's doorbell at most once — and only if that side
 * asked for a wakeup (need-wakeup flags, ring.ts). Ports still holding frames keep the next
 * round scheduled; idle ports arm their wakeup and cost nothing.
 *
 * Learning: the source MAC of every frame (unless multicast) is recorded with its port and the
 * time of the round; entries older than `agingMs` (default 300 s, as Linux bridges and VALE's
 * users expect) are ignored and replaced. Broadcast, multicast and unknown or aged unicast are
 * flooded to every other port; a frame never goes back out of its ingress port (a unicast frame
 * whose destination was learnt on the ingress port is dropped as `same-port`). Detaching a port
 * forgets the MACs learnt on it. A port whose guest side closes is detached once the frames it
 * published before closing have been forwarded.
 *
 * Flow control: flooded frames to a full rx ring are dropped (`rx-ring-full`). A *unicast* frame
 * to a full rx ring holds back its source ring (the frame stays in the source's tx ring, so the
 * sender sees `queued` and waits for drain) — for as long as the destination keeps draining. A
 * destination that makes no progress for `stallMs` (default 250 ms: long enough for a busy thread on a loaded host to get scheduled) is stalled: frames to it are
 * dropped and counted at once, so a port whose guest stopped reading costs the others at most one
 * `stallMs` pause per source, never a lasting stall. This is a departure from VALE (which always
 * drops) so that two ports under load lose nothing while the receiver drains.
 *
 * Uplinks: {@link ValeSwitch.attachBackend} makes a port out of any NetBackend. Frames the
 * backend delivers enter the switch at once (never held back: a push source cannot be); frames
 * switched to it go through a private rx ring and are handed to `backend.send`; after `queued`
 * the pump waits for the backend's drain, and the ring in between absorbs bursts (then the stall
 * rule above applies).
 *
 * Virtio-net headers and offloads (after VALE's `bdg_mismatch_datapath`): each port declares its
 * header length (0/10/12, region word 20) and may declare the offloads it accepts (region word
 * 36, {@link setPortOffloads}; a port with a header that declares nothing is taken to accept
 * every offload, as before). A frame whose header asks for nothing (no NEEDS_CSUM, no GSO) only
 * gets its header stripped, zero-filled or resized. An offloaded frame (NEEDS_CSUM, or a
 * TSO/USO super-frame) passes unchanged — header resized if need be — to every port that accepts
 * those offloads; for all the others it is finalised ONCE per frame in software
 * (@guestnet/wire `finalizeVirtioNet`: checksum completed, super-frame cut into gso_size
 * segments with their own IP/TCP fields and checksums) and each resulting frame is copied to
 * each of them (with a zero header if they have one). Malformed offload headers drop at the
 * source as `offload-<reason>`. Uplinks negotiate a 12-byte header with csum/tso4/tso6 when the
 * backend can ({@link ValeSwitch.attachBackend}), so guest TSO frames reach e.g. slirp whole and
 * are cut only on the way to ports without TSO. A unicast frame to be segmented is held back
 * unless its destination has room for all segments (the stall rule applies as usual).
 *
 * Counters are from the switch's point of view: `rx*` = frames the switch took from the port
 * (the guest sent), `tx*` = frames the switch put on the port.
 *
 * Limits: ports 0..253 (netmap's NM_BDG_MAXPORTS is 254); 65536 learnt MACs (more are not
 * learnt and flood); one ring pair per port. Not done: VLAN-aware forwarding, STP, port mirroring,
 * netmap's lookup-function hook, per-port MAC limits.
 */
import { ErrorCode, GuestnetError, Verdict, type BackendEvents, type Capabilities, type NetBackend, type Offloads } from '@guestnet/core';
import { GSO_STATUS_NAMES, GsoStatus, VirtioNetFlags, VirtioNetGso, finalizeVirtioNet } from '@guestnet/wire';
import { MAX_FRAME_LEN, formatPortRegion, openPortRegion, portRegionBytes, type NetmapRing, type PortRegion, type RingGeometry } from './ring.ts';
import type { Doorbell } from './doorbell.ts';

export const MAX_PORTS = 254;
export const DEFAULT_AGING_MS = 300_000;
export const DEFAULT_STALL_MS = 250;
const DEFAULT_BATCH = 512;
const MAX_MACS = 65536;
/** Room before the frame in the scratch buffer, so a virtio-net header can be prefixed in place. */
const HEADROOM = 16;

/**
 * Region word where the port side may declare the offloads its user accepts (byte offset 36: the
 * first word ring.ts v1 leaves reserved and zero, so older port sides declare nothing).
 */
export const PORT_OFFLOADS_OFFSET = 36;
/** Bits of the offloads word. `DECLARED` tells a declaration apart from the reserved zero. */
export const PortOffload = { CSUM: 1, TSO4: 2, TSO6: 4, ECN: 8, UFO: 16, DECLARED: 0x100 } as const;
const ALL_OFFLOADS = PortOffload.CSUM | PortOffload.TSO4 | PortOffload.TSO6 | PortOffload.ECN | PortOffload.UFO;
/** A gso_type nobody accepts (unknown values): such frames go to finalizeVirtioNet, which drops them. */
const UNKNOWN_GSO = 0x80;

/** The offloads bit mask of an {@link Offloads} record. */
export function portOffloadMask(o: Offloads): number {
  return (
    (o.csum ? PortOffload.CSUM : 0) |
    (o.tso4 ? PortOffload.TSO4 : 0) |
    (o.tso6 ? PortOffload.TSO6 : 0) |
    (o.ecn ? PortOffload.ECN : 0) |
    (o.ufo ? PortOffload.UFO : 0)
  );
}

/**
 * Port side: declare the offloads the port's user accepts on frames the switch delivers (call it
 * whenever capabilities change, next to `setVnetHdrLen`). Without a declaration a port with a
 * virtio-net header is assumed to accept every offload.
 */
export function setPortOffloads(region: PortRegion, o: Offloads): void {
  const w = new Int32Array(region.mem, region.byteOffset + PORT_OFFLOADS_OFFSET, 1);
  Atomics.store(w, 0, PortOffload.DECLARED | portOffloadMask(o));
}

export interface ValeSwitchOptions {
  /** How long a learnt MAC stays valid without traffic from it. Default 300 000 ms. */
  agingMs?: number;
  /** How long a unicast destination may keep its rx ring full before its frames drop. Default 250 ms. */
  stallMs?: number;
  /** Frames taken from one port per round (fairness between ports). Default 512. */
  batch?: number;
  /** The clock, in milliseconds (tests inject one). Default `performance.now`. */
  now?: () => number;
  /** Geometry of the private ring in front of each uplink backend. Default 1024 × 2048. */
  uplinkGeometry?: RingGeometry;
  /** Called after a port was detached (by detach(), by its guest closing, or by close()). */
  onDetach?: (port: number, last: SwitchPortStats) => void;
}

/** Counters of one port, from the switch's point of view (rx = from the port, tx = to it). */
export interface SwitchPortStats {
  port: number;
  kind: 'region' | 'backend';
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  drops: Record<string, number>;
}

/** Software offload work done for ports that do not take offloads (whole switch). */
export interface SwitchOffloadStats {
  /** Super-frames cut into segments (once per frame, whatever the number of destinations). */
  segmented: number;
  /** Segments those produced. */
  segments: number;
  /** Frames whose partial checksum was completed (no segmentation). */
  checksummed: number;
  /** Offloaded frames dropped as malformed / unsupported (also in the source's drops). */
  dropped: number;
}

export interface SwitchStats {
  name: string;
  ports: SwitchPortStats[];
  macs: number;
  rounds: number;
  offload: SwitchOffloadStats;
}

export interface PortHandle {
  readonly port: number;
  readonly switchName: string;
  /** Detach the port (as ValeSwitch.detach). Idempotent. */
  detach(): void;
  stats(): SwitchPortStats;
}

/** Drop reasons counted per port. */
const DropReason = {
  ringFull: 'rx-ring-full',
  tooBig: 'too-big',
  runt: 'runt',
  samePort: 'same-port',
  badSlot: 'bad-slot',
  badIndex: 'bad-index',
  badFrame: 'bad-frame',
  uplinkDropped: 'uplink-dropped',
} as const;

interface LearnEntry {
  port: number;
  seen: number;
}

class Port {
  readonly index: number;
  readonly kind: 'region' | 'backend';
  readonly region: PortRegion; // switch-side view
  /** Guest → switch ring (we consume). */
  readonly from: NetmapRing;
  /** Switch → guest ring (we produce). */
  readonly to: NetmapRing;
  readonly toPort: Doorbell;
  readonly fromPort: Doorbell | null;
  attached = true;
  /** The guest side closed: forward what it sent, then detach. */
  closing = false;
  pending = false; // frames may wait in `from`
  blocked = false; // head-of-line frame waits for a full unicast destination
  dirty = false; // `to` has unpublished frames
  released = false; // `from` has unpublished releases
  fullSince = -1; // when `to` was first found full (-1: not full)
  rxFrames = 0;
  rxBytes = 0;
  txFrames = 0;
  txBytes = 0;
  readonly drops: Record<string, number> = Object.create(null);
  // Uplink only.
  backend: NetBackend | null = null;
  pumpRing: NetmapRing | null = null; // port-side view of `to`
  pumpBuf: Uint8Array | null = null;
  waitDrain = false;
  closeBackend = false;
  /** The uplink backend's virtio-net header length, read once at attach. */
  uplinkVnet = 0;
  /** The uplink backend's offloads ({@link PortOffload} bits), read once at attach. */
  uplinkOffloads = 0;
  /** Region ports: the offloads word the port side may declare. */
  readonly offWord: Int32Array | null;

  constructor(index: number, kind: 'region' | 'backend', region: PortRegion, toPort: Doorbell, fromPort: Doorbell | null) {
    this.index = index;
    this.kind = kind;
    this.region = region;
    this.from = region.tx;
    this.to = region.rx;
    this.toPort = toPort;
    this.fromPort = fromPort;
    this.offWord = kind === 'region' ? new Int32Array(region.mem, region.byteOffset + PORT_OFFLOADS_OFFSET, 1) : null;
  }

  vnet(): number {
    return this.kind === 'backend' ? this.uplinkVnet : this.region.vnetHdrLen();
  }

  /** Offloads accepted on frames delivered to this port, given its header length `hd`. */
  accepts(hd: number): number {
    if (hd === 0) return 0;
    if (this.offWord === null) return this.uplinkOffloads;
    const w = Atomics.load(this.offWord, 0);
    return (w & PortOffload.DECLARED) !== 0 ? w & ALL_OFFLOADS : ALL_OFFLOADS;
  }

  drop(reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port >= MAX_PORTS) {
    throw new GuestnetError(ErrorCode.BadConfig, `switch port ${port} is out of range 0..${MAX_PORTS - 1}`, {
      hint: `a VALE switch has ${MAX_PORTS} ports numbered 0..${MAX_PORTS - 1} (e.g. vale0:1)`,
    });
  }
}

export class ValeSwitch {
  readonly name: string;
  private readonly agingMs: number;
  private readonly stallMs: number;
  private readonly batch: number;
  private readonly now: () => number;
  private readonly uplinkGeometry: RingGeometry;
  private readonly onDetach: ((port: number, last: SwitchPortStats) => void) | undefined;
  private readonly ports: (Port | undefined)[] = new Array(MAX_PORTS).fill(undefined);
  /** Attached ports, dense, in attach order (the round's iteration order). */
  private active: Port[] = [];
  private readonly dirty: Port[] = [];
  private readonly macs = new Map<number, LearnEntry>();
  private readonly scratch = new Uint8Array(HEADROOM + MAX_FRAME_LEN);
  /** The source frame's virtio-net header (zeros if it has none), rewritten per destination. */
  private readonly srcHdr = new Uint8Array(12);
  /** Output of finalizeVirtioNet: one finished frame at a time, with room for a header before it. */
  private readonly fin = new Uint8Array(HEADROOM + MAX_FRAME_LEN);
  /** Destinations that need the software-finalised frame (the first `finN`). */
  private readonly finDests: Port[] = [];
  private finN = 0;
  private finOut = 0;
  private readonly offload: SwitchOffloadStats = { segmented: 0, segments: 0, checksummed: 0, dropped: 0 };
  private readonly emitFin = (b: Uint8Array, off: number, n: number): void => {
    this.finOut++;
    for (let i = 0; i < this.finN; i++) {
      const d = this.finDests[i]!;
      const hd = d.vnet();
      for (let k = 1; k <= hd; k++) b[off - k] = 0;
      this.put(d, b, off - hd, n + hd, false);
    }
  };
  private roundScheduled = false;
  private flushScheduled = false;
  private stallTimer: ReturnType<typeof setTimeout> | null = null;
  private rounds = 0;
  private closed = false;
  private roundNow = 0;
  private start = 0; // rotating first port of a round, for fairness
  private readonly runRound = (): void => {
    this.roundScheduled = false;
    this.round();
  };
  private readonly runFlush = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  constructor(name: string, opts: ValeSwitchOptions = {}) {
    this.name = name;
    this.agingMs = opts.agingMs ?? DEFAULT_AGING_MS;
    this.stallMs = opts.stallMs ?? DEFAULT_STALL_MS;
    this.batch = opts.batch ?? DEFAULT_BATCH;
    this.now = opts.now ?? (() => performance.now());
    this.uplinkGeometry = opts.uplinkGeometry ?? { slots: 1024, bufSize: 2048 };
    this.onDetach = opts.onDetach;
    if (!(this.agingMs > 0) || !(this.stallMs >= 0) || !(this.batch >= 1)) {
      throw new GuestnetError(ErrorCode.BadConfig, 'switch: agingMs must be > 0, stallMs >= 0, batch >= 1');
    }
  }

  /** Ports in use. */
  get portCount(): number {
    return this.active.length;
  }

  /** Whether `port` is attached. */
  has(port: number): boolean {
    return this.ports[port] !== undefined;
  }

  /** The lowest free port number, or -1 if all 254 are taken. */
  freePort(): number {
    for (let i = 0; i < MAX_PORTS; i++) if (!this.ports[i]) return i;
    return -1;
  }

  /**
   * Attach a port region (any side's view of it; the switch opens its own). `bells.toPort` is
   * rung when the port has frames / space, `bells.fromPort` is waited on for the port's kicks.
   * Throws GUESTNET_BAD_CONFIG for a port out of range, GUESTNET_EXISTS if it is taken.
   */
  attachRegion(port: number, region: PortRegion, bells: { toPort: Doorbell; fromPort: Doorbell }): PortHandle {
    this.checkAttach(port);
    const view = region.side === 'switch' ? region : openPortRegion(region.mem, region.byteOffset, 'switch');
    const p = new Port(port, 'region', view, bells.toPort, bells.fromPort);
    this.add(p);
    bells.fromPort.onRing(() => this.kicked(p));
    this.kicked(p);
    return this.handle(p);
  }

  /**
   * Make `port` an uplink to `backend`: the switch initialises it (push mode) and, unless
   * `closeOnDetach` is false, closes it when the port is detached or the switch closes.
   * With `vnetHdr: 'auto'` (default) and a backend still without a virtio-net header, the switch
   * offers it a 12-byte header (else 10) with csum/tso4/tso6 — whatever it grants is used, so
   * offloaded frames from guests pass to it whole and its own TSO frames are cut only for ports
   * without TSO. `'off'` (or a backend already negotiated by the caller) keeps its settings.
   */
  async attachBackend(port: number, backend: NetBackend, opts: { closeOnDetach?: boolean; vnetHdr?: 'auto' | 'off' } = {}): Promise<PortHandle> {
    this.checkAttach(port);
    const caps = (opts.vnetHdr ?? 'auto') === 'auto' ? offerOffloads(backend) : backend.capabilities();
    const g = this.uplinkGeometry;
    const mem = new SharedArrayBuffer(portRegionBytes(g));
    formatPortRegion(mem, g);
    const view = openPortRegion(mem, 0, 'switch');
    const pumpSide = openPortRegion(mem, 0, 'port');
    let p: Port;
    const bell: Doorbell = {
      ring: () => this.schedulePump(p),
      onRing: () => {},
      close: () => {},
    };
    p = new Port(port, 'backend', view, bell, null);
    p.backend = backend;
    p.pumpRing = pumpSide.rx;
    p.pumpBuf = new Uint8Array(MAX_FRAME_LEN);
    p.closeBackend = opts.closeOnDetach ?? true;
    p.uplinkVnet = caps.vnetHdrLen;
    p.uplinkOffloads = caps.vnetHdrLen > 0 ? portOffloadMask(caps.offloads) : 0;
    pumpSide.setVnetHdrLen(p.uplinkVnet as 0 | 10 | 12);
    this.add(p);
    p.pumpRing.armWakeup();
    const events: BackendEvents = {
      drain: () => {
        p.waitDrain = false;
        this.schedulePump(p);
      },
      error: () => this.detach(port),
    };
    try {
      await backend.init((frame) => this.fromBackend(p, frame), events);
    } catch (err) {
      if (this.ports[port] === p) this.remove(p);
      throw err;
    }
    // A backend may learn what it can really do only when it opens its device (a TAP whose
    // kernel lacks an offload): take what is in force now.
    const now = backend.capabilities();
    p.uplinkVnet = now.vnetHdrLen;
    p.uplinkOffloads = now.vnetHdrLen > 0 ? portOffloadMask(now.offloads) : 0;
    pumpSide.setVnetHdrLen(p.uplinkVnet as 0 | 10 | 12);
    return this.handle(p);
  }

  /** Detach a port: frames in flight to it are lost, MACs learnt on it forgotten. Idempotent. */
  detach(port: number): void {
    const p = this.ports[port];
    if (!p) return;
    this.remove(p);
  }

  stats(): SwitchStats {
    return { name: this.name, ports: this.active.map((p) => this.statsOf(p)), macs: this.macs.size, rounds: this.rounds, offload: { ...this.offload } };
  }

  /** Counters of one attached port, or undefined. */
  portStats(port: number): SwitchPortStats | undefined {
    const p = this.ports[port];
    return p ? this.statsOf(p) : undefined;
  }

  private statsOf(p: Port): SwitchPortStats {
    const drops: Record<string, number> = { ...p.drops };
    const r = p.from;
    if (r.badSlot) drops[DropReason.badSlot] = r.badSlot;
    if (r.badIndex + p.to.badIndex) drops[DropReason.badIndex] = r.badIndex + p.to.badIndex;
    if (r.badFrame) drops[DropReason.badFrame] = r.badFrame;
    return { port: p.index, kind: p.kind, rxFrames: p.rxFrames, rxBytes: p.rxBytes, txFrames: p.txFrames, txBytes: p.txBytes, drops };
  }

  /** Detach every port and stop. Idempotent. */
  close(): void {
    if (this.closed) return;
    for (const p of [...this.active]) this.remove(p);
    this.closed = true;
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }

  /** Run one forwarding round now (tests; normally rounds run from doorbells). */
  forwardNow(): void {
    this.round();
  }

  // ---- attach / detach ------------------------------------------------------------------------

  private checkAttach(port: number): void {
    if (this.closed) throw new GuestnetError(ErrorCode.Closed, `switch ${this.name} is closed`);
    checkPort(port);
    if (this.ports[port]) {
      throw new GuestnetError(ErrorCode.Exists, `port ${port} of switch ${this.name} is already in use`, {
        hint: `pick another port (free: ${this.freePort()})`,
      });
    }
  }

  private add(p: Port): void {
    this.ports[p.index] = p;
    this.active.push(p);
  }

  private remove(p: Port): void {
    if (!p.attached) return;
    p.attached = false;
    this.ports[p.index] = undefined;
    this.active = this.active.filter((q) => q !== p);
    for (const [mac, e] of this.macs) if (e.port === p.index) this.macs.delete(mac);
    const di = this.dirty.indexOf(p);
    if (di >= 0) this.dirty.splice(di, 1);
    p.region.markClosed();
    // Let the guest side notice the detach.
    p.toPort.ring();
    p.toPort.close();
    p.fromPort?.close();
    if (p.backend && p.closeBackend) void p.backend.close().catch(() => {});
    // Sources held back by this port retry in the next round (and now flood).
    this.scheduleRound();
    try {
      this.onDetach?.(p.index, this.statsOf(p));
    } catch {
      // The hook is the owner's; the switch stays consistent whatever it does.
    }
  }

  private handle(p: Port): PortHandle {
    return {
      port: p.index,
      switchName: this.name,
      detach: () => {
        if (this.ports[p.index] === p) this.remove(p);
      },
      stats: () => this.statsOf(p),
    };
  }

  // ---- scheduling -----------------------------------------------------------------------------

  private kicked(p: Port): void {
    if (!p.attached) return;
    // A closed guest side: frames it published before closing still go out, then it is detached.
    if (p.region.peerClosed()) p.closing = true;
    p.pending = true;
    this.scheduleRound();
  }

  private scheduleRound(): void {
    if (this.roundScheduled || this.closed) return;
    this.roundScheduled = true;
    setImmediate(this.runRound);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(this.runFlush);
  }

  private schedulePump(p: Port): void {
    if (!p.attached || p.waitDrain) return;
    queueMicrotask(() => this.pump(p));
  }

  // ---- the data path --------------------------------------------------------------------------

  private round(): void {
    if (this.closed) return;
    this.rounds++;
    this.roundNow = this.now();
    const ports = this.active;
    const n = ports.length;
    let again = false;
    let anyBlocked = false;
    const first = n > 0 ? this.start % n : 0;
    this.start++;
    for (let j = 0; j < n; j++) {
      const p = ports[(first + j) % n]!;
      if (!p.attached || (!p.pending && !p.blocked) || p.kind === 'backend') continue;
      p.blocked = false;
      const r = p.from;
      let taken = 0;
      let drained = false;
      while (taken < this.batch) {
        const saved = r.head;
        const len = r.readFrame(this.scratch, HEADROOM);
        if (len === 0) {
          drained = true;
          break;
        }
        if (len < 0) continue; // cannot happen: scratch holds MAX_FRAME_LEN
        taken++;
        if (!this.forward(p, len, true)) {
          // Held back by a full unicast destination: leave the frame in the source ring.
          r.head = r.cur = saved;
          taken--;
          p.blocked = true;
          anyBlocked = true;
          break;
        }
        p.rxFrames++;
        p.rxBytes += len;
      }
      if (taken > 0) p.released = true;
      if (p.blocked) p.pending = true;
      else if (drained) p.pending = false;
      else again = true;
      if (p.released) this.markDirty(p);
    }
    this.flush();
    for (let j = 0; j < ports.length; j++) {
      const p = ports[j]!;
      if (p.closing && !p.pending && !p.blocked) this.remove(p);
    }
    // Ports drained this round go to sleep; a frame published since brings them back at once.
    for (let j = 0; j < ports.length; j++) {
      const p = ports[j]!;
      if (!p.attached || p.kind === 'backend' || p.pending || p.blocked) continue;
      if (p.region.peerClosed()) {
        // Closed between the drain and now: one more round forwards the rest and detaches it.
        p.closing = true;
        p.pending = true;
        again = true;
        continue;
      }
      if (p.from.armWakeup()) {
        p.pending = true;
        again = true;
      }
    }
    if (again) this.scheduleRound();
    if (anyBlocked) this.armStallTimer();
  }

  /** Publish every touched ring once; ring each side that asked for it once. */
  private flush(): void {
    const d = this.dirty;
    for (let i = 0; i < d.length; i++) {
      const p = d[i]!;
      p.dirty = false;
      let kick = false;
      if (p.released) {
        p.released = false;
        if (p.from.publish()) kick = true;
      }
      if (p.to.publish()) kick = true;
      if (kick && p.attached) p.toPort.ring();
    }
    d.length = 0;
  }

  private markDirty(p: Port): void {
    if (p.dirty) return;
    p.dirty = true;
    this.dirty.push(p);
  }

  /**
   * Switch the frame in `scratch[HEADROOM, HEADROOM + len)` that arrived on `src`. Returns false
   * only when `mayBlock` and its unicast destination is full but still draining.
   */
  private forward(src: Port, len: number, mayBlock: boolean): boolean {
    const s = this.scratch;
    const hs = src.vnet();
    if (len < hs + 14) {
      src.drop(DropReason.runt);
      return true;
    }
    const e = HEADROOM + hs;
    const now = this.roundNow;
    // The offloads this frame asks of its receiver (0: a plain frame, only the header changes).
    const h = this.srcHdr;
    let need = 0;
    for (let i = 0; i < 12; i++) h[i] = i < hs ? s[HEADROOM + i]! : 0;
    if (hs > 0) need = offloadsNeeded(h[0]!, h[1]!);
    // Learn the source (RFC-less, as every bridge does): unicast sources only.
    if ((s[e + 6]! & 1) === 0) {
      const key = macKey(s, e + 6);
      const ent = this.macs.get(key);
      if (ent) {
        ent.port = src.index;
        ent.seen = now;
      } else if (this.macs.size < MAX_MACS) {
        this.macs.set(key, { port: src.index, seen: now });
      }
    }
    if ((s[e]! & 1) === 0) {
      const key = macKey(s, e);
      const ent = this.macs.get(key);
      if (ent) {
        const dst = this.ports[ent.port];
        if (dst && now - ent.seen <= this.agingMs) {
          if (dst === src) {
            src.drop(DropReason.samePort);
            return true;
          }
          const hd = dst.vnet();
          if (need === 0 || (need & ~dst.accepts(hd)) === 0) return this.deliver(dst, len, hs, hd, mayBlock);
          this.finDests[0] = dst;
          return this.finalizeTo(src, len, hs, 1, mayBlock);
        }
        this.macs.delete(key);
      }
    }
    // Broadcast, multicast, unknown or aged unicast: every other port. Ports that take the
    // frame's offloads get it as it is; the others share one software-finalised copy.
    const ports = this.active;
    let nFin = 0;
    for (let i = 0; i < ports.length; i++) {
      const d = ports[i]!;
      if (d === src) continue;
      const hd = d.vnet();
      if (need === 0 || (need & ~d.accepts(hd)) === 0) this.deliver(d, len, hs, hd, false);
      else this.finDests[nFin++] = d;
    }
    if (nFin > 0) this.finalizeTo(src, len, hs, nFin, false);
    return true;
  }

  /** Deliver the frame in scratch as it is, its header (if any) resized from `hs` to `hd` bytes. */
  private deliver(d: Port, len: number, hs: number, hd: number, mayBlock: boolean): boolean {
    const s = this.scratch;
    const start = HEADROOM + hs - hd;
    // Rewrite the header from the saved copy: an earlier destination may have resized it in place.
    const h = this.srcHdr;
    for (let i = 0; i < hd; i++) s[start + i] = h[i]!;
    return this.put(d, s, start, len - hs + hd, mayBlock);
  }

  /**
   * Finalise the offloaded frame in scratch in software (checksum / segmentation) and deliver the
   * result to `finDests[0, n)`. With `mayBlock` (one unicast destination) the frame is held back
   * (false) unless the destination has room for all the segments.
   */
  private finalizeTo(src: Port, len: number, hs: number, n: number, mayBlock: boolean): boolean {
    const s = this.scratch;
    if (mayBlock) {
      const d = this.finDests[0]!;
      const need = this.slotsAfterFinalize(d, len, hs);
      const r = d.to;
      if (r.space() < need && r.refresh() < need && !this.mayWait(d, need)) {
        if (d.fullSince < 0) d.fullSince = this.roundNow;
        if (this.roundNow - d.fullSince < this.stallMs) return false;
        // Stalled: go on; segments that do not fit drop as rx-ring-full.
      }
    }
    this.finN = n;
    this.finOut = 0;
    const gso = s[HEADROOM + 1]! !== VirtioNetGso.NONE;
    const st = finalizeVirtioNet(s, HEADROOM, len, hs, this.fin, HEADROOM, this.emitFin);
    this.finN = 0;
    if (st !== GsoStatus.OK) {
      this.offload.dropped++;
      src.drop(OFFLOAD_DROP[st] ?? 'offload-error');
      return true;
    }
    if (gso) {
      this.offload.segmented++;
      this.offload.segments += this.finOut;
    } else {
      this.offload.checksummed++;
    }
    return true;
  }

  /** Slots the finalised frame(s) may take in `d`'s rx ring (an upper bound, at most the ring). */
  private slotsAfterFinalize(d: Port, len: number, hs: number): number {
    const s = this.scratch;
    const hd = d.vnet();
    const r = d.to;
    const frame = len - hs;
    const gsoSize = s[HEADROOM + 4]! | (s[HEADROOM + 5]! << 8);
    let need: number;
    if (s[HEADROOM + 1]! === VirtioNetGso.NONE || gsoSize === 0) {
      need = r.slotsFor(frame + hd);
    } else {
      // Headers are at most 18 + 60 + 60 bytes; every segment carries at least one byte of payload.
      const segs = Math.ceil(frame / gsoSize);
      need = segs * r.slotsFor(Math.min(frame, gsoSize + 138) + hd);
    }
    return Math.min(need, r.numSlots - 1);
  }

  /** Copy buf[start, start + n) into `d`'s rx ring. See {@link forward} for `mayBlock`. */
  private put(d: Port, buf: Uint8Array, start: number, n: number, mayBlock: boolean): boolean {
    const r = d.to;
    if (!r.canCarry(n)) {
      d.drop(DropReason.tooBig);
      return true;
    }
    if (r.writeFrame(buf, start, n) || (mayBlock && this.mayWait(d, r.slotsFor(n)) && r.writeFrame(buf, start, n))) {
      d.txFrames++;
      d.txBytes += n;
      d.fullSince = -1;
      this.markDirty(d);
      if (d.kind === 'backend') this.scheduleFlush();
      return true;
    }
    if (!mayBlock) {
      d.drop(DropReason.ringFull);
      return true;
    }
    if (d.fullSince < 0) d.fullSince = this.roundNow;
    if (this.roundNow - d.fullSince >= this.stallMs) {
      d.drop(DropReason.ringFull);
      return true;
    }
    return false;
  }

  /**
   * `d`'s rx ring is full: publish what we wrote to it so far and ask to be woken when its
   * reader frees `slots` slots. Returns true if space appeared meanwhile (try again now).
   */
  private mayWait(d: Port, slots: number): boolean {
    if (d.fullSince >= 0 && this.roundNow - d.fullSince >= this.stallMs) return false;
    if (d.to.publish()) d.toPort.ring();
    return d.to.armWakeup(slots);
  }

  private armStallTimer(): void {
    if (this.stallTimer || this.closed) return;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      this.scheduleRound();
    }, this.stallMs + 1);
    // The ports keep the process alive while they are open; the switch itself never does.
    this.stallTimer.unref?.();
  }

  // ---- uplinks --------------------------------------------------------------------------------

  private fromBackend(p: Port, frame: Uint8Array): void {
    if (!p.attached || this.closed) return;
    const len = frame.length;
    if (len === 0 || len > MAX_FRAME_LEN) {
      p.drop(DropReason.tooBig);
      return;
    }
    this.scratch.set(frame, HEADROOM);
    this.roundNow = this.now();
    p.rxFrames++;
    p.rxBytes += len;
    this.forward(p, len, false);
    this.scheduleFlush();
  }

  private pump(p: Port): void {
    if (!p.attached || p.waitDrain) return;
    const r = p.pumpRing!;
    const buf = p.pumpBuf!;
    const be = p.backend!;
    let n: number;
    for (;;) {
      while ((n = r.readFrame(buf)) > 0) {
        const v = be.send(buf.subarray(0, n));
        if (v === Verdict.Dropped) p.drop(DropReason.uplinkDropped);
        if (v === Verdict.Queued) {
          p.waitDrain = true;
          break;
        }
      }
      // Released slots: a source held back by this uplink may go on.
      if (r.publish()) this.scheduleRound();
      if (p.waitDrain || !r.armWakeup()) break;
    }
  }
}

/** A MAC address as a number (48 bits fit a double exactly): no allocation per lookup. */
function macKey(b: Uint8Array, o: number): number {
  return (b[o]! * 0x10000 + (b[o + 1]! << 8) + b[o + 2]!) * 0x1000000 + ((b[o + 3]! << 16) | (b[o + 4]! << 8) | b[o + 5]!);
}

/** Drop reasons for finalizeVirtioNet failures, by status. */
const OFFLOAD_DROP: readonly string[] = GSO_STATUS_NAMES.map((n: string) => `offload-${n}`);

/** The {@link PortOffload} bits a receiver must accept to take a frame with this header as it is. */
function offloadsNeeded(flags: number, gsoType: number): number {
  let need = (flags & VirtioNetFlags.NEEDS_CSUM) !== 0 ? PortOffload.CSUM : 0;
  const t = gsoType & ~VirtioNetGso.ECN;
  if (t === VirtioNetGso.NONE) return need;
  // Segments need their checksums computed by whoever cuts them: GSO implies csum.
  need |= PortOffload.CSUM;
  if (t === VirtioNetGso.TCPV4) need |= PortOffload.TSO4;
  else if (t === VirtioNetGso.TCPV6) need |= PortOffload.TSO6;
  else if (t === VirtioNetGso.UDP || t === VirtioNetGso.UDP_L4) need |= PortOffload.UFO;
  else need |= UNKNOWN_GSO;
  if ((gsoType & VirtioNetGso.ECN) !== 0) need |= PortOffload.ECN;
  return need;
}

/**
 * Offer an uplink backend that has no virtio-net header yet a 12-byte (else 10-byte) one with
 * checksum and TSO offloads, as far as it supports them (connect.ts's rules: TSO needs csum).
 * Returns the capabilities in force; a backend that refuses keeps plain frames.
 */
function offerOffloads(backend: NetBackend): Capabilities {
  const caps = backend.capabilities();
  if (caps.vnetHdrLen !== 0 || !caps.supportedOffloads.csum) return caps;
  const len = caps.supportedVnetHdrLens.includes(12) ? 12 : caps.supportedVnetHdrLens.includes(10) ? 10 : 0;
  if (len === 0) return caps;
  const sup = caps.supportedOffloads;
  try {
    const got = backend.setCapabilities({ vnetHdrLen: len, offloads: { csum: true, tso4: sup.tso4, tso6: sup.tso6 } });
    if (got.vnetHdrLen !== 0 && !got.offloads.csum) return backend.setCapabilities({ vnetHdrLen: 0 });
    return got;
  } catch {
    return backend.capabilities();
  }
}
