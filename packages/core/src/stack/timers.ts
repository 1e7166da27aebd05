/**
 * One timer queue per stack. Every deadline in the stack (TCP retransmission, delayed ACKs, UDP
 * idle expiry, DNS timeouts, TFTP retransmits, reassembly expiry) lives here, driven by a single
 * host timer armed for the earliest deadline. Time is a number of milliseconds from the stack's
 * {@link Clock}; tests pass a manual clock and call `runDue(now)` themselves.
 *
 * A binary min-heap of entries; cancelled entries are left in place and skipped (lazy deletion),
 * and rescheduling an entry moves it by cancelling and re-inserting.
 */

export interface Clock {
  now(): number;
  /** Arm the host timer; the queue keeps at most one armed. */
  setTimer(ms: number, fn: () => void): unknown;
  clearTimer(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => performance.now(),
  setTimer: (ms, fn) => {
    const t = setTimeout(fn, ms);
    // An idle stack must not keep the process alive; the sockets it owns do that when busy.
    t.unref?.();
    return t;
  },
  clearTimer: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export class TimerEntry {
  at = Infinity;
  /** Index in the heap, or -1 when not scheduled. */
  idx = -1;
  readonly fn: (now: number) => void;
  constructor(fn: (now: number) => void) {
    this.fn = fn;
  }
}

export class TimerQueue {
  private readonly heap: TimerEntry[] = [];
  private readonly clock: Clock;
  private armedAt = Infinity;
  private handle: unknown = null;
  private closed = false;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  now(): number {
    return this.clock.now();
  }

  /** Schedule (or reschedule) `e` for absolute time `at`; Infinity unschedules it. */
  schedule(e: TimerEntry, at: number): void {
    if (e.idx >= 0) this.removeAt(e.idx);
    e.at = at;
    if (at === Infinity || this.closed) return;
    e.idx = this.heap.length;
    this.heap.push(e);
    this.up(e.idx);
    this.arm();
  }

  cancel(e: TimerEntry): void {
    if (e.idx >= 0) this.removeAt(e.idx);
    e.at = Infinity;
  }

  get size(): number {
    return this.heap.length;
  }

  /** Run every entry due at `now`. Entries may reschedule themselves. */
  runDue(now: number): void {
    let guard = this.heap.length * 2 + 16;
    while (this.heap.length > 0 && this.heap[0]!.at <= now && guard-- > 0) {
      const e = this.heap[0]!;
      this.removeAt(0);
      e.at = Infinity;
      e.fn(now);
    }
    this.arm();
  }

  close(): void {
    this.closed = true;
    for (const e of this.heap) e.idx = -1;
    this.heap.length = 0;
    if (this.handle !== null) this.clock.clearTimer(this.handle);
    this.handle = null;
  }

  private arm(): void {
    if (this.closed) return;
    const next = this.heap.length ? this.heap[0]!.at : Infinity;
    if (next === this.armedAt) return;
    if (this.handle !== null) this.clock.clearTimer(this.handle);
    this.handle = null;
    this.armedAt = next;
    if (next === Infinity) return;
    const delay = Math.max(0, next - this.clock.now());
    this.handle = this.clock.setTimer(Math.ceil(delay), () => {
      this.handle = null;
      this.armedAt = Infinity;
      this.runDue(this.clock.now());
    });
  }

  private removeAt(i: number): void {
    const h = this.heap;
    const e = h[i]!;
    e.idx = -1;
    const last = h.pop()!;
    if (i < h.length) {
      h[i] = last;
      last.idx = i;
      this.down(i);
      this.up(last.idx);
    }
  }

  private up(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.at <= h[i]!.at) break;
      this.swap(i, p);
      i = p;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l]!.at < h[m]!.at) m = l;
      if (r < h.length && h[r]!.at < h[m]!.at) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }

  private swap(a: number, b: number): void {
    const h = this.heap;
    const x = h[a]!;
    h[a] = h[b]!;
    h[b] = x;
    h[a]!.idx = a;
    h[b]!.idx = b;
  }
}

/**
 * A clock for tests: time moves only when `advance` is called, and the armed timer fires then.
 */
export class ManualClock implements Clock {
  private t: number;
  private pending: { at: number; fn: () => void } | null = null;
  constructor(start = 1000) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  setTimer(ms: number, fn: () => void): unknown {
    const p = { at: this.t + ms, fn };
    this.pending = p;
    return p;
  }
  clearTimer(h: unknown): void {
    if (this.pending === h) this.pending = null;
  }
  /** Move time forward by `ms`, firing the armed timer each time its deadline is passed. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let guard = 0; guard < 1_000_000; guard++) {
      const p = this.pending;
      if (!p || p.at > end) break;
      this.t = Math.max(this.t, p.at);
      this.pending = null;
      p.fn();
    }
    this.t = end;
  }
}
