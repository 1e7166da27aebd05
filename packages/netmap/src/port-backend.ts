/**
 * NetmapPortBackend: the NetBackend of a guest NIC on a netmap-style port (a VALE switch port or
 * one end of a pipe). It is netmap's "user" side of a port region (ring.ts).
 *
 * ## Theory of operation
 * tx (guest → switch): `send` copies the frame into tx-ring slots at `head` (several slots with
 * NS_MOREFRAG for a frame larger than a buffer) and schedules one publish per event-loop turn
 * (a microtask), so a burst of sends costs one txsync and at most one doorbell ring; `sendBatch`
 * publishes once at its end. When the free space left after a frame could not hold another frame
 * of `maxFrameLen` the verdict is `queued`: the frame was taken, and the sender should wait for
 * `drain`, raised once the switch has released enough slots (the backend arms the ring's
 * need-wakeup flag, so the switch kicks only then). A frame sent while the ring is full anyway is
 * dropped (`backpressure`), as the contract allows.
 *
 * rx (switch → guest): the switch's doorbell (or a ring found non-empty) drains the rx ring.
 * Push mode hands each frame to `rx` straight out of shared memory when it sits in one buffer
 * (a view, valid only during the call), or copied into one reused reassembly buffer when it
 * spans several. Pull mode leaves frames in the ring: `peekRecvLen`/`recv` read them there, and
 * `readable` fires when frames arrive after the ring was found empty. While paused nothing is
 * read, so frames wait in the ring (bounded by its size) and the switch holds back or drops.
 * Consumed slots are released with one publish per drain.
 *
 * Capabilities: MTU up to 65535 (frames up to MAX_FRAME_LEN, with a virtio-net header of 10 or
 * 12 bytes if negotiated; the header length is declared in the region so the switch can
 * convert), and so are the offloads granted (the switch completes checksums and segments TSO/USO
 * super-frames for a port that did not take them). A pipe does no conversion: both ends must
 * agree on the header length and offloads.
 *
 * close() marks the region closed, kicks the other side (the switch then detaches the port) and
 * releases the doorbells; the optional `onClose` hook lets the in-process registry detach at once.
 */
import { BaseBackend, Verdict, type Capabilities } from '@guestnet/core';
import { MAX_FRAME_LEN, type NetmapRing, type PortRegion } from './ring.ts';
import type { Doorbell } from './doorbell.ts';
import { setPortOffloads } from './switch.ts';

export interface NetmapPortOptions {
  /** IP MTU announced in capabilities(). Default 1500; up to 65535. */
  mtu?: number;
  /** The backend type reported (`netmap`). */
  type?: string;
  /** Called once from close(), after the region is marked closed (the local registry detaches). */
  onClose?: () => void;
  /**
   * Keep the thread's event loop alive while the port is open (default true): a pending
   * Atomics.waitAsync alone does not (see doorbell.ts).
   */
  keepAlive?: boolean;
}

const EMPTY = new Uint8Array(0);

export class NetmapPortBackend extends BaseBackend {
  readonly type: string;
  readonly region: PortRegion;
  private readonly tx: NetmapRing;
  private readonly rxRing: NetmapRing;
  private readonly toSwitch: Doorbell;
  private readonly fromSwitch: Doorbell;
  private readonly onCloseHook: (() => void) | undefined;
  private readonly keepAlive: boolean;
  /** Reassembly buffer for frames that span several slots (push mode). */
  private readonly reasm = new Uint8Array(MAX_FRAME_LEN);
  private publishScheduled = false;
  private rxReleaseScheduled = false;
  private wantDrain = false;
  /** Free slots that must be back before `drain` fires (the frame that did not fit, at least). */
  private drainNeed = 1;
  /** Slots a frame of maxFrameLen needs: below this much free space we answer `queued`. */
  private reserveSlots: number;
  private draining = false;
  private rxArmed = false;
  private peerGone = false;
  private readonly publishTx = (): void => {
    this.publishScheduled = false;
    if (this.state === 'closed') return;
    if (this.tx.publish()) this.toSwitch.ring();
  };
  private readonly releaseRx = (): void => {
    this.rxReleaseScheduled = false;
    if (this.rxRing.publish()) this.toSwitch.ring();
  };
  private readonly emitReadable = (): void => {
    if (this.state === 'running' && !this.rxHandler && !this.paused) this.events.readable?.();
  };

