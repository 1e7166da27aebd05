/**
 * WrappedBackend: the base of every middleware (pcap, tracer, fault injector). It implements
 * NetBackend by delegating to an inner backend, so a middleware overrides only what it needs:
 * `send` for the tx direction, `onRx` for the rx direction, `extraStats`/`onClose` for
 * bookkeeping.
 *
 * ## Receive path
 * A middleware that does not override `onRx` passes the rx handler straight to the inner backend
 * (no extra call, and pull mode is the inner backend's own).
 *
 * A middleware that overrides `onRx` always runs the inner backend in push mode and sends what it
 * wants the guest to see through `deliverRx`. `deliverRx` honours the guest's side of the
 * contract: while the guest has paused receive, or when the guest uses pull mode
 * (`init(null)`), frames are copied into a bounded FIFO here (`rxQueueFrames`, default 1024) that
 * serves `peekRecvLen`/`recv` and raises `readable`. When that FIFO fills, the inner backend is
 * paused too, so memory stays bounded; it is resumed when the FIFO has drained. This lets a
 * middleware emit frames on its own schedule (a reorder timer) without breaking pause/pull.
 *
 * ## Transmit path
 * `send` delegates; `sendBatch` uses the inner backend's batch form unless the subclass overrides
 * `send`, in which case frames go through `send` one by one (stopping after a `Queued`), so a
 * middleware that overrides only `send` sees every frame.
 *
 * Stats are the inner backend's, with the middleware's own drops added and its `extraStats`
 * merged into `extra`.
 */
import type {
  BackendEvents,
  BackendStats,
  Capabilities,
  CapabilityRequest,
  HostFwdApi,
  NetBackend,
  RxHandler,
  Verdict,
} from '../backend.ts';
import { ErrorCode, GuestnetError } from '../errors.ts';

export interface WrappedBackendOptions {
  /** Frames held for the guest while it is paused or in pull mode (rx-intercepting middleware). Default 1024. */
  rxQueueFrames?: number;
}

export abstract class WrappedBackend implements NetBackend {
  protected readonly inner: NetBackend;
  protected rxHandler: RxHandler | null = null;
  protected events: BackendEvents = {};
  /** The guest paused receive. */
  protected paused = false;
  protected closed = false;
  /** Virtio-net header length in force, kept current by init/setCapabilities. */
  protected vnetHdrLen = 0;
  protected readonly ownDrops: Record<string, number> = Object.create(null);

  private started = false;
  private readonly rxQueueFrames: number;
  private readonly rxq: Uint8Array[] = [];
  private rxqHead = 0;
  /** We paused the inner backend because our FIFO was full (not the guest). */
  private innerPausedByUs = false;

  constructor(inner: NetBackend, opts: WrappedBackendOptions = {}) {
    this.inner = inner;
    this.rxQueueFrames = opts.rxQueueFrames ?? 1024;
  }

  get type(): string {
    return this.inner.type;
  }

  get hostfwd(): HostFwdApi {
    return this.inner.hostfwd;
  }

  /** Whether the subclass sees rx frames (overrides `onRx`). */
  private get interceptsRx(): boolean {
    return this.onRx !== WrappedBackend.prototype.onRx;
  }

  init(rx: RxHandler | null, events: BackendEvents = {}): Promise<void> {
    if (this.started) {
      return Promise.reject(new GuestnetError(ErrorCode.BadBackend, `${this.type}: init() called twice`));
    }
    this.started = true;
    this.rxHandler = rx;
    this.events = events;
    this.vnetHdrLen = this.inner.capabilities().vnetHdrLen;
    if (!this.interceptsRx) return this.inner.init(rx, events);
    // Inner runs in push mode; readable comes from our FIFO, drain/error pass through.
    const innerEvents: BackendEvents = {};
    if (events.drain) innerEvents.drain = () => this.events.drain?.();
    if (events.error) innerEvents.error = (e) => this.events.error?.(e);
    return this.inner.init((frame) => this.onRx(frame), innerEvents);
  }

  /** Rx hook: a frame from the inner backend, valid only during the call. Default: pass on. */
  protected onRx(frame: Uint8Array): void {
    this.deliverRx(frame);
  }

