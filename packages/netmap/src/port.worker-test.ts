/**
 * Worker script for workers.test.ts (named so vitest does not collect it): owns one switch port
 * (or pipe end) handed over as a PortRegionHandle, sends `count` numbered frames to `peer` with
 * the backend's flow control (queued → wait for drain; a `dropped` backpressure frame is sent
 * again), and checks that the `expect` frames it receives arrive in order, intact and with the
 * sizes the sender's seed produces. Posts one result message and closes its port.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Verdict } from '@guestnet/core';
import { openPortBackend, type PortRegionHandle } from './local.ts';
import { BROADCAST, checkFrame, mac, testFrame } from './testing.ts';

export interface PortWorkerData {
  handle: PortRegionHandle;
  me: number;
  /** The MAC index to send to; -1 sends nothing. */
  peer: number;
  count: number;
  /** Frames to expect from `expectFrom` (its seed gives their sizes). */
  expect: number;
  expectFrom: number;
  maxLen: number;
}

export interface PortWorkerResult {
  me: number;
  sent: number;
  received: number;
  bad: number;
  outOfOrder: number;
  wrongSize: number;
  drops: Record<string, number>;
  firstError: string;
}

/** The size of frame `seq` from sender `who`: mostly Ethernet-sized, every 16th up to maxLen. */
export function frameSize(who: number, seq: number, maxLen: number): number {
  let x = (Math.imul(who + 1, 0x9e3779b1) ^ Math.imul(seq + 1, 0x85ebca6b)) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x2c1b3c6d) >>> 0;
  x = (x ^ (x >>> 12)) >>> 0;
  return seq % 16 === 0 ? 60 + (x % (maxLen - 59)) : 60 + (x % 1455);
}

const d = workerData as PortWorkerData;
const be = openPortBackend(d.handle);
be.setCapabilities({ mtu: 65535 });
const res: PortWorkerResult = { me: d.me, sent: 0, received: 0, bad: 0, outOfOrder: 0, wrongSize: 0, drops: {}, firstError: '' };
let nextSeq = 0;
let drained: (() => void) | null = null;
let allIn: (() => void) | null = null;
const done = new Promise<void>((r) => (allIn = r));

await be.init(
  (f) => {
    if (f.length >= 14 && f[0] === 0xff) return; // a learning broadcast
    const seq = checkFrame(f);
    res.received++;
    if (seq < 0) {
      res.bad++;
      if (!res.firstError) res.firstError = `bad checksum in frame #${res.received} of ${f.length} bytes`;
    } else {
      if (seq !== nextSeq) {
        res.outOfOrder++;
        if (!res.firstError) res.firstError = `expected seq ${nextSeq}, got ${seq}`;
      }
      if (f.length !== frameSize(d.expectFrom, seq, d.maxLen)) res.wrongSize++;
      nextSeq = seq + 1;
    }
    if (res.received === d.expect) allIn?.();
  },
  { drain: () => drained?.() },
);

// Announce our MAC so the switch learns it (and wait until the peer announced itself).
be.send(testFrame(BROADCAST, mac(d.me), 60, 0));
parentPort!.postMessage({ ready: d.me });
await new Promise<void>((r) => parentPort!.once('message', () => r()));

const buf = new Uint8Array(d.maxLen);
const dst = mac(d.peer);
const src = mac(d.me);
for (let seq = 0; seq < d.count; seq++) {
  const len = frameSize(d.me, seq, d.maxLen);
  const f = testFrame(dst, src, len, seq, 0, buf.subarray(0, len));
  for (;;) {
    const v = be.send(f);
    if (v === Verdict.Delivered) break;
    // queued: taken, but wait for drain before the next one; dropped: not taken, retry after drain.
    await new Promise<void>((r) => (drained = r));
    drained = null;
    if (v === Verdict.Queued) break;
  }
  res.sent++;
}
if (d.expect > 0) await done;
res.drops = be.stats().drops;
parentPort!.postMessage({ result: res });
await be.close();
