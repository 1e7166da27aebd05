/**
 * connectBackends(): a patch cable between two NetBackends. Every frame one backend hands to its
 * "guest" (its rx) is sent into the other, both ways. This is how `guestnet attach` joins a TAP
 * device inside a network namespace to a slirp stack (slirp4netns / pasta do the same in C), and
 * how any two backends can be bridged in-process (a tap to a switch port, two stacks in tests).
 *
 * ## Theory of operation
 * - Negotiation (before init, re-checked after it): if both backends speak a virtio-net header
 *   (12 preferred, else 10) and share at least one offload, both get that header length and the
 *   offloads they share (so a GSO super-frame one side emits is one the other accepts, and a
 *   partial checksum one side leaves is one the other finishes). TSO without checksum offload is
 *   meaningless (a segment's checksum must be recomputed), so tso4/tso6 need csum. Otherwise
 *   both run plain, fully checksummed Ethernet (vnetHdrLen 0): nothing is offloaded silently.
 *   Both sides always end up with the same header length, so frames are forwarded untouched.
 * - Forwarding: push mode on both sides; the rx handler of A calls `B.send(frame)`. The frame is
 *   borrowed for the duration of the call on both sides of the contract (rx frames are valid only
 *   during rx, send does not keep the caller's buffer), so no copy is made here.
 * - Backpressure, QEMU net-queue style: a `Queued` verdict from B means "took it, now full";
 *   we `pauseRecv()` A (it stops reading its host-side sources, so nothing piles up) until B
 *   raises `drain`, then `resumeRecv()` A, which flushes what A held meanwhile. The same holds
 *   the other way round.
 * - Frames that arrive before both sides are initialised and negotiated are dropped and counted
 *   (`not-ready`), like frames on a cable whose other end is not plugged in yet; the guest's
 *   protocols retransmit.
 * - Hot path: one closure call and one `send` per frame; no allocation.
 *
 * Not done here: MTU reconciliation (configure both backends with the same MTU), VLANs, header
 * translation between different vnet header lengths (never needed: both get the same one),
 * pull-mode forwarding.
 */
import {
  type BackendStats,
  type NetBackend,
  type Offloads,
  type VnetHdrLen,
  NO_OFFLOADS,
  Verdict,
} from './backend.ts';
import { UnsupportedError } from './errors.ts';

export interface ConnectOptions {
  /**
   * Virtio-net header negotiation. `auto` (default): use one when both backends can and share an
   * offload. `off`: plain frames. `on`: like auto, but reject when no header can be agreed.
   */
  vnetHdr?: 'auto' | 'on' | 'off';
  /** Offloads to try for (default csum, tso4, tso6; ecn and ufo only if asked). */
  offloads?: Partial<Offloads>;
  /**
   * An asynchronous failure of either backend (its `error` event), e.g. a TAP device removed.
   * The connection stays open; the caller decides whether to close it.
   */
  onError?(err: Error, side: 'a' | 'b'): void;
}

/** Counters for one direction of the cable. */
export interface DirectionStats {
  /** Frames handed to the destination's send (any verdict). */
  frames: number;
  bytes: number;
  /** The destination answered Dropped (its own stats say why). */
  dropped: number;
  /** Frames discarded here before both ends were ready or after close. */
  notReady: number;
  /** Times the source was paused because the destination answered Queued. */
  pauses: number;
}

export interface ConnectionStats {
  /** Frames received from `a` and sent into `b`. */
  aToB: DirectionStats;
  /** Frames received from `b` and sent into `a`. */
  bToA: DirectionStats;
  /** The virtio-net header length both ends use. */
  vnetHdrLen: VnetHdrLen;
  /** The offloads both ends have in force. */
  offloads: Offloads;
  a: BackendStats;
  b: BackendStats;
}

export interface Connection {
  /** Close both backends (in parallel). Idempotent. */
  close(): Promise<void>;
  stats(): ConnectionStats;
}