  /**
   * Hand a frame to the guest: at once in push mode when not paused and nothing is waiting,
   * otherwise a copy goes to the bounded FIFO. Never throws. Returns false if dropped.
   */
  protected deliverRx(frame: Uint8Array): boolean {
    if (this.closed) return false;
    if (this.rxHandler !== null && !this.paused && this.rxqHead >= this.rxq.length) {
      this.rxHandler(frame);
      return true;
    }
    const queued = this.rxq.length - this.rxqHead;
    if (queued >= this.rxQueueFrames) {
      this.countDrop('rx-overflow');
      return false;
    }
    this.rxq.push(frame.slice());
    if (queued + 1 >= this.rxQueueFrames && !this.innerPausedByUs) {
      this.innerPausedByUs = true;
      if (!this.paused) this.inner.pauseRecv();
    }
    if (queued === 0 && this.rxHandler === null) this.events.readable?.();
    return true;
  }

  send(frame: Uint8Array): Verdict {
    return this.inner.send(frame);
  }

  sendBatch(frames: readonly Uint8Array[]): number {
    if (this.send === WrappedBackend.prototype.send) return this.inner.sendBatch(frames);
    for (let i = 0; i < frames.length; i++) {
      if (this.send(frames[i]!) === 'queued') return i + 1;
    }
    return frames.length;
  }

  peekRecvLen(): number {
    if (!this.interceptsRx) return this.inner.peekRecvLen();
    return this.rxqHead < this.rxq.length ? this.rxq[this.rxqHead]!.length : 0;
  }

  recv(buf: Uint8Array): number {
    if (!this.interceptsRx) return this.inner.recv(buf);
    if (this.rxqHead >= this.rxq.length) return 0;
    const f = this.rxq[this.rxqHead]!;
    this.rxq[this.rxqHead++] = EMPTY;
    this.compact();
    if (f.length > buf.length) {
      this.countDrop('rx-truncated');
      return -1;
    }
    buf.set(f);
    return f.length;
  }

  pauseRecv(): void {
    if (this.paused) return;
    this.paused = true;
    if (!this.innerPausedByUs) this.inner.pauseRecv();
  }

  resumeRecv(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.interceptsRx) {
      while (!this.paused && this.rxHandler !== null && this.rxqHead < this.rxq.length) {
        const f = this.rxq[this.rxqHead]!;
        this.rxq[this.rxqHead++] = EMPTY;
        this.rxHandler(f);
      }
      this.compact();
      if (this.paused) return;
    }
    if (!this.innerPausedByUs) this.inner.resumeRecv();
  }

  private compact(): void {
    if (this.rxqHead >= this.rxq.length) {
      this.rxq.length = 0;
      this.rxqHead = 0;
      if (this.innerPausedByUs) {
        this.innerPausedByUs = false;
        if (!this.paused) this.inner.resumeRecv();
      }
    } else if (this.rxqHead > 1024 && this.rxqHead * 2 > this.rxq.length) {
      this.rxq.splice(0, this.rxqHead);
      this.rxqHead = 0;
    }
  }

  capabilities(): Capabilities {
    return this.inner.capabilities();
  }

  setCapabilities(req: CapabilityRequest): Capabilities {
    const caps = this.inner.setCapabilities(req);
    this.vnetHdrLen = caps.vnetHdrLen;
    this.onCapabilities(caps);
    return caps;
  }

  /** Called after capabilities changed. */
  protected onCapabilities(_caps: Capabilities): void {}

  stats(): BackendStats {
    const s = this.inner.stats();
    const drops = { ...s.drops };
    for (const k of Object.keys(this.ownDrops)) drops[k] = (drops[k] ?? 0) + this.ownDrops[k]!;
    const mine = this.extraStats();
    const extra = mine ? { ...s.extra, ...mine } : s.extra;
    return { ...s, drops, ...(extra ? { extra } : {}) };
  }

  /** Counters this middleware adds to `stats().extra`. */
  protected extraStats(): Record<string, number> | undefined {
    return undefined;
  }

  protected countDrop(reason: string, n = 1): void {
    this.ownDrops[reason] = (this.ownDrops[reason] ?? 0) + n;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.rxq.length = 0;
    this.rxqHead = 0;
    try {
      await this.inner.close();
    } finally {
      await this.onClose();
    }
  }

  /** Release the middleware's own resources (timers, files); runs after the inner backend closed. */
  protected async onClose(): Promise<void> {}
}

const EMPTY = new Uint8Array(0);
