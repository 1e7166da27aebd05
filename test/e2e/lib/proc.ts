/**
 * Child processes for e2e tests: bounded in time, output captured, and tracked so that
 * {@link killAll} (call it in afterAll) leaves nothing running even when a test failed midway.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time in ms. */
  ms: number;
}

export interface RunOptions {
  /** Kill (SIGKILL) after this many ms; the result then has signal SIGKILL. Default 30 s. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
}

const live = new Set<ChildProcess>();

/** Run to completion; never throws for a non-zero exit (look at `code`). */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
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
    // A command that exits without reading its stdin closes the pipe: EPIPE is not an error here.
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.input ?? '');
  });
}

/** Run and require exit 0; the error carries the command and its output. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}${r.signal === 'SIGKILL' ? ' (timed out)' : ''}\n` +
        `stdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-2000)}`,
    );
  }
  return r;
}

/** A long-running process whose output is watched. */
export class Daemon {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;

  constructor(cmd: string, args: readonly string[], opts: SpawnOptions = {}) {
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    live.add(this.child);
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      this.stdout += d;
      this.check();
    });
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
      this.check();
    });
    this.exited = new Promise((resolve) => {
      this.child.on('error', (e) => {
        this.stderr += `spawn error: ${e.message}\n`;
      });
      this.child.on('close', (code, signal) => {
        live.delete(this.child);
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  private check(): void {
    const all = this.stdout + this.stderr;
    this.waiters = this.waiters.filter((w) => {
      const m = all.match(w.re);
      if (m) w.resolve(m);
      return !m;
    });
  }

  /** Resolve when stdout+stderr match `re`; reject on exit or timeout, with the output so far. */
  waitFor(re: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    const m = (this.stdout + this.stderr).match(re);
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const fail = (why: string) => reject(new Error(`${why} waiting for ${re}\nstdout: ${this.stdout.slice(-2000)}\nstderr: ${this.stderr.slice(-2000)}`));
      if (this.exitInfo) return fail(`process had exited (${this.exitInfo.code ?? this.exitInfo.signal})`);
      const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
      const w = {
        re,
        resolve: (mm: RegExpMatchArray) => {
          clearTimeout(timer);
          resolve(mm);
        },
      };
      this.waiters.push(w);
      void this.exited.then((e) => {
        if (this.waiters.includes(w)) {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((x) => x !== w);
          fail(`process exited (${e.code ?? e.signal})`);
        }
      });
    });
  }

  /** Send `signal`, wait up to `graceMs`, then SIGKILL. Resolves with how it exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.exitInfo) return this.exitInfo;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const r = await this.exited;
    clearTimeout(timer);
    return r;
  }
}

/** SIGKILL every process started here that is still running (afterAll safety net). */
export async function killAll(): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const c of live) {
    if (c.exitCode === null && c.signalCode === null) {
      waits.push(new Promise((r) => c.once('close', r)));
      c.kill('SIGKILL');
    }
  }
  await Promise.race([Promise.all(waits), new Promise((r) => setTimeout(r, 5000))]);
  live.clear();
}