  constructor(region: PortRegion, bells: { toSwitch: Doorbell; fromSwitch: Doorbell }, opts: NetmapPortOptions = {}) {
    super({
      mtu: opts.mtu ?? 1500,
      supportedVnetHdrLens: [10, 12],
      supportedOffloads: { csum: true, tso4: true, tso6: true, ecn: true, ufo: true },
    });
    this.type = opts.type ?? 'netmap';
    this.region = region;
    this.tx = region.tx;
    this.rxRing = region.rx;
    this.toSwitch = bells.toSwitch;
    this.fromSwitch = bells.fromSwitch;
    this.onCloseHook = opts.onClose;
    this.keepAlive = opts.keepAlive ?? true;
    this.reserveSlots = this.reserveFor(this.caps.maxFrameLen);
  }

  private reserveFor(maxFrame: number): number {
    const need = this.tx.slotsFor(Math.min(maxFrame, MAX_FRAME_LEN));
    // A ring too small to keep a full frame in reserve still works: queued after every frame.
    return Math.min(need, this.tx.numSlots - 1);
  }

  protected override onCapabilities(caps: Capabilities): void {
    this.reserveSlots = this.reserveFor(caps.maxFrameLen);
    this.region.setVnetHdrLen(caps.vnetHdrLen);
    setPortOffloads(this.region, caps.offloads);
  }

  protected async onInit(): Promise<void> {
    this.region.setVnetHdrLen(this.caps.vnetHdrLen);
    // Declared, so the switch checksums/segments for this port what it did not negotiate.
    setPortOffloads(this.region, this.caps.offloads);
    this.fromSwitch.onRing(() => this.kicked());
    if (this.keepAlive) this.fromSwitch.ref?.();
    // Frames may already wait (a reopened region): look once init() has resolved and the state
    // is 'running' (a microtask here would run before init's own continuation).
    setImmediate(() => this.kicked());
  }

  protected onSend(frame: Uint8Array): Verdict {
    if (this.peerGone) {
      this.drop('peer-closed');
      return Verdict.Dropped;
    }
    const tx = this.tx;
    if (!tx.canCarry(frame.length)) {
      this.drop('too-big');
      return Verdict.Dropped;
    }
    if (!tx.writeFrame(frame, 0, frame.length)) {
      this.drop('backpressure');
      this.armDrain(Math.max(this.reserveSlots, tx.slotsFor(frame.length)));
      return Verdict.Dropped;
    }
    this.schedulePublish();
    if (tx.space() < this.reserveSlots && tx.refresh() < this.reserveSlots) {
      this.armDrain(this.reserveSlots);
      return Verdict.Queued;
    }
    return Verdict.Delivered;
  }

  override sendBatch(frames: readonly Uint8Array[]): number {
    // Publish once for the whole batch: the microtask scheduled by the first send covers it.
    return super.sendBatch(frames);
  }

  // ---- pull mode ------------------------------------------------------------------------------

  override peekRecvLen(): number {
    if (this.state !== 'running' || this.rxHandler) return 0;
    const n = this.rxRing.peekFrameLen();
    if (n === 0) this.armRx();
    return n;
  }

  override recv(buf: Uint8Array): number {
    if (this.state !== 'running' || this.rxHandler) return 0;
    const n = this.rxRing.readFrame(buf);
    if (n === 0) {
      this.armRx();
      return 0;
    }
    this.scheduleRelease();
    if (n < 0) {
      this.drop('rx-truncated');
      return -1;
    }
    this.counters.rxFrames++;
    this.counters.rxBytes += n;
    return n;
  }

  // ---- pause / resume -------------------------------------------------------------------------

  protected override onPause(): void {
    // Nothing to stop: frames simply stay in the rx ring until resume.
  }

