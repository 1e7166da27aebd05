/**
 * Network namespaces for e2e tests, named `gn-<tag>-<pid>` so that concurrent runs and leftovers
 * are recognisable. {@link deleteAllNetns} (afterAll) removes every namespace created here; a
 * process 'exit' hook does the same synchronously as a last resort. Nothing here touches the
 * host's own interfaces or routes.
 */
import { spawnSync, type SpawnOptions } from 'node:child_process';
import { Daemon, run, runOk, type RunOptions, type RunResult } from './proc.ts';

const created = new Set<string>();

export class Netns {
  readonly name: string;
  readonly path: string;

  constructor(name: string) {
    this.name = name;
    this.path = `/run/netns/${name}`;
  }

  /** Run a command inside the namespace (`ip netns exec`); never throws for a non-zero exit. */
  exec(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  /** Like {@link exec} but requires exit 0. */
  execOk(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return runOk('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  /** `ip -n NAME …` (iproute2 queries and changes inside the namespace). */
  ip(args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return runOk('ip', ['-n', this.name, ...args], opts);
  }

  /** A long-running process inside the namespace. */
  spawn(cmd: string, args: readonly string[], opts?: SpawnOptions): Daemon {
    return new Daemon('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  /** Poll `check` until it returns a value (not undefined) or `timeoutMs` passes. */
  async waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000, everyMs = 200): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await check();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`${this.name}: timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }

  async delete(): Promise<void> {
    if (!created.has(this.name)) return;
    created.delete(this.name);
    await run('ip', ['netns', 'del', this.name]);
  }
}

/** Create `gn-<tag>-<pid>` (replacing a leftover of the same name) with loopback up. */
export async function createNetns(tag: string): Promise<Netns> {
  const name = `gn-${tag}-${process.pid}`;
  await run('ip', ['netns', 'del', name]);
  await runOk('ip', ['netns', 'add', name]);
  created.add(name);
  const ns = new Netns(name);
  await ns.ip(['link', 'set', 'lo', 'up']);
  return ns;
}

export async function deleteAllNetns(): Promise<void> {
  for (const name of [...created]) {
    created.delete(name);
    await run('ip', ['netns', 'del', name]);
  }
}

process.once('exit', () => {
  for (const name of created) spawnSync('ip', ['netns', 'del', name]);
});
