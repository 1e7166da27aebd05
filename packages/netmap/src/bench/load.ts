/**
 * The load generator and sink of the netmap benchmark (main.ts), shared by the in-process runs
 * and the port processes (port-child.ts).
 *
 * The sender pushes one prebuilt frame as fast as the port takes it: it sends in bursts of 256,
 * waits for `drain` after a `queued` verdict (the ring is full: backpressure, not loss) and yields
 * to the event loop between bursts so doorbells and the peer's releases get in. The receiver
 * counts frames and bytes and the time of the first and last frame; the rate is measured at the
 * receiver, over the span it actually received traffic.
 */
import type { NetBackend } from '@guestnet/core';

/** A unicast test frame of `len` bytes from 02::src to 02::dst (ethertype 0x88b5). */
export function benchFrame(len: number, src: number, dst: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set([0x02, 0, 0, 0, 0, dst, 0x02, 0, 0, 0, 0, src, 0x88, 0xb5], 0);
  for (let i = 14; i < len; i++) f[i] = i & 0xff;
  return f;
}

/** A broadcast from `src` so the switch learns its port before the unicast stream. */
export function helloFrame(src: number): Uint8Array {
  const f = new Uint8Array(60);
  f.fill(0xff, 0, 6);
  f.set([0x02, 0, 0, 0, 0, src, 0x88, 0xb6], 6);
  return f;
}

export interface SendResult {
  sent: number;
  queued: number;
  dropped: number;
  ms: number;
}

/** Wires `drain` events to {@link runSender}: pass `events` to init. */
export class DrainWaiter {
  private waiter: (() => void) | null = null;
  readonly events = {
    drain: (): void => {
      const w = this.waiter;
      this.waiter = null;
      w?.();
    },
  };
  wait(): Promise<void> {
    return new Promise((r) => (this.waiter = r));
  }
}

export async function runSender(b: NetBackend, frame: Uint8Array, durationMs: number, drain: DrainWaiter): Promise<SendResult> {
  let sent = 0;
  let queued = 0;
  let dropped = 0;
  const t0 = performance.now();
  const end = t0 + durationMs;
  for (;;) {
    for (let i = 0; i < 256; i++) {
      const v = b.send(frame);
      if (v === 'dropped') {
        dropped++;
        continue;
      }
      sent++;
      if (v === 'queued') {
        queued++;
        await drain.wait();
      }
    }
    if (performance.now() >= end) break;
    await new Promise((r) => setImmediate(r));
  }
  return { sent, queued, dropped, ms: performance.now() - t0 };
}

export interface SinkReport {
  frames: number;
  bytes: number;
  /** ms between the first and the last frame. */
  spanMs: number;
}

export class Sink {
  frames = 0;
  bytes = 0;
  private first = 0;
  private last = 0;
  readonly rx = (f: Uint8Array): void => {
    if (f[12] !== 0x88 || f[13] !== 0xb5) return;
    const now = performance.now();
    if (this.frames === 0) this.first = now;
    this.last = now;
    this.frames++;
    this.bytes += f.length;
  };
  reset(): void {
    this.frames = this.bytes = 0;
    this.first = this.last = 0;
  }
  report(): SinkReport {
    return { frames: this.frames, bytes: this.bytes, spanMs: this.last - this.first };
  }
}
