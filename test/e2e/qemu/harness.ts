/**
 * Process plumbing for the QEMU e2e test: start `guestnet serve` (or the stand-in) and wait for
 * its `ready` line, boot the guest under `qemu-system-x86_64 -accel tcg` and collect its
 * GN-* console lines, connect to a hostfwd port. Every child is killed on timeout and by
 * {@link killAll}; nothing here outlives the test.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { connect, createConnection, createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GuestImage } from './guest-image.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = join(here, '..', '..', '..');
export const SERVE_SOURCE = join(REPO_ROOT, 'apps', 'cli', 'src', 'commands', 'serve.ts');
const GUESTNET_BIN = join(REPO_ROOT, 'apps', 'cli', 'bin', 'guestnet.js');
const STANDIN = join(here, 'serve-standin.ts');

const children = new Set<ChildProcess>();
// A test runner killed mid-run must not leave QEMU or serve behind.
process.once('exit', () => killAll());

/** SIGKILL every child still running (afterAll, failures). */
export function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
}

function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

/** The real `guestnet serve` unless it is not written yet or GUESTNET_E2E_STANDIN=1. */
export function useRealServe(): boolean {
  return existsSync(SERVE_SOURCE) && !process.env.GUESTNET_E2E_STANDIN;
}

export async function freeTcpPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface Serve {
  /** The `-netdev` value to give QEMU (from the startup line, completed where needed). */
  netdev: string;
  netdevId: string;
  /** Everything it printed (stdout and stderr). */
  readonly output: string[];
  /** ms from spawn to the ready line. */
  startMs: number;
  real: boolean;
  /** The control socket, when this serve has one (the real command; not the stand-in). */
  controlPath: string | null;
  /** SIGTERM, then SIGKILL after 3 s. Resolves with the exit code (null if killed). */
  stop(): Promise<number | null>;
}

export interface ServeOptions {
  protocol: 'stream' | 'dgram';
  /** Listen address as `guestnet serve --listen` takes it. */
  listen: string;
  /** Control socket path (used with the real command only). */
  control?: string;
  config: string;
  /** dgram: QEMU's local UDP port (the peer of serve's socket). */
  qemuPort?: number;
  timeoutMs?: number;
}

