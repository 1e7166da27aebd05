/**
 * withFaultInjector(): a lossy, noisy link in front of a backend, after smoltcp's FaultInjector.
 * Drops, duplicates, reorders and corrupts frames with given probabilities, reproducibly: the
 * decisions come from a seeded xoshiro128** generator, one independent stream per direction
 * (seeded from `seed` and the direction), so the same seed and the same frame sequence in a
 * direction give the same faults however tx and rx interleave.
 *
 * Per frame, in a direction the injector applies to, four numbers are drawn, always in this order
 * (so changing one probability does not shift the others' decisions): drop, corrupt, duplicate,
 * reorder; a corrupted frame draws one more for the bit to flip.
 * - drop: the frame vanishes (tx: `send` still answers Delivered — the wire lost it, not the
 *   backend). Nothing else is applied.
 * - corrupt: one random bit of a *copy* is flipped (never the caller's buffer). The virtio-net
 *   header, when negotiated, is metadata and is left alone; the flip lands in the Ethernet frame.
 * - reorder: a copy is held back and released after `reorderDelayFrames` (default 3) later frames
 *   in the same direction have arrived (dropped ones included), or when `reorderFlushMs`
 *   (default 100 ms) passes, so nothing is held forever. A reordered frame is not duplicated.
 * - duplicate: the frame is passed on twice.
 * What happened is counted in `stats().extra`: `fault-dropped`, `fault-duplicated`,
 * `fault-reordered`, `fault-corrupted`.
 *
 * Limits: the verdict of a tx frame released by the flush timer is lost (nobody is waiting for
 * it); a `Queued` from releasing held frames during a guest `send` is passed to that send.
 */
import { type NetBackend, Verdict } from '../backend.ts';
import { ErrorCode, GuestnetError } from '../errors.ts';
import { WrappedBackend } from './wrap.ts';

export interface FaultInjectorOptions {
  seed: number;
  /** Probabilities, 0..1. Default 0. */
  drop?: number;
  duplicate?: number;
  reorder?: number;
  corrupt?: number;
  /** Which direction faults apply to. Default 'both'. */
  directions?: 'tx' | 'rx' | 'both';
  /** A reordered frame is released after this many later frames. Default 3. */
  reorderDelayFrames?: number;
  /** Held frames are released after this long at the latest. Default 100 ms. */
  reorderFlushMs?: number;
}

/** xoshiro128** (Blackman & Vigna), seeded through splitmix32. Small, fast, reproducible. */
export class Xoshiro128ss {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const splitmix = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = splitmix();
    this.b = splitmix();
    this.c = splitmix();
    this.d = splitmix();
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1; // the all-zero state is a fixed point
  }

  /** A generator with the given raw state (test vectors); not all zero. */
  static fromState(a: number, b: number, c: number, d: number): Xoshiro128ss {
    const g = new Xoshiro128ss(0);
    g.a = a | 0;
    g.b = b | 0;
    g.c = c | 0;
    g.d = d | 0;
    return g;
  }

  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r;
  }

  /** A uniform number in [0, 1). */
  next(): number {
    return this.nextU32() / 0x1_0000_0000;
  }
}

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));

export function withFaultInjector(backend: NetBackend, opts: FaultInjectorOptions): NetBackend {
  return new FaultInjector(backend, opts);
}

interface Held {
  frame: Uint8Array;
  left: number;
}

interface DirState {
  readonly on: boolean;
  readonly rng: Xoshiro128ss;
  readonly held: Held[];
}

function probability(name: string, v: number | undefined): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
    throw new GuestnetError(ErrorCode.BadConfig, `fault injector: ${name}=${v} is not a probability`, { hint: 'use a number from 0 to 1' });
  }
  return v;
}

class FaultInjector extends WrappedBackend {
  private readonly pDrop: number;
  private readonly pDup: number;
  private readonly pReorder: number;
  private readonly pCorrupt: number;
  private readonly delay: number;
  private readonly flushMs: number;
  private readonly tx: DirState;
  private readonly rx: DirState;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly counts = { dropped: 0, duplicated: 0, reordered: 0, corrupted: 0 };

