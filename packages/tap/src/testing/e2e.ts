/**
 * Shared plumbing for the tap e2e tests: prerequisite gate (skip with a printed reason locally,
 * fail under CI=true), network namespaces named gn-<what>-<pid> that are always deleted, and
 * small process helpers. Tests only ever talk to namespaces they created.
 */
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { loadAddon } from '../addon.ts';

/** Why the root tier cannot run here, or undefined when it can. */
export function tapPrereqs(): string | undefined {
  const why: string[] = [];
  if (process.platform !== 'linux') why.push(`not Linux (${process.platform})`);
  else {
    if (process.getuid?.() !== 0) why.push('needs root (TAP devices and network namespaces)');
    if (!existsSync('/dev/net/tun')) why.push('no /dev/net/tun (modprobe tun)');
    try {
      accessSync('/usr/sbin/ip', constants.X_OK);
    } catch {
      try {
        execFileSync('ip', ['-V'], { stdio: 'ignore' });
      } catch {
        why.push('no ip(8) (apt-get install -y iproute2)');
      }
    }
    try {
      loadAddon();
    } catch (err) {
      why.push(`native addon not built: ${(err as Error).message} (needs g++ make python3: apt-get install -y g++ make python3)`);
    }
  }
  return why.length ? why.join('; ') : undefined;
}

/**
 * Returns true when the suite can run. Otherwise warns and returns false, or throws under CI
 * (where every prerequisite is supposed to be installed).
 */
export function gate(suite: string, why: string | undefined): boolean {
  if (why === undefined) return true;
  const msg = `${suite}: cannot run: ${why}`;
  if (process.env.CI) throw new Error(`${msg} [CI is set, so this is a failure]`);
  console.warn(`${msg} — skipped`);
  return false;
}

export function sh(cmd: string, args: readonly string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
}

/** A network namespace for one test file; `ip netns del` in `remove` (safe to call twice). */
export class Netns {
  readonly name: string;
  readonly path: string;
  constructor(what: string) {
    this.name = `gn-${what}-${process.pid}`;
    this.path = `/run/netns/${this.name}`;
    try {
      sh('ip', ['netns', 'del', this.name]);
    } catch {
      // left over from nothing: fine
    }
    sh('ip', ['netns', 'add', this.name]);
    sh('ip', ['-n', this.name, 'link', 'set', 'lo', 'up']);
  }
  ip(...args: string[]): string {
    return sh('ip', ['-n', this.name, ...args]);
  }
  exec(...args: string[]): string {
    return sh('ip', ['netns', 'exec', this.name, ...args]);
  }
  remove(): void {
    try {
      sh('ip', ['netns', 'del', this.name]);
    } catch {
      // already gone
    }
  }
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Run a child to completion, killing it after `timeoutMs`. */
export function runChild(cmd: string, args: readonly string[], opts: { timeoutMs: number; uid?: number; gid?: number; cwd?: string }): Promise<ChildResult> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
      ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/** Resolve when `pred` holds, polling every 10 ms; reject after `ms`. */
export async function waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