/** Offloads a patch cable asks for by default: what TAP devices and slirp both understand. */
const DEFAULT_WANT: Offloads = Object.freeze({ csum: true, tso4: true, tso6: true, ecn: false, ufo: false });
const OFFLOAD_KEYS = ['csum', 'tso4', 'tso6', 'ecn', 'ufo'] as const;

/** The common ground of two backends' declared support: header length and offloads (pure). */
export function negotiateVnet(
  a: NetBackend,
  b: NetBackend,
  want: Partial<Offloads> = DEFAULT_WANT,
): { vnetHdrLen: VnetHdrLen; offloads: Offloads } {
  const ca = a.capabilities();
  const cb = b.capabilities();
  const len: VnetHdrLen = ([12, 10] as const).find(
    (n) => ca.supportedVnetHdrLens.includes(n) && cb.supportedVnetHdrLens.includes(n),
  ) ?? 0;
  if (len === 0) return { vnetHdrLen: 0, offloads: { ...NO_OFFLOADS } };
  const off: Offloads = { ...NO_OFFLOADS };
  for (const k of OFFLOAD_KEYS) off[k] = (want[k] ?? DEFAULT_WANT[k]) && ca.supportedOffloads[k] && cb.supportedOffloads[k];
  fixDependencies(off);
  if (!OFFLOAD_KEYS.some((k) => off[k])) return { vnetHdrLen: 0, offloads: { ...NO_OFFLOADS } };
  return { vnetHdrLen: len, offloads: off };
}

/** Segmentation needs checksum offload (each segment's checksum is computed by whoever segments). */
function fixDependencies(off: Offloads): void {
  if (!off.csum) {
    off.tso4 = false;
    off.tso6 = false;
    off.ufo = false;
  }
  if (!off.tso4 && !off.tso6) off.ecn = false;
}

function sameOffloads(x: Offloads, y: Offloads): boolean {
  return OFFLOAD_KEYS.every((k) => x[k] === y[k]);
}

/**
 * Apply `want` to both backends and settle on what both granted (a backend may grant less than
 * it declared, e.g. a TAP whose kernel lacks an offload). Returns the agreed setting.
 */
function apply(a: NetBackend, b: NetBackend, vnetHdrLen: VnetHdrLen, want: Offloads): { vnetHdrLen: VnetHdrLen; offloads: Offloads } {
  let off = { ...want };
  let len = vnetHdrLen;
  for (let round = 0; round < 3; round++) {
    const ga = a.setCapabilities({ vnetHdrLen: len, offloads: off });
    const gb = b.setCapabilities({ vnetHdrLen: len, offloads: off });
    const common: Offloads = { ...NO_OFFLOADS };
    for (const k of OFFLOAD_KEYS) common[k] = ga.offloads[k] && gb.offloads[k];
    fixDependencies(common);
    const agreedLen = ga.vnetHdrLen === gb.vnetHdrLen ? ga.vnetHdrLen : 0;
    if (agreedLen !== 0 && !OFFLOAD_KEYS.some((k) => common[k])) {
      len = 0;
      off = { ...NO_OFFLOADS };
      continue;
    }
    if (agreedLen === len && sameOffloads(common, ga.offloads) && sameOffloads(common, gb.offloads)) {
      return { vnetHdrLen: len, offloads: common };
    }
    len = agreedLen;
    off = agreedLen === 0 ? { ...NO_OFFLOADS } : common;
  }
  // Could not converge (a backend that keeps changing its answer): fall back to plain frames.
  a.setCapabilities({ vnetHdrLen: 0, offloads: { ...NO_OFFLOADS } });
  b.setCapabilities({ vnetHdrLen: 0, offloads: { ...NO_OFFLOADS } });
  return { vnetHdrLen: 0, offloads: { ...NO_OFFLOADS } };
}

function newDirection(): DirectionStats {
  return { frames: 0, bytes: 0, dropped: 0, notReady: 0, pauses: 0 };
}

/**
 * Connect `a` and `b` (both un-initialised) back to back, initialise them, and forward frames
 * both ways until `close()`. Rejects, leaving both backends closed, if either init fails or
 * `vnetHdr: 'on'` cannot be honoured.
 */
