import { describe, it, expect, afterEach } from 'vitest';
import { Worker } from 'node:worker_threads';
import { createLocalSwitch, type LocalSwitch, type PortRegionHandle } from './local.ts';
import { createPipeRegion } from './pipe.ts';
import type { PortWorkerData, PortWorkerResult } from './port.worker-test.ts';
import type { SwitchPortStats } from './switch.ts';
import { until } from './testing.ts';

// Frames per direction: 100k each way (200k through the switch) by default; NETMAP_WORKER_FRAMES
// changes it, NETMAP_DEBUG=1 prints the switch counters every 2 s.
const FRAMES = Number(process.env.NETMAP_WORKER_FRAMES ?? 100_000);
const MAX_LEN = 65535;

let sw: LocalSwitch | null = null;
const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.terminate()));
  sw?.close();
  sw = null;
});

/**
 * Start the worker script under tsx. `execArgv: ['--import', 'tsx']` is not enough on Node 20:
 * the worker's entry is resolved before the hooks `--import` registers, so a .ts entry fails
 * with ERR_UNKNOWN_FILE_EXTENSION. A tiny eval'd bootstrap registers tsx first, then imports it.
 */
const SCRIPT = new URL('./port.worker-test.ts', import.meta.url).href;
const BOOT = `import('tsx/esm/api').then((m) => m.register()).then(() => import(${JSON.stringify(SCRIPT)}))`;

function spawn(data: PortWorkerData): { worker: Worker; ready: Promise<void>; result: Promise<PortWorkerResult> } {
  const worker = new Worker(BOOT, { eval: true, workerData: data });
  workers.push(worker);
  let onReady!: () => void;
  let onFail!: (e: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    onFail = reject;
  });
  const result = new Promise<PortWorkerResult>((resolve, reject) => {
    const fail = (e: Error): void => {
      onFail(e);
      reject(e);
    };
    worker.on('message', (m: { ready?: number; result?: PortWorkerResult }) => {
      if (m.ready !== undefined) onReady();
      if (m.result) resolve(m.result);
    });
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`worker ${data.me} exited (${code}) before reporting`)));
  });
  result.catch(() => {});
  return { worker, ready, result };
}

function clean(r: PortWorkerResult, sent: number, expected: number): void {
  expect(r.firstError).toBe('');
  expect({ sent: r.sent, received: r.received, bad: r.bad, outOfOrder: r.outOfOrder, wrongSize: r.wrongSize }).toEqual({
    sent,
    received: expected,
    bad: 0,
    outOfOrder: 0,
    wrongSize: 0,
  });
}

describe('across worker threads', () => {
  it(`carries ${FRAMES} frames each way (60..65535 bytes) between two workers through a switch, in order, intact, no loss`, async () => {
    const last = new Map<number, SwitchPortStats>();
    sw = createLocalSwitch('vale-workers', { onDetach: (port, st) => last.set(port, st) });
    const g = { slots: 256, bufSize: 2048 };
    const h1: PortRegionHandle = sw.createPortRegion(1, g);
    const h2: PortRegionHandle = sw.createPortRegion(2, g);
    const h3: PortRegionHandle = sw.createPortRegion(3, g);
    const w1 = spawn({ handle: h1, me: 1, peer: 2, count: FRAMES, expect: FRAMES, expectFrom: 2, maxLen: MAX_LEN });
    const w2 = spawn({ handle: h2, me: 2, peer: 1, count: FRAMES, expect: FRAMES, expectFrom: 1, maxLen: MAX_LEN });
    // A third port that only listens: it must see the learning broadcasts and nothing else.
    const w3 = spawn({ handle: h3, me: 3, peer: -1, count: 0, expect: 0, expectFrom: 0, maxLen: MAX_LEN });
    await Promise.all([w1.ready, w2.ready, w3.ready]);
    await new Promise((r) => setTimeout(r, 50)); // let the switch learn from the broadcasts
    for (const w of [w1, w2, w3]) w.worker.postMessage('go');
    const dbg = process.env.NETMAP_DEBUG ? setInterval(() => console.log(JSON.stringify(sw!.switch.stats().ports.map((p) => [p.port, p.rxFrames, p.txFrames, p.drops]))), 2000) : null;
    const [r1, r2, r3] = await Promise.all([w1.result, w2.result, w3.result]);
    if (dbg) clearInterval(dbg);
    clean(r1, FRAMES, FRAMES);
    clean(r2, FRAMES, FRAMES);
    expect(r3.received).toBe(0);
    // The workers closed their ports: the switch detached them and reported their last counters.
    await until(() => last.size === 3);
    for (const p of [1, 2]) {
      expect(last.get(p)!.drops).toEqual({});
      expect(last.get(p)!.rxFrames).toBe(FRAMES + 1);
      expect(last.get(p)!.txFrames).toBe(FRAMES + 2); // the peer's frames + two learning broadcasts
    }
  }, 120_000);

  it('carries frames over a pipe between two workers without loss', async () => {
    const pipe = createPipeRegion({ slots: 128, bufSize: 2048 });
    const n = Math.max(1000, FRAMES / 4);
    const base = { mem: pipe.mem, byteOffset: 0, name: 'pipe-w', port: '1', kind: 'pipe' as const };
    const m = spawn({ handle: { ...base, side: 'port' }, me: 1, peer: 2, count: n, expect: n, expectFrom: 2, maxLen: MAX_LEN });
    const s = spawn({ handle: { ...base, side: 'peer' }, me: 2, peer: 1, count: n, expect: n, expectFrom: 1, maxLen: MAX_LEN });
    await Promise.all([m.ready, s.ready]);
    m.worker.postMessage('go');
    s.worker.postMessage('go');
    const [rm, rs] = await Promise.all([m.result, s.result]);
    clean(rm, n, n);
    clean(rs, n, n);
  }, 120_000);
});
