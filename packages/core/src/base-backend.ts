/**
 * BaseBackend: the bookkeeping every backend shares, so a backend implements only its data path.
 *
 * It owns: the init/close state machine, push vs pull receive (a bounded FIFO of copies in pull
 * mode, and while paused), pause/resume, frame/byte/drop counters, vnet-header negotiation
 * against declared support, and the "no hostfwd" answer.
 *
 * A subclass implements `onInit`, `onSend` (the frame is only borrowed), `onClose`, and calls
 * `deliver(frame)` to hand a frame to the guest. When paused, `deliver` queues up to
 * `rxQueueFrames` frames and then drops ("rx-overflow"); subclasses that read host sources should
 * also stop reading in `onPause` so nothing piles up.
 */
import {
  type BackendEvents,
  type BackendStats,
  type Capabilities,
  type CapabilityRequest,
  type HostFwdApi,
  type HostFwdRule,
  type NetBackend,
  type Offloads,
  type RxHandler,
  type VnetHdrLen,
  NO_OFFLOADS,
  Verdict,
} from './backend.ts';
import { ErrorCode, GuestnetError, UnsupportedError } from './errors.ts';

export interface BaseBackendOptions {
  mtu?: number;
  /** Vnet header lengths the data path understands (0 is always included). */
  supportedVnetHdrLens?: readonly VnetHdrLen[];
  supportedOffloads?: Partial<Offloads>;
  /** Frames held for the guest in pull mode or while paused. Default 1024. */
  rxQueueFrames?: number;
}

const MAX_VNET_HDR = 12;

export abstract class BaseBackend implements NetBackend {
  abstract readonly type: string;

  protected rxHandler: RxHandler | null = null;
  protected events: BackendEvents = {};
  protected paused = false;
  protected state: 'new' | 'starting' | 'running' | 'closed' = 'new';
  protected caps: Capabilities;
  protected readonly counters = { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0 };
  protected readonly dropCounts: Record<string, number> = Object.create(null);
  /** Frames waiting for the guest (pull mode or paused). Copies; ring of arrays. */
  private readonly rxQueue: Uint8Array[] = [];
  private rxHead = 0;
  private readonly rxQueueFrames: number;

  constructor(opts: BaseBackendOptions = {}) {
    const supportedVnet = [0, ...(opts.supportedVnetHdrLens ?? []).filter((n) => n !== 0)] as VnetHdrLen[];
    const mtu = opts.mtu ?? 1500;
    this.caps = {
      mtu,
      maxFrameLen: mtu + 18,
      vnetHdrLen: 0,
      offloads: { ...NO_OFFLOADS },
      supportedVnetHdrLens: supportedVnet,
      supportedOffloads: { ...NO_OFFLOADS, ...opts.supportedOffloads },
      hostfwd: false,
    };
    this.rxQueueFrames = opts.rxQueueFrames ?? 1024;
  }

  // ---- subclass hooks ------------------------------------------------------------------------
  protected abstract onInit(): Promise<void>;
  /** Data path. Must not throw; count drops with `drop(reason)`. The frame is borrowed. */
  protected abstract onSend(frame: Uint8Array): Verdict;
  protected abstract onClose(): Promise<void>;
  protected onPause(): void {}
  protected onResume(): void {}
  /** Called after capabilities changed, so the data path can pick them up. */
  protected onCapabilities(_caps: Capabilities): void {}

  // ---- NetBackend ----------------------------------------------------------------------------
  async init(rx: RxHandler | null, events: BackendEvents = {}): Promise<void> {
    if (this.state !== 'new') {
      throw new GuestnetError(ErrorCode.BadBackend, `${this.type}: init() called twice`);
    }
    this.state = 'starting';
    this.rxHandler = rx;
    this.events = events;
    try {
      await this.onInit();
    } catch (err) {
      this.state = 'closed';
      await this.onClose().catch(() => {});
      throw err;
    }
    if (this.state === 'starting') this.state = 'running';
  }

  send(frame: Uint8Array): Verdict {
    if (this.state !== 'running') {
      this.drop(this.state === 'closed' ? 'closed' : 'not-running');
      return Verdict.Dropped;
    }
    const min = 14 + this.caps.vnetHdrLen;
    if (frame.length < min) {
      this.drop('runt');
      return Verdict.Dropped;
    }
    this.counters.txFrames++;
    this.counters.txBytes += frame.length;
    try {
      return this.onSend(frame);
    } catch {
      // A data-path bug must not take the hypervisor down; count it so it is visible.
      this.drop('internal-error');
      return Verdict.Dropped;
    }
  }

  sendBatch(frames: readonly Uint8Array[]): number {
    for (let i = 0; i < frames.length; i++) {
      if (this.send(frames[i]!) === Verdict.Queued) return i + 1;
    }
    return frames.length;
  }

  peekRecvLen(): number {
    return this.rxHead < this.rxQueue.length ? this.rxQueue[this.rxHead]!.length : 0;
  }

  recv(buf: Uint8Array): number {
    if (this.rxHead >= this.rxQueue.length) return 0;
    const f = this.rxQueue[this.rxHead]!;
    this.rxQueue[this.rxHead++] = EMPTY;
    this.compactRxQueue();
    if (f.length > buf.length) {
      this.drop('rx-truncated');
      return -1;
    }
    buf.set(f);
    this.countRx(f.length);
    return f.length;
  }

  pauseRecv(): void {
    if (this.paused) return;
    this.paused = true;
    this.onPause();
  }

