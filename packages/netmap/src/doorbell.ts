/**
 * Doorbells: the one-way "look at the ring again" kick between the two sides of a port region.
 *
 * A doorbell carries no data and is level-insensitive: one ring after any number of published
 * slots is enough, because the woken side drains everything it finds. The rings' need-wakeup
 * flags (ring.ts) decide whether a side rings at all, so a busy pair of sides never touches a
 * doorbell.
 *
 * {@link atomicsDoorbell} is the shared-memory implementation: `ring()` increments a 32-bit word
 * and `Atomics.notify`s it; the waiting side keeps one `Atomics.waitAsync` pending on the word,
 * re-armed with the value it saw *before* running the callback, so a ring that lands while the
 * callback runs resolves the next wait at once (no lost kick). No timers, no spinning.
 *
 * ## Event-loop liveness (measured on Node 20.20)
 * A pending `Atomics.waitAsync` does NOT keep the Node event loop alive: a process (or worker)
 * whose only pending work is such a wait exits. That is what we want when idle or closed, but a
 * port that is open and waiting for traffic usually must keep its thread alive. So the doorbell
 * holds nothing by default and offers {@link Doorbell.ref}/{@link Doorbell.unref}: `ref()` holds
 * one never-firing timer handle (it does not poll: its interval is ~12 days and its callback is
 * empty) until `unref()` or `close()`. NetmapPortBackend refs its incoming doorbell while open.
 * A wait cannot be cancelled; `close()` marks the doorbell closed and notifies the word, so the
 * pending wait resolves at once and is not re-armed.
 *
 * Across processes the Atomics doorbell does not work: `Atomics.notify` only wakes waiters in the
 * calling process (V8 keeps waiter lists per process, outside the shared memory), so a ring
 * from another process is never seen. There the same interface is implemented with kicks over a
 * unix socket (socket-doorbell.ts); the rings themselves stay in shared memory.
 */

/** One direction of kicks. `ring()` from one side, `onRing()` on the other. */
export interface Doorbell {
  /** Kick the other side. Cheap; never throws. */
  ring(): void;
  /** Call `cb` (asynchronously) after each ring; one callback per doorbell, a second replaces it. */
  onRing(cb: () => void): void;
  /** Stop waiting; later rings are ignored. Idempotent. */
  close(): void;
  /** Keep the event loop alive while waiting (optional: not every doorbell can). */
  ref?(): void;
  /** Let the event loop exit while waiting. */
  unref?(): void;
}

const KEEPALIVE_MS = 0x3fffffff;

/** `Atomics.waitAsync` (ES2024; in Node since 16) typed locally: the repo's lib is ES2023. */
type WaitAsyncResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): WaitAsyncResult }).waitAsync;
function noop(): void {}

class AtomicsDoorbell implements Doorbell {
  private readonly words: Int32Array;
  private readonly idx: number;
  private cb: (() => void) | null = null;
  private waiting = false;
  private closed = false;
  private keepAlive: ReturnType<typeof setInterval> | null = null;
  private readonly onWake = (): void => this.wake();

  constructor(mem: SharedArrayBuffer, byteOffset: number) {
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % 4 !== 0 || byteOffset + 4 > mem.byteLength) {
      throw new RangeError(`doorbell word at ${byteOffset} is not an aligned offset inside ${mem.byteLength} bytes`);
    }
    this.words = new Int32Array(mem);
    this.idx = byteOffset >> 2;
  }

  ring(): void {
    if (this.closed) return;
    Atomics.add(this.words, this.idx, 1);
    Atomics.notify(this.words, this.idx);
  }

  onRing(cb: () => void): void {
    if (this.closed) return;
    this.cb = cb;
    if (!this.waiting) this.arm(Atomics.load(this.words, this.idx));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cb = null;
    this.unref();
    // Resolve our own pending wait so nothing lingers; a spurious wake on the other side of a
    // level-insensitive doorbell is harmless.
    if (this.waiting) Atomics.notify(this.words, this.idx);
  }

  ref(): void {
    if (this.closed || this.keepAlive) return;
    this.keepAlive = setInterval(noop, KEEPALIVE_MS);
  }

  unref(): void {
    if (!this.keepAlive) return;
    clearInterval(this.keepAlive);
    this.keepAlive = null;
  }

  private seen = 0;

  private arm(seen: number): void {
    this.seen = seen;
    const r = waitAsync(this.words, this.idx, seen);
    this.waiting = true;
    if (r.async) {
      r.value.then(this.onWake, this.onWake);
    } else {
      // The word changed between the load and the wait: a ring we must not miss.
      queueMicrotask(this.onWake);
    }
  }

  private wake(): void {
    this.waiting = false;
    if (this.closed || !this.cb) return;
    const now = Atomics.load(this.words, this.idx);
    if (now === this.seen) {
      // Spurious (e.g. our own close-notify raced a reopen): just wait again.
      this.arm(now);
      return;
    }
    // Re-arm with the value seen before the callback: rings during the callback wake us again.
    const cb = this.cb;
    try {
      cb();
    } catch {
      // A callback bug must not stop the doorbell; the data path counts its own errors.
    }
    if (!this.closed && !this.waiting) this.arm(now);
  }
}

/**
 * A doorbell on the 32-bit word at `byteOffset` of `mem` (4-aligned). Both sides create one on the
 * same word: one calls `ring()`, the other `onRing()`. Works between threads of ONE process only:
 * on a mapped shared file the word itself is shared, but `Atomics.notify` wakes only waiters of
 * the calling process (V8 keeps its waiter list per process, not in the shared memory), so a
 * waiter in another process never wakes. Cross-process ports use socket kicks instead
 * (socket-doorbell.ts).
 */
export function atomicsDoorbell(mem: SharedArrayBuffer, byteOffset: number): Doorbell {
  return new AtomicsDoorbell(mem, byteOffset);
}

/** The two doorbells of a port region for the guest side: ring `toSwitch`, wait on `fromSwitch`. */
export function portDoorbells(region: { mem: SharedArrayBuffer; bellOut: number; bellIn: number }): { toSwitch: Doorbell; fromSwitch: Doorbell } {
  return { toSwitch: atomicsDoorbell(region.mem, region.bellOut), fromSwitch: atomicsDoorbell(region.mem, region.bellIn) };
}

/** The two doorbells of a port region for the switch side: ring `toPort`, wait on `fromPort`. */
export function switchDoorbells(region: { mem: SharedArrayBuffer; bellOut: number; bellIn: number }): { toPort: Doorbell; fromPort: Doorbell } {
  return { toPort: atomicsDoorbell(region.mem, region.bellOut), fromPort: atomicsDoorbell(region.mem, region.bellIn) };
}