export async function startServe(opts: ServeOptions): Promise<Serve> {
  const real = useRealServe();
  const args = ['serve', '--listen', opts.listen, '--protocol', opts.protocol];
  const controlPath = real && opts.control ? opts.control : null;
  if (controlPath) args.push('--control', `unix:${controlPath}`);
  let argv: string[];
  if (real) {
    argv = [GUESTNET_BIN, ...args, opts.config];
  } else {
    const extra = opts.protocol === 'dgram' && opts.qemuPort ? ['--peer', `127.0.0.1:${opts.qemuPort}`] : [];
    argv = ['--import', 'tsx', STANDIN, ...args.slice(1), ...extra, opts.config];
  }
  const started = Date.now();
  const child = track(spawn(process.execPath, argv, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
  const output: string[] = [];
  const stop = async (): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    const code = await exited;
    clearTimeout(t);
    return code;
  };
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), opts.timeoutMs ?? 20_000);
    const onText = (buf: Buffer): void => {
      for (const line of buf.toString().split('\n')) if (line.trim()) output.push(line);
      if (output.some((l) => /\bready\b/i.test(l))) {
        clearTimeout(timer);
        resolve(true);
      }
    };
    child.stdout!.on('data', onText);
    child.stderr!.on('data', onText);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (!ready) {
    await stop();
    throw new Error(`guestnet serve did not print a ready line (${real ? 'real' : 'stand-in'}): ${argv.join(' ')}\n${output.join('\n')}`);
  }
  const m = /-netdev[\s=]+(\S+)/.exec(output.join('\n'));
  if (!m) {
    await stop();
    throw new Error(`guestnet serve printed no -netdev fragment:\n${output.join('\n')}`);
  }
  let netdev = m[1].replace(/['"]/g, '');
  if (opts.protocol === 'dgram' && !/local\.type=/.test(netdev)) {
    if (!opts.qemuPort) throw new Error(`dgram fragment without local address and no qemuPort: ${netdev}`);
    netdev += `,local.type=inet,local.host=127.0.0.1,local.port=${opts.qemuPort}`;
  }
  const netdevId = /(?:^|,)id=([^,]+)/.exec(netdev)?.[1] ?? 'n0';
  return { netdev, netdevId, output, startMs: Date.now() - started, real, controlPath, stop };
}

export interface GuestResult {
  name: string;
  ok: boolean;
  /** Guest uptime (s) when the check finished. */
  t: number;
  detail: string;
}

export interface GuestRun {
  results: Map<string, GuestResult>;
  /** Every console line. */
  lines: string[];
  /** Guest uptime (s) at /init start and at the end of the checks. */
  bootT: number | null;
  doneT: number | null;
  wallMs: number;
  timedOut: boolean;
  exitCode: number | null;
  /** Errors thrown by onReady handlers. */
  readyErrors: string[];
}

export interface BootOptions {
  image: GuestImage;
  netdev: string;
  netdevId: string;
  /** `gn.KEY=VALUE` parameters for /test.sh (values without spaces). */
  params: Record<string, string | number>;
  timeoutMs: number;
  /** Called on `GN-READY name=… key=value…` lines. */
  onReady?: (name: string, fields: Record<string, string>) => Promise<void>;
  /** Echo console lines as they arrive. */
  echo?: (line: string) => void;
}

export function qemuArgs(o: Pick<BootOptions, 'image' | 'netdev' | 'netdevId' | 'params'>): string[] {
  const append = ['console=ttyS0', 'quiet', 'loglevel=3', 'panic=-1', ...Object.entries(o.params).map(([k, v]) => `gn.${k}=${v}`)];
  return [
    '-accel', 'tcg',
    '-m', '512',
    '-smp', '1',
    '-nodefaults', '-display', 'none', '-serial', 'stdio', '-monitor', 'none',
    '-no-reboot',
    '-kernel', o.image.kernel,
    '-initrd', o.image.initrd,
    '-append', append.join(' '),
    '-netdev', o.netdev,
    // romfile= : no iPXE option ROM, nothing network-boots.
    '-device', `virtio-net-pci,netdev=${o.netdevId},romfile=`,
  ];
}

export async function bootGuest(o: BootOptions): Promise<GuestRun> {
  const started = Date.now();
  const child = track(spawn('qemu-system-x86_64', qemuArgs(o), { stdio: ['ignore', 'pipe', 'pipe'] }));
  const run: GuestRun = { results: new Map(), lines: [], bootT: null, doneT: null, wallMs: 0, timedOut: false, exitCode: null, readyErrors: [] };
  const pending: Promise<void>[] = [];
  let partial = '';
  const onLine = (raw: string): void => {
    const line = raw.replace(/\r$/, '');
    run.lines.push(line);
    o.echo?.(line);
    let m: RegExpExecArray | null;
    if ((m = /GN-RESULT name=(\S+) ok=(\d) t=([\d.]+) detail=(.*)$/.exec(line))) {
      run.results.set(m[1], { name: m[1], ok: m[2] === '1', t: Number(m[3]), detail: m[4].trim() });
    } else if ((m = /GN-BOOT t=([\d.]+)/.exec(line))) {
      run.bootT = Number(m[1]);
    } else if ((m = /GN-DONE t=([\d.]+)/.exec(line))) {
      run.doneT = Number(m[1]);
    } else if ((m = /GN-READY name=(\S+)(.*)$/.exec(line)) && o.onReady) {
      const fields: Record<string, string> = {};
      for (const kv of m[2].trim().split(/\s+/)) {
        const i = kv.indexOf('=');
        if (i > 0) fields[kv.slice(0, i)] = kv.slice(i + 1);
      }
      pending.push(o.onReady(m[1], fields).catch((err: Error) => void run.readyErrors.push(`${m![1]}: ${err.message}`)));
    }
  };
  child.stdout!.on('data', (buf: Buffer) => {
    const parts = (partial + buf.toString('latin1')).split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) onLine(p);
  });
  child.stderr!.on('data', (buf: Buffer) => {
    for (const l of buf.toString().split('\n')) if (l.trim()) run.lines.push(`[qemu stderr] ${l}`);
  });
  const timer = setTimeout(() => {
    run.timedOut = true;
    child.kill('SIGKILL');
  }, o.timeoutMs);
  run.exitCode = await new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  clearTimeout(timer);
  if (partial) onLine(partial);
  await Promise.all(pending);
  run.wallMs = Date.now() - started;
  return run;
}

/**
 * Connect to a host-forwarded port, send `nonce\n`, return the first reply line. The listener on
 * the host accepts before the guest side is known to be up, so an empty answer is retried.
 */
export async function hostfwdExchange(port: number, nonce: string, deadlineMs: number): Promise<string> {
  const until = Date.now() + deadlineMs;
  let last = '';
  while (Date.now() < until) {
    const reply = await new Promise<string>((resolve) => {
      let data = '';
      const s = connect(port, '127.0.0.1');
      const t = setTimeout(() => s.destroy(), 5000);
      s.on('connect', () => s.write(`${nonce}\n`));
      s.on('data', (d) => {
        data += d.toString();
        if (data.includes('\n')) s.end();
      });
      s.on('error', (e) => (last = e.message));
      s.on('close', () => {
        clearTimeout(t);
        resolve(data.split('\n')[0]);
      });
    });
    if (reply) return reply;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no reply from 127.0.0.1:${port}${last ? ` (${last})` : ''}`);
}

/**
 * One request on serve's JSON-lines control socket (slirp4netns-style `{"execute":…}`); resolves
 * with `return`, rejects with the `error` description.
 */
export function controlRequest(path: string, execute: string, args?: Record<string, unknown>, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    let buf = '';
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`control ${execute}: no reply within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('connect', () => s.write(JSON.stringify(args ? { execute, arguments: args } : { execute }) + '\n'));
    s.on('data', (d) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i < 0) return;
      clearTimeout(t);
      s.end();
      try {
        const reply = JSON.parse(buf.slice(0, i)) as { return?: unknown; error?: { desc: string; code: string } };
        if (reply.error) reject(new Error(`control ${execute}: ${reply.error.code}: ${reply.error.desc}`));
        else resolve(reply.return);
      } catch (err) {
        reject(err as Error);
      }
    });
    s.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

/** True when nothing accepts on 127.0.0.1:port (connection refused). */
export function portRefuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });
}
