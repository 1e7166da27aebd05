/**
 * Child process of the cross-process switch tests (switch.process.test.ts) and the benchmark:
 * one guest NIC as a separate process. It creates its backend from a config string exactly as a
 * hypervisor would (`createBackend('backend=valeX:1,…')`), announces its MAC with a broadcast,
 * and on command sends a numbered stream of frames to another MAC while checking every frame it
 * receives (per source: increasing sequence numbers — a gap is a frame the switch dropped and
 * counted, a step back is an error —, the expected length, every byte).
 *
 * Frame i of a stream from `src` (MAC 02:00:00:00:00:src) is `streamFrameLen(seed, i)` bytes:
 * Ethernet header with ethertype 0x88b5, the u32 sequence number at offset 14, then
 * `(i * 31 + k * 7 + seed) & 0xff` at each offset k ≥ 18, where seed = src × 1000 and maxLen
 * is the same for every child of a run. Run with `node --import tsx CHILD CONFIG MAC-BYTE MAXLEN`
 * (forked, IPC channel required). Commands and replies are in {@link ChildCommand}.
 */
import { createBackend, type NetBackend } from '@guestnet/core';

export const DATA_ETHERTYPE = 0x88b5;
export const HELLO_ETHERTYPE = 0x88b6;

export type ChildCommand =
  | { cmd: 'send'; count: number; dst: number }
  | { cmd: 'report' }
  | { cmd: 'close' };

export interface SourceReport {
  frames: number;
  bytes: number;
  lastSeq: number;
  /** Frames skipped in the sequence (the switch dropped them: a full ring, counted there). */
  missing: number;
  /** Reordered, repeated, wrong-length or corrupted frames: must stay 0. */
  errors: number;
  firstError: string | null;
}

export interface ChildReport {
  type: 'report';
  sources: Record<string, SourceReport>;
  foreign: number;
  stats: ReturnType<NetBackend['stats']>;
}

/** Deterministic frame length for (seed, seq): odd frames ≤ 1514, even ones up to maxLen. */
export function streamFrameLen(seed: number, seq: number, maxLen: number): number {
  let h = (Math.imul(seq ^ seed, 0x9e3779b1) ^ (seq >>> 3)) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b) >>> 0;
  const top = seq & 1 ? Math.min(1514, maxLen) : maxLen;
  return 60 + (h % (top - 59));
}

export function fillStreamFrame(f: Uint8Array, len: number, src: number, dst: number, seed: number, seq: number): void {
  f[0] = 0x02;
  f[1] = f[2] = f[3] = f[4] = 0;
  f[5] = dst;
  f[6] = 0x02;
  f[7] = f[8] = f[9] = f[10] = 0;
  f[11] = src;
  f[12] = DATA_ETHERTYPE >> 8;
  f[13] = DATA_ETHERTYPE & 0xff;
  f[14] = seq >>> 24;
  f[15] = (seq >>> 16) & 0xff;
  f[16] = (seq >>> 8) & 0xff;
  f[17] = seq & 0xff;
  for (let k = 18; k < len; k++) f[k] = (seq * 31 + k * 7 + seed) & 0xff;
}

async function main(): Promise<void> {
  const config = process.argv[2];
  const me = Number(process.argv[3]);
  const maxLen = Number(process.argv[4] ?? 65535);
  const send = process.send?.bind(process);
  if (!config || !send || !(me > 0 && me < 255) || !(maxLen >= 60 && maxLen <= 65535)) throw new Error('usage: forked with CONFIG MAC-BYTE MAXLEN');
  const reply = (m: unknown): void => void send(m);

  const sources: Record<string, SourceReport> = {};
  let foreign = 0;
  const rx = (f: Uint8Array): void => {
    if (f.length < 18 || f[12] !== DATA_ETHERTYPE >> 8 || f[13] !== (DATA_ETHERTYPE & 0xff) || f[5] !== me) {
      foreign++;
      return;
    }
    const src = f[11]!;
    const seq = ((f[14]! << 24) | (f[15]! << 16) | (f[16]! << 8) | f[17]!) >>> 0;
    const r = (sources[src] ??= { frames: 0, bytes: 0, lastSeq: -1, missing: 0, errors: 0, firstError: null });
    r.frames++;
    r.bytes += f.length;
    const seed = src * 1000;
    let err: string | null = null;
    if (seq <= r.lastSeq) err = `seq ${seq} after ${r.lastSeq}`;
    else if (f.length !== streamFrameLen(seed, seq, maxLen)) err = `frame ${seq}: length ${f.length}, expected ${streamFrameLen(seed, seq, maxLen)}`;
    else {
      for (let k = 18; k < f.length; k++) {
        if (f[k] !== ((seq * 31 + k * 7 + seed) & 0xff)) {
          err = `frame ${seq}: byte ${k} is ${f[k]}`;
          break;
        }
      }
    }
    if (!err) r.missing += seq - r.lastSeq - 1;
    r.lastSeq = Math.max(r.lastSeq, seq);
    if (err) {
      r.errors++;
      r.firstError ??= err;
    }
  };

  let drained: (() => void) | null = null;
  const backend = await createBackend(config, { importer: (s) => import(s) });
  await backend.init(rx, {
    drain: () => {
      const d = drained;
      drained = null;
      d?.();
    },
    error: (e) => reply({ type: 'error', message: e.message }),
  });
  // Announce our MAC so the switch learns it before any unicast.
  const hello = new Uint8Array(60);
  hello.fill(0xff, 0, 6);
  hello.set([0x02, 0, 0, 0, 0, me], 6);
  hello[12] = HELLO_ETHERTYPE >> 8;
  hello[13] = HELLO_ETHERTYPE & 0xff;
  backend.send(hello);

  process.on('message', (raw) => {
    const m = raw as ChildCommand;
    if (m.cmd === 'send') {
      void (async () => {
        const seed = me * 1000;
        const buf = new Uint8Array(maxLen);
        let queued = 0;
        let dropped = 0;
        const t0 = performance.now();
        for (let seq = 0; seq < m.count; seq++) {
          const len = streamFrameLen(seed, seq, maxLen);
          fillStreamFrame(buf, len, me, m.dst, seed, seq);
          const v = backend.send(buf.subarray(0, len));
          if (v === 'dropped') dropped++;
          if (v === 'queued') {
            queued++;
            await new Promise<void>((r) => (drained = r));
          } else if ((seq & 255) === 255) {
            // Let received frames and kicks in now and then on a long stream.
            await new Promise((r) => setImmediate(r));
          }
        }
        reply({ type: 'sent', count: m.count, queued, dropped, ms: performance.now() - t0 });
      })();
    } else if (m.cmd === 'report') {
      reply({ type: 'report', sources, foreign, stats: backend.stats() } satisfies ChildReport);
    } else if (m.cmd === 'close') {
      void backend.close().then(() => {
        reply({ type: 'closed' });
        process.disconnect();
      });
    }
  });
  reply({ type: 'ready' });
}

if (process.send) {
  main().catch((e: unknown) => {
    process.send?.({ type: 'fatal', message: String((e as Error)?.stack ?? e) });
    process.exitCode = 1;
    process.disconnect?.();
  });
}
