/**
 * pair(): two NetBackends back to back, like a crossover cable. A frame sent on one end is
 * delivered (rx) on the other. Used to connect two in-process stacks (a scripted test guest and
 * slirp, two guests) and as the reference implementation of the NetBackend contract.
 *
 * ## Theory of operation
 * Both ends share one `Link`. Frames in flight live in one FIFO on the link (copies), so delivery
 * order is the order of `send` calls across both directions.
 *
 * Re-entrancy. Two stacks joined by a pair answer each other from inside their rx handlers:
 * A.send → B.rx → B.send → A.rx → … Delivering synchronously without care recurses once per
 * exchanged frame and overflows the JS stack in a long TCP transfer. So:
 * - default (`async: false`): a *trampoline*. The outermost `send` delivers its frame at once;
 *   a `send` made while a delivery is in progress (from inside an rx handler, drain or resume) is
 *   copied into the FIFO and delivered by the outermost call after the current handler returns.
 *   Stack depth stays at one delivery whatever the conversation, every frame triggered by a send
 *   has been delivered when that outermost send returns, and nothing depends on the event loop
 *   (deterministic tests). The cost: a conversation that never ends never returns to the event
 *   loop (timers and I/O starve) — as an endless synchronous loop would.
 * - `async: true`: every frame is copied into the FIFO and delivered in a batch from a macrotask
 *   (`setImmediate`, else `setTimeout(0)` in browsers). Frames queued during a batch go to the
 *   next batch, so a ping-pong yields to the event loop every round. Microtasks are deliberately
 *   not used: a microtask ping-pong starves timers and I/O just like the synchronous loop.
 *
 * Backpressure. Frames accepted for an end and not yet handed to its guest (in the link FIFO, or
 * in the receiving end's pull/paused queue) count against `queueFrames` (default 1024). The send
 * that fills it gets `Queued`; later sends are dropped ("backpressure") until the receiver
 * empties its queue (resume, or `recv` in pull mode), when the sender's `drain` fires.
 *
 * Ownership. `send` copies (into a scratch buffer for the immediate delivery, into the FIFO
 * otherwise), so the caller's buffer is never seen by the peer after `send` returns and a
 * receiver that rewrites its rx frame in place cannot scribble on the sender's memory.
 *
 * Close. Closing one end makes the other drop every later send with reason "peer-closed"; frames
 * already in flight towards the open end are still delivered. A send before the peer is
 * initialised is dropped ("peer-down"), as on a cable whose other end is unplugged.
 *
 * Not supported: virtio-net headers (only vnetHdrLen 0), offloads, hostfwd.
 */
import { type NetBackend, Verdict } from './backend.ts';
import { BaseBackend } from './base-backend.ts';

export interface PairOptions {
  /** IP MTU of the link (both ends). Default 1500. */
  mtu?: number;
  /** Deliver from a macrotask batch instead of the synchronous trampoline. Default false. */
  async?: boolean;
  /** Frames accepted for one end and not yet taken by its guest before senders see Queued. Default 1024. */
  queueFrames?: number;
}