  constructor(inner: NetBackend, opts: FaultInjectorOptions) {
    super(inner);
    if (!Number.isFinite(opts.seed)) {
      throw new GuestnetError(ErrorCode.BadConfig, `fault injector: seed ${opts.seed} is not a number`);
    }
    this.pDrop = probability('drop', opts.drop);
    this.pDup = probability('duplicate', opts.duplicate);
    this.pReorder = probability('reorder', opts.reorder);
    this.pCorrupt = probability('corrupt', opts.corrupt);
    this.delay = Math.max(1, Math.floor(opts.reorderDelayFrames ?? 3));
    this.flushMs = opts.reorderFlushMs ?? 100;
    const dirs = opts.directions ?? 'both';
    // Distinct streams per direction: decisions in one do not depend on traffic in the other.
    this.tx = { on: dirs !== 'rx', rng: new Xoshiro128ss(opts.seed ^ 0x7478), held: [] };
    this.rx = { on: dirs !== 'tx', rng: new Xoshiro128ss(opts.seed ^ 0x7278), held: [] };
  }

  override send(frame: Uint8Array): Verdict {
    if (!this.tx.on || this.closed) return this.inner.send(frame);
    return this.process(this.tx, frame, (f) => this.inner.send(f));
  }

  protected override onRx(frame: Uint8Array): void {
    if (!this.rx.on) {
      this.deliverRx(frame);
      return;
    }
    this.process(this.rx, frame, (f) => {
      this.deliverRx(f);
      return Verdict.Delivered;
    });
  }

  private process(st: DirState, frame: Uint8Array, emit: (f: Uint8Array) => Verdict): Verdict {
    const r = st.rng;
    const drop = r.next() < this.pDrop;
    const corrupt = r.next() < this.pCorrupt;
    const dup = r.next() < this.pDup;
    const reorder = r.next() < this.pReorder;
    let verdict: Verdict = Verdict.Delivered;
    let holdNew: Held | null = null;
    if (drop) {
      this.counts.dropped++;
    } else {
      let out = frame;
      const start = this.vnetHdrLen;
      if (corrupt && frame.length > start) {
        out = frame.slice();
        const bit = r.nextU32() % ((frame.length - start) * 8);
        out[start + (bit >>> 3)]! ^= 1 << (bit & 7);
        this.counts.corrupted++;
      }
      if (reorder) {
        holdNew = { frame: out === frame ? frame.slice() : out, left: this.delay };
        this.counts.reordered++;
      } else {
        verdict = emit(out);
        if (dup && verdict !== Verdict.Queued) {
          this.counts.duplicated++;
          verdict = emit(out);
        }
      }
    }
    // This frame counts as one "later frame" for everything already held.
    const held = st.held;
    for (const h of held) h.left--;
    // One fixed delay: held frames expire in the order they were held.
    while (held.length > 0 && held[0]!.left <= 0) {
      const h = held.shift()!;
      if (emit(h.frame) === Verdict.Queued && verdict === Verdict.Delivered) verdict = Verdict.Queued;
    }
    if (holdNew) held.push(holdNew);
    if (held.length > 0) this.armTimer();
    return verdict;
  }

  private armTimer(): void {
    if (this.timer !== null || this.closed) return;
    const t = setTimeout(() => this.flushHeld(), this.flushMs);
    // The flush timer alone must not keep a process alive.
    (t as { unref?: () => void }).unref?.();
    this.timer = t;
  }

  private flushHeld(): void {
    this.timer = null;
    if (this.closed) return;
    for (const h of this.tx.held.splice(0)) this.inner.send(h.frame);
    for (const h of this.rx.held.splice(0)) this.deliverRx(h.frame);
  }

  protected override extraStats(): Record<string, number> {
    return {
      'fault-dropped': this.counts.dropped,
      'fault-duplicated': this.counts.duplicated,
      'fault-reordered': this.counts.reordered,
      'fault-corrupted': this.counts.corrupted,
    };
  }

  protected override async onClose(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.tx.held.length = 0;
    this.rx.held.length = 0;
  }
}
