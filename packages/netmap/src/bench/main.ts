/**
 * `pnpm bench` for @guestnet/netmap: packets/s and Gbit/s of 64- and 1500-byte frames
 *   (a) between two processes through a served switch (port process → switch process →
 *       port process; the rings are shared memory files, wakeups are socket kicks), and
 *   (b) through an in-process switch, sender and receiver in the same thread.
 * Each point is the median of RUNS runs of RUN_MS; the rate is measured at the receiver over the
 * span it received frames. Gbit/s counts Ethernet frame bytes (no preamble / inter-frame gap).
 * Finishes in well under a minute; prints a table and writes docs/bench/netmap-<date>.md
 * (GUESTNET_BENCH_OUT=DIR to write elsewhere, GUESTNET_BENCH_QUICK=1 for one short run each).
 *
 * Absolute numbers on a shared 2-core machine drift from run to run; compare rows of one run.
 * Not measured here: worker threads (same code path as (b) plus Atomics wakeups), pipes, latency.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBackend } from '@guestnet/core';
import { ValeSwitch } from '../switch.ts';
import { SwitchServer, defaultSwitchSocket } from '../server.ts';
import { shmAvailable } from '../shm.ts';
import { DrainWaiter, Sink, benchFrame, helloFrame, runSender, type SendResult, type SinkReport } from './load.ts';

const QUICK = !!process.env.GUESTNET_BENCH_QUICK;
const RUNS = QUICK ? 1 : 3;
const RUN_MS = QUICK ? 500 : 1500;
const SIZES = [64, 1500] as const;
const CHILD = fileURLToPath(new URL('./port-child.ts', import.meta.url));
const OUT_DIR = process.env.GUESTNET_BENCH_OUT ?? fileURLToPath(new URL('../../../../docs/bench/', import.meta.url));

interface Row {
  path: string;
  size: number;
  pps: number[];
  gbps: number[];
  queued: number;
  dropped: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function rate(r: SinkReport): { pps: number; gbps: number } {
  const s = r.spanMs / 1000;
  return s > 0 ? { pps: r.frames / s, gbps: (r.bytes * 8) / s / 1e9 } : { pps: 0, gbps: 0 };
}

class Child {
  readonly proc: ChildProcess;
  private waiting = new Map<string, { resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  constructor(config: string, mac: number, env: NodeJS.ProcessEnv) {
    this.proc = fork(CHILD, [config, String(mac)], { execArgv: ['--import', 'tsx'], env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.proc.on('message', (m: Record<string, unknown>) => {
      const w = this.waiting.get(m.type as string);
      this.waiting.delete(m.type as string);
      w?.resolve(m);
    });
    this.proc.once('exit', (code, signal) => {
      for (const [type, w] of this.waiting) w.reject(new Error(`bench port process exited (${code ?? signal}) while waiting for ${type}`));
      this.waiting.clear();
    });
  }
  next(type: string): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => this.waiting.set(type, { resolve, reject }));
  }
  async ask(cmd: Record<string, unknown>, reply: string): Promise<Record<string, unknown>> {
    const p = this.next(reply);
    this.proc.send(cmd);
    return p;
  }
}

async function crossProcess(rows: Row[]): Promise<void> {
  const runtime = mkdtempSync(join(tmpdir(), 'guestnet-bench-'));
  const env = { ...process.env, XDG_RUNTIME_DIR: runtime };
  const name = `valebench${process.pid}`;
  const sw = new ValeSwitch(name);
  const server = await SwitchServer.listen(sw, { socketPath: defaultSwitchSocket(name, env) });
  const a = new Child(`backend=${name}:1`, 1, env);
  const b = new Child(`backend=${name}:2`, 2, env);
  try {
    await Promise.all([a.next('ready'), b.next('ready')]);
    while (sw.portCount < 2) await sleep(10);
    await sleep(100); // both hellos switched: the MACs are learnt
    for (const size of SIZES) {
      const row: Row = { path: '2 processes, served switch', size, pps: [], gbps: [], queued: 0, dropped: 0 };
      for (let i = 0; i < RUNS; i++) {
        await b.ask({ cmd: 'reset' }, 'reset');
        const sent = (await a.ask({ cmd: 'send', len: size, dst: 2, ms: RUN_MS }, 'sent')) as unknown as SendResult;
        await sleep(100);
        const r = rate((await b.ask({ cmd: 'report' }, 'report')) as unknown as SinkReport);
        row.pps.push(r.pps);
        row.gbps.push(r.gbps);
        row.queued += sent.queued;
        row.dropped += sent.dropped;
      }
      rows.push(row);
      report(row);
    }
  } finally {
    for (const c of [a, b]) c.proc.kill('SIGKILL');
    await server.close();
    sw.close();
    rmSync(runtime, { recursive: true, force: true });
  }
}

async function inProcess(rows: Row[]): Promise<void> {
  const name = `valebenchl${process.pid}`;
  const sink = new Sink();
  const drain = new DrainWaiter();
  const tx = await createBackend(`backend=${name}:1,attach=local`, { importer: (s) => import(s) });
  const rx = await createBackend(`backend=${name}:2,attach=local`, { importer: (s) => import(s) });
  await tx.init(() => {}, drain.events);
  await rx.init(sink.rx);
  try {
    tx.send(helloFrame(1));
    rx.send(helloFrame(2));
    await sleep(50);
    for (const size of SIZES) {
      const row: Row = { path: 'in-process switch, one thread', size, pps: [], gbps: [], queued: 0, dropped: 0 };
      const frame = benchFrame(size, 1, 2);
      for (let i = 0; i < RUNS; i++) {
        sink.reset();
        const sent = await runSender(tx, frame, RUN_MS, drain);
        await sleep(50);
        const r = rate(sink.report());
        row.pps.push(r.pps);
        row.gbps.push(r.gbps);
        row.queued += sent.queued;
        row.dropped += sent.dropped;
      }
      rows.push(row);
      report(row);
    }
  } finally {
    await tx.close();
    await rx.close();
  }
}

const fmtPps = (x: number): string => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : `${(x / 1e3).toFixed(0)} k`);

function report(r: Row): void {
  console.log(`  ${r.path.padEnd(32)} ${String(r.size).padStart(5)} B  ${fmtPps(median(r.pps)).padStart(8)} pkt/s  ${median(r.gbps).toFixed(2).padStart(6)} Gbit/s`);
}

function markdown(rows: Row[], started: Date, seconds: number): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const lines = [
    `# @guestnet/netmap benchmark, ${started.toISOString().slice(0, 10)}`,
    '',
    `Machine: ${cpus().length} × ${cpu}, Node ${process.versions.node} (V8 ${process.versions.v8}), ${process.platform} ${process.arch}.`,
    `Each value is the median of ${RUNS} run(s) of ${RUN_MS} ms, measured at the receiving port over the span it received frames; Gbit/s counts Ethernet frame bytes.`,
    `Total wall time ${seconds.toFixed(1)} s. Generated by \`pnpm --filter @guestnet/netmap bench\` (packages/netmap/src/bench/main.ts).`,
    '',
    '| path | frame | packets/s | Gbit/s | runs (packets/s) | sender waits (queued) | sender drops |',
    '|---|---:|---:|---:|---|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.path} | ${r.size} B | ${fmtPps(median(r.pps))} | ${median(r.gbps).toFixed(2)} | ${r.pps.map(fmtPps).join(', ')} | ${r.queued} | ${r.dropped} |`,
    ),
    '',
    '- **2 processes, served switch**: sender process → switch process (`SwitchServer`) → receiver process; every frame is copied into the',
    '  sender port\'s tx ring, by the switch into the receiver\'s rx ring, and handed to the receiver as a view. Wakeups are one-byte socket',
    '  kicks sent only when a side is about to sleep (need-wakeup flags), so a saturated path exchanges few of them.',
    '- **in-process switch, one thread**: the same rings and switch, sender and receiver in one thread (SharedArrayBuffer, no kicks',
    '  crossing processes): the cost of the ring protocol and the switch alone.',
    '- The machine is shared (2 cores, other jobs running): compare rows of one run, not runs of different days.',
    '',
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const started = new Date();
  const t0 = performance.now();
  const rows: Row[] = [];
  console.log(`@guestnet/netmap bench: ${RUNS} × ${RUN_MS} ms per point`);
  if (shmAvailable()) await crossProcess(rows);
  else console.warn('  skipping the cross-process rows: the native shared-memory helper is not built (npx node-gyp rebuild --nodedir=/usr)');
  await inProcess(rows);
  const seconds = (performance.now() - t0) / 1000;
  mkdirSync(OUT_DIR, { recursive: true });
  const out = join(OUT_DIR, `netmap-${started.toISOString().slice(0, 10)}.md`);
  writeFileSync(out, markdown(rows, started, seconds));
  console.log(`wrote ${out} (${seconds.toFixed(1)} s)`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