/** Two connected endpoints: a frame sent on one is received on the other. Type name `pair`. */
export function pair(opts: PairOptions = {}): [NetBackend, NetBackend] {
  const link = new Link(opts.async ?? false, opts.queueFrames ?? 1024);
  const a = new PairEnd(link, opts);
  const b = new PairEnd(link, opts);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

const hasSetImmediate = typeof (globalThis as { setImmediate?: unknown }).setImmediate === 'function';

class Link {
  readonly async: boolean;
  readonly bound: number;
  /** In-flight frames (copies) and their destinations; a FIFO with a moving head. */
  private readonly frames: Uint8Array[] = [];
  private readonly dests: PairEnd[] = [];
  private head = 0;
  /** A delivery is on the stack: further sends go to the FIFO (the trampoline). */
  busy = false;
  private timer: ReturnType<typeof setTimeout> | ReturnType<typeof setImmediate> | null = null;

  constructor(async: boolean, bound: number) {
    this.async = async;
    this.bound = bound;
  }

  enqueue(to: PairEnd, frame: Uint8Array): void {
    this.frames.push(frame.slice());
    this.dests.push(to);
    to.inFifo++;
    if (this.async && this.timer === null) {
      this.timer = hasSetImmediate ? setImmediate(() => this.runBatch()) : setTimeout(() => this.runBatch(), 0);
    }
  }

  /** Deliver one frame to `to` with the trampoline flag held; then, synchronously, the backlog. */
  deliverNow(to: PairEnd, frame: Uint8Array): void {
    this.busy = true;
    try {
      to.accept(frame);
    } finally {
      this.busy = false;
    }
    this.pump(Infinity);
  }

  /** Run `fn` (which may call rx handlers) as a delivery: nested sends are trampolined. */
  guard(fn: () => void): void {
    if (this.busy) {
      fn();
      return;
    }
    this.busy = true;
    try {
      fn();
    } finally {
      this.busy = false;
    }
    if (!this.async) this.pump(Infinity);
  }

  private runBatch(): void {
    this.timer = null;
    this.pump(this.frames.length - this.head);
  }

  /** Deliver up to `max` frames from the FIFO. Frames added meanwhile wait for the next batch in async mode. */
  private pump(max: number): void {
    if (this.busy || this.head >= this.frames.length) return;
    this.busy = true;
    const touched = new Set<PairEnd>();
    try {
      for (let n = 0; n < max && this.head < this.frames.length; n++) {
        const f = this.frames[this.head]!;
        const to = this.dests[this.head]!;
        this.frames[this.head] = EMPTY;
        this.head++;
        to.inFifo--;
        to.accept(f);
        touched.add(to);
      }
    } finally {
      this.busy = false;
      if (this.head >= this.frames.length) {
        this.frames.length = 0;
        this.dests.length = 0;
        this.head = 0;
      } else if (this.head > 1024 && this.head * 2 > this.frames.length) {
        this.frames.splice(0, this.head);
        this.dests.splice(0, this.head);
        this.head = 0;
      }
    }
    for (const to of touched) to.peer.maybeDrain();
    if (this.async && this.head < this.frames.length && this.timer === null) {
      this.timer = hasSetImmediate ? setImmediate(() => this.runBatch()) : setTimeout(() => this.runBatch(), 0);
    }
  }

  /** Both ends closed: nothing can be delivered any more. */
  shutdown(): void {
    if (this.timer !== null) {
      if (hasSetImmediate) clearImmediate(this.timer as ReturnType<typeof setImmediate>);
      else clearTimeout(this.timer as ReturnType<typeof setTimeout>);
      this.timer = null;
    }
    this.frames.length = 0;
    this.dests.length = 0;
    this.head = 0;
  }
}

class PairEnd extends BaseBackend {
  readonly type = 'pair';
  peer!: PairEnd;
  /** Frames in the link FIFO addressed to this end. */
  inFifo = 0;
  /** This end got Queued and waits for `drain`. */
  private blocked = false;
  private readonly link: Link;
  private scratch: Uint8Array;

  constructor(link: Link, opts: PairOptions) {
    super({ mtu: opts.mtu, rxQueueFrames: link.bound });
    this.link = link;
    this.scratch = new Uint8Array(this.caps.maxFrameLen);
  }

  protected async onInit(): Promise<void> {}

  protected onSend(frame: Uint8Array): Verdict {
    const peer = this.peer;
    if (peer.state === 'closed') {
      this.drop('peer-closed');
      return Verdict.Dropped;
    }
    if (peer.state !== 'running') {
      this.drop('peer-down');
      return Verdict.Dropped;
    }
    if (frame.length > this.caps.maxFrameLen || frame.length > peer.caps.maxFrameLen) {
      this.drop('oversize');
      return Verdict.Dropped;
    }
    if (this.blocked || peer.backlog() >= this.link.bound) {
      this.drop('backpressure');
      return Verdict.Dropped;
    }
    if (this.link.async || this.link.busy) {
      this.link.enqueue(peer, frame);
    } else {
      if (this.scratch.length < frame.length) this.scratch = new Uint8Array(frame.length);
      this.scratch.set(frame);
      this.link.deliverNow(peer, this.scratch.subarray(0, frame.length));
    }
    if (peer.isRunning && peer.backlog() >= this.link.bound) {
      this.blocked = true;
      return Verdict.Queued;
    }
    return Verdict.Delivered;
  }

  /** Frames accepted for this end that its guest has not taken yet. */
  backlog(): number {
    return this.inFifo + this.rxQueued;
  }

  /** Called by the link: hand a frame to this end's guest (or its queue). */
  accept(frame: Uint8Array): void {
    try {
      this.deliver(frame);
    } catch {
      // The guest's rx handler threw. Count it on the receiving end and keep the link going.
      this.drop('rx-handler-error');
    }
  }

  /** The peer's backlog may have shrunk: release this end if it waits for drain. */
  maybeDrain(): void {
    if (this.blocked && this.state === 'running' && this.peer.backlog() === 0) {
      this.blocked = false;
      this.events.drain?.();
    }
  }

  override resumeRecv(): void {
    this.link.guard(() => super.resumeRecv());
    this.peer.maybeDrain();
  }

  override recv(buf: Uint8Array): number {
    const n = super.recv(buf);
    if (n !== 0) this.peer.maybeDrain();
    return n;
  }

  protected override onCapabilities(): void {
    if (this.scratch.length < this.caps.maxFrameLen) this.scratch = new Uint8Array(this.caps.maxFrameLen);
  }

  protected async onClose(): Promise<void> {
    this.blocked = false;
    if (this.peer.state === 'closed' || this.peer.state === 'new') this.link.shutdown();
  }
}

const EMPTY = new Uint8Array(0);
