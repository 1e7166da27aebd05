/**
 * Processes for the benchmark harness: commands run to completion with a time limit, long-running
 * daemons whose output is watched, and the /proc accounting the harness reads from a backend
 * process (CPU time from /proc/PID/stat, RSS and its high-water mark from /proc/PID/status).
 * Every child started here is tracked so that {@link killAll} leaves nothing behind. The e2e
 * tests have their own copy of the first two (test/e2e/lib/proc.ts); this one lives inside the
 * app so that `tsc -b` builds it without reaching outside its rootDir. Linux only.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time in ms. */
  ms: number;
}

const live = new Set<ChildProcess>();

/** Run to completion, SIGKILL after `timeoutMs` (the result then has signal SIGKILL). Never throws for an exit code. */
export function run(cmd: string, args: readonly string[], timeoutMs = 30_000): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      live.delete(child);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** Run and require exit 0. */
export async function runOk(cmd: string, args: readonly string[], timeoutMs = 30_000): Promise<RunResult> {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}${r.signal === 'SIGKILL' ? ' (timed out)' : ''}: ${(r.stderr || r.stdout).trim().slice(-500)}`);
  }
  return r;
}

/** A long-running process whose stdout+stderr are kept and can be waited on. */
export class Daemon {
  readonly child: ChildProcess;
  output = '';
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(cmd: string, args: readonly string[], opts: SpawnOptions = {}) {
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    live.add(this.child);
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.output += d));
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.output += d));
    this.exited = new Promise((resolve) => {
      this.child.on('error', (e) => (this.output += `spawn error: ${e.message}\n`));
      this.child.on('close', (code, signal) => {
        live.delete(this.child);
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Resolve when the output matches `re`; reject on exit or timeout, with the output so far. */
  async waitFor(re: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.output.match(re);
      if (m) return m;
      if (this.exitInfo) throw new Error(`exited (${this.exitInfo.code ?? this.exitInfo.signal}) before ${re}: ${this.output.trim().slice(-600)}`);
      if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${re}: ${this.output.trim().slice(-600)}`);
      await sleep(50);
    }
  }

  /** Send `signal`, SIGKILL after `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
    if (this.exitInfo) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** SIGKILL every child started here that still runs. */
export async function killAll(): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const c of live) {
    if (c.exitCode === null && c.signalCode === null) {
      waits.push(new Promise((r) => c.once('close', r)));
      c.kill('SIGKILL');
    }
  }
  await Promise.race([Promise.all(waits), sleep(5000)]);
  live.clear();
}

const CLK_TCK = 100; // USER_HZ: 100 on every Linux ABI node runs on

/** utime + stime of a process (its threads included), seconds; NaN if it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised comm (which may contain spaces): state is field 3.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

/** VmRSS and VmHWM of a process in bytes; NaN if it is gone. */
export function memory(pid: number): { rss: number; hwm: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? Number.NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return { rss: Number.NaN, hwm: Number.NaN };
  }
}