export async function connectBackends(a: NetBackend, b: NetBackend, opts: ConnectOptions = {}): Promise<Connection> {
  const mode = opts.vnetHdr ?? 'auto';
  const want: Offloads = { ...DEFAULT_WANT, ...opts.offloads };
  let agreed: { vnetHdrLen: VnetHdrLen; offloads: Offloads } = { vnetHdrLen: 0, offloads: { ...NO_OFFLOADS } };
  let ready = false;
  let closed = false;
  /** The destination answered Queued: the source is paused until the destination drains. */
  let aPausedForB = false;
  let bPausedForA = false;
  const ab = newDirection();
  const ba = newDirection();

  const negotiate = (): void => {
    const n = mode === 'off' ? { vnetHdrLen: 0 as VnetHdrLen, offloads: { ...NO_OFFLOADS } } : negotiateVnet(a, b, want);
    agreed = apply(a, b, n.vnetHdrLen, n.offloads);
  };

  const fromA = (frame: Uint8Array): void => {
    if (!ready) {
      ab.notReady++;
      return;
    }
    ab.frames++;
    ab.bytes += frame.length;
    const v = b.send(frame);
    if (v === Verdict.Queued) {
      if (!aPausedForB) {
        aPausedForB = true;
        ab.pauses++;
        a.pauseRecv();
      }
    } else if (v === Verdict.Dropped) {
      ab.dropped++;
    }
  };
  const fromB = (frame: Uint8Array): void => {
    if (!ready) {
      ba.notReady++;
      return;
    }
    ba.frames++;
    ba.bytes += frame.length;
    const v = a.send(frame);
    if (v === Verdict.Queued) {
      if (!bPausedForA) {
        bPausedForA = true;
        ba.pauses++;
        b.pauseRecv();
      }
    } else if (v === Verdict.Dropped) {
      ba.dropped++;
    }
  };

  const closeBoth = async (): Promise<void> => {
    closed = true;
    ready = false;
    const results = await Promise.allSettled([a.close(), b.close()]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  };

  const requireIfOn = (): void => {
    if (mode !== 'on' || agreed.vnetHdrLen !== 0) return;
    const ca = a.capabilities();
    const cb = b.capabilities();
    throw new UnsupportedError(
      `${a.type} and ${b.type} share no virtio-net header with offloads ` +
        `(${a.type}: [${ca.supportedVnetHdrLens.join(',')}], ${b.type}: [${cb.supportedVnetHdrLens.join(',')}])`,
      'turn the virtio-net header off, or enable it on both backends (tap: vnet_hdr=on)',
    );
  };

  try {
    negotiate();
    requireIfOn();
    await Promise.all([
      a.init(fromA, {
        // a can take frames again: release b, which we paused when a answered Queued.
        drain: () => {
          if (bPausedForA && !closed) {
            bPausedForA = false;
            b.resumeRecv();
          }
        },
        error: (err) => opts.onError?.(err, 'a'),
      }),
      b.init(fromB, {
        drain: () => {
          if (aPausedForB && !closed) {
            aPausedForB = false;
            a.resumeRecv();
          }
        },
        error: (err) => opts.onError?.(err, 'b'),
      }),
    ]);
    // A backend may learn its real abilities only when it opens its device: check again.
    const ca = a.capabilities();
    const cb = b.capabilities();
    if (ca.vnetHdrLen !== cb.vnetHdrLen || !sameOffloads(ca.offloads, cb.offloads)) negotiate();
    requireIfOn();
  } catch (err) {
    await closeBoth().catch(() => {});
    throw err;
  }
  ready = true;

  let closing: Promise<void> | null = null;
  return {
    close() {
      closing ??= closeBoth();
      return closing;
    },
    stats() {
      return {
        aToB: { ...ab },
        bToA: { ...ba },
        vnetHdrLen: agreed.vnetHdrLen,
        offloads: { ...agreed.offloads },
        a: a.stats(),
        b: b.stats(),
      };
    },
  };
}