  protected override onResume(): void {
    this.kicked();
  }

  // ---- close ----------------------------------------------------------------------------------

  protected async onClose(): Promise<void> {
    // Publish what was sent, then tell the other side we are gone.
    if (this.tx.publish()) this.toSwitch.ring();
    this.region.markClosed();
    this.toSwitch.ring();
    this.fromSwitch.unref?.();
    this.fromSwitch.close();
    this.toSwitch.close();
    this.onCloseHook?.();
  }

  protected override extraStats(): Record<string, number> | undefined {
    const t = this.tx;
    const r = this.rxRing;
    const bad = t.badIndex + t.badSlot + r.badIndex + r.badSlot + r.badFrame;
    return bad ? { 'bad-index': t.badIndex + r.badIndex, 'bad-slot': t.badSlot + r.badSlot, 'bad-frame': r.badFrame } : undefined;
  }

  // ---- internals ------------------------------------------------------------------------------

  private schedulePublish(): void {
    if (this.publishScheduled) return;
    this.publishScheduled = true;
    queueMicrotask(this.publishTx);
  }

  private scheduleRelease(): void {
    if (this.rxReleaseScheduled) return;
    this.rxReleaseScheduled = true;
    queueMicrotask(this.releaseRx);
  }

  private armDrain(need: number): void {
    this.drainNeed = this.wantDrain ? Math.max(this.drainNeed, need) : need;
    this.wantDrain = true;
    // Make sure the switch sees what we wrote before we wait for it.
    if (this.tx.publish()) this.toSwitch.ring();
    if (this.tx.armWakeup(this.drainNeed)) queueMicrotask(() => this.kicked());
  }

  private armRx(): void {
    if (this.rxArmed) return;
    this.rxArmed = true;
    if (this.rxRing.armWakeup()) {
      this.rxArmed = false;
      queueMicrotask(this.emitReadable);
    }
  }

  /** The other side rang (frames for us, or space freed), or we must look anyway. */
  private kicked(): void {
    if (this.state !== 'running' && this.state !== 'starting') return;
    if (!this.peerGone && this.region.peerClosed()) this.peerGone = true;
    if (this.wantDrain) {
      if (this.tx.refresh() >= this.drainNeed) {
        this.wantDrain = false;
        this.tx.disarmWakeup();
        this.events.drain?.();
      } else if (this.tx.armWakeup(this.drainNeed)) {
        this.wantDrain = false;
        this.events.drain?.();
      }
    }
    if (this.paused) return;
    if (!this.rxHandler) {
      this.rxArmed = false;
      if (this.rxRing.refresh() > 0 && this.rxRing.peekFrameLen() > 0) this.emitReadable();
      else this.armRx();
      return;
    }
    this.drainRx();
  }

  private drainRx(): void {
    if (this.draining) return; // re-entered from an rx handler: the outer loop continues
    this.draining = true;
    const r = this.rxRing;
    try {
      for (;;) {
        let got = 0;
        while (!this.paused && this.rxHandler && this.state === 'running') {
          const len = r.peekFrameLen();
          if (len === 0) break;
          const off = r.singleSlotOffset();
          let frame: Uint8Array = EMPTY;
          if (off >= 0) {
            frame = r.bytes.subarray(off, off + len);
            r.dropFrame();
          } else {
            const n = r.readFrame(this.reasm);
            if (n <= 0) continue;
            frame = this.reasm.subarray(0, n);
          }
          got++;
          this.counters.rxFrames++;
          this.counters.rxBytes += len;
          try {
            this.rxHandler(frame);
          } catch {
            this.drop('rx-handler-error');
          }
          // Release in batches so the switch can refill while we deliver.
          if ((got & 63) === 0 && r.publish()) this.toSwitch.ring();
        }
        if (r.publish()) this.toSwitch.ring();
        if (this.paused || !this.rxHandler || this.state !== 'running') return;
        if (!r.armWakeup()) return;
      }
    } finally {
      this.draining = false;
    }
  }
}