  resumeRecv(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.rxHandler) this.flushRxQueue();
    if (!this.paused) this.onResume();
  }

  readonly hostfwd: HostFwdApi = {
    add: (rule) => this.hostfwdAdd(rule),
    remove: (rule) => this.hostfwdRemove(rule),
    list: () => this.hostfwdList(),
  };

  protected hostfwdAdd(_rule: HostFwdRule): Promise<HostFwdRule> {
    return Promise.reject(this.noHostFwd());
  }
  protected hostfwdRemove(_rule: Pick<HostFwdRule, 'proto' | 'host'>): Promise<boolean> {
    return Promise.reject(this.noHostFwd());
  }
  protected hostfwdList(): HostFwdRule[] {
    return [];
  }
  private noHostFwd(): GuestnetError {
    return new UnsupportedError(`the ${this.type} backend does not forward host ports`, 'use backend=slirp or backend=uip for hostfwd');
  }

  capabilities(): Capabilities {
    return { ...this.caps, offloads: { ...this.caps.offloads } };
  }

  setCapabilities(req: CapabilityRequest): Capabilities {
    if (req.vnetHdrLen !== undefined) {
      if (!this.caps.supportedVnetHdrLens.includes(req.vnetHdrLen)) {
        throw new UnsupportedError(
          `${this.type}: virtio-net header length ${req.vnetHdrLen} is not supported`,
          `supported: ${this.caps.supportedVnetHdrLens.join(', ')}`,
        );
      }
      this.caps.vnetHdrLen = req.vnetHdrLen;
    }
    if (req.mtu !== undefined) {
      if (!Number.isInteger(req.mtu) || req.mtu < 68 || req.mtu > 65535) {
        throw new GuestnetError(ErrorCode.BadConfig, `mtu ${req.mtu} is out of range 68..65535`);
      }
      this.caps.mtu = req.mtu;
    }
    if (req.offloads) {
      for (const k of Object.keys(req.offloads) as (keyof Offloads)[]) {
        const want = req.offloads[k];
        if (want === undefined) continue;
        // Grant only what the backend supports; offloads without a vnet header mean nothing.
        this.caps.offloads[k] = want && this.caps.supportedOffloads[k] && this.caps.vnetHdrLen > 0;
      }
    }
    if (this.caps.vnetHdrLen === 0) this.caps.offloads = { ...NO_OFFLOADS };
    const gso = this.caps.offloads.tso4 || this.caps.offloads.tso6 || this.caps.offloads.ufo;
    this.caps.maxFrameLen = gso ? 65535 + 14 + MAX_VNET_HDR : this.caps.mtu + 18 + this.caps.vnetHdrLen;
    this.onCapabilities(this.capabilities());
    return this.capabilities();
  }

  stats(): BackendStats {
    return {
      ...this.counters,
      drops: { ...this.dropCounts },
      flows: this.flowCounts(),
      ...(this.extraStats() ? { extra: this.extraStats() } : {}),
    };
  }
  protected flowCounts(): Record<string, number> {
    return {};
  }
  protected extraStats(): Record<string, number> | undefined {
    return undefined;
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasStarted = this.state !== 'new';
    this.state = 'closed';
    this.rxQueue.length = 0;
    this.rxHead = 0;
    if (wasStarted) await this.onClose();
  }

  // ---- helpers for subclasses ----------------------------------------------------------------
  get isRunning(): boolean {
    return this.state === 'running' || this.state === 'starting';
  }

  /** Count a dropped frame by reason. */
  protected drop(reason: string, n = 1): void {
    this.dropCounts[reason] = (this.dropCounts[reason] ?? 0) + n;
  }

  /**
   * Hand a frame to the guest. In push mode and not paused, `rx` is called synchronously and the
   * frame may be reused by the caller afterwards. Otherwise a copy is queued (bounded).
   * Returns false if the frame was dropped.
   */
  protected deliver(frame: Uint8Array): boolean {
    if (this.state === 'closed') return false;
    if (this.rxHandler && !this.paused && this.rxHead >= this.rxQueue.length) {
      this.countRx(frame.length);
      this.rxHandler(frame);
      return true;
    }
    if (this.rxQueue.length - this.rxHead >= this.rxQueueFrames) {
      this.drop('rx-overflow');
      return false;
    }
    const wasEmpty = this.rxHead >= this.rxQueue.length;
    this.rxQueue.push(frame.slice());
    if (wasEmpty && !this.rxHandler) this.events.readable?.();
    return true;
  }

  /** Frames waiting for the guest. */
  protected get rxQueued(): number {
    return this.rxQueue.length - this.rxHead;
  }

  private countRx(len: number): void {
    this.counters.rxFrames++;
    this.counters.rxBytes += len;
  }

  private flushRxQueue(): void {
    while (!this.paused && this.rxHandler && this.rxHead < this.rxQueue.length) {
      const f = this.rxQueue[this.rxHead]!;
      this.rxQueue[this.rxHead++] = EMPTY;
      this.countRx(f.length);
      this.rxHandler(f);
    }
    this.compactRxQueue();
  }

  private compactRxQueue(): void {
    if (this.rxHead >= this.rxQueue.length) {
      this.rxQueue.length = 0;
      this.rxHead = 0;
    } else if (this.rxHead > 1024 && this.rxHead * 2 > this.rxQueue.length) {
      this.rxQueue.splice(0, this.rxHead);
      this.rxHead = 0;
    }
  }
}

const EMPTY = new Uint8Array(0);
