/**
 * A switch shared by separate processes: the switch is served from the test process, each guest
 * port is a child process that attaches with `createBackend('backend=valeX:N,…')` (the served
 * switch is found by its default socket under $XDG_RUNTIME_DIR, pointed at a temp dir here).
 * Frames of random sizes up to 65535 bytes cross in both directions at once; every frame is
 * checked for order and content. A port process SIGKILLed mid-stream is detached while the
 * others carry on, and nothing leaks: the test process's fds and the /dev/shm files are the same
 * before and after. Needs no root; needs the native shared-memory helper (skips without it).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ValeSwitch } from './switch.ts';
import { SwitchServer, defaultSwitchSocket } from './server.ts';
import { shmAvailable } from './shm.ts';
import type { ChildReport } from './port.process-child.ts';

const CHILD = fileURLToPath(new URL('./port.process-child.ts', import.meta.url));
const MAX_LEN = 65535;

function shmFiles(): string[] {
  return readdirSync('/dev/shm').filter((f) => f.startsWith('guestnet-vale-')).sort();
}

/** Our fds, excluding ones vitest/Node open and close on their own (pipes to workers, epoll). */
function fdTargets(): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      out.push(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // closed while listing (the readdir's own fd)
    }
  }
  return out.filter((t) => t.startsWith('socket:') || t.startsWith('/dev/shm/')).sort();
}

class PortProcess {
  readonly child: ChildProcess;
  readonly messages: { type: string; [k: string]: unknown }[] = [];
  private waiters: { type: string; resolve: (m: { type: string; [k: string]: unknown }) => void }[] = [];
  readonly exited: Promise<void>;

  constructor(config: string, mac: number, env: NodeJS.ProcessEnv) {
    this.child = fork(CHILD, [config, String(mac), String(MAX_LEN)], {
      execArgv: ['--import', 'tsx'],
      env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (raw) => {
      const m = raw as { type: string };
      this.messages.push(m);
      const i = this.waiters.findIndex((w) => w.type === m.type || m.type === 'fatal');
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
    });
    this.exited = new Promise((r) => this.child.once('exit', () => r()));
  }

  next(type: string, timeoutMs = 30_000): Promise<{ type: string; [k: string]: unknown }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child: no '${type}' within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        type,
        resolve: (m) => {
          clearTimeout(timer);
          if (m.type === 'fatal') reject(new Error(`child failed: ${String(m.message)}`));
          else resolve(m);
        },
      });
      void this.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`child exited while waiting for '${type}'`));
      });
    });
  }

  async ready(): Promise<void> {
    await this.next('ready');
  }

  async report(): Promise<ChildReport> {
    const p = this.next('report');
    this.child.send({ cmd: 'report' });
    return (await p) as unknown as ChildReport;
  }

  send(count: number, dst: number): Promise<{ type: string; [k: string]: unknown }> {
    const p = this.next('sent', 60_000);
    this.child.send({ cmd: 'send', count, dst });
    return p;
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const p = this.next('closed').catch(() => {});
    this.child.send({ cmd: 'close' });
    await p;
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, 5000))]);
    this.child.kill('SIGKILL');
  }
}

const until = async (what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe.skipIf(!shmAvailable())('a switch served to port processes', () => {
  const name = `valep${process.pid}`;
  let runtimeDir: string;
  let env: NodeJS.ProcessEnv;
  let sw: ValeSwitch;
  let server: SwitchServer;
  let children: PortProcess[] = [];
  let fdsBefore: string[];
  let shmBefore: string[];

  beforeAll(() => {
    runtimeDir = mkdtempSync(join(tmpdir(), 'guestnet-vale-proc-'));
    env = { ...process.env, XDG_RUNTIME_DIR: runtimeDir };
  });

  afterAll(() => {
    rmSync(runtimeDir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    fdsBefore = fdTargets();
    shmBefore = shmFiles();
    sw = new ValeSwitch(name);
    server = await SwitchServer.listen(sw, { socketPath: defaultSwitchSocket(name, env) });
  });

  afterEach(async () => {
    for (const c of children) c.child.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
    children = [];
    await server.close();
    sw.close();
  });

  function port(n: number, mac: number): PortProcess {
    const c = new PortProcess(`backend=${name}:${n},mtu=65535`, mac, env);
    children.push(c);
    return c;
  }

  it('carries numbered frames of random sizes up to 65535 both ways between two processes, in order and intact', { timeout: 90_000 }, async () => {
    const a = port(1, 0x11);
    const b = port(2, 0x22);
    await Promise.all([a.ready(), b.ready()]);
    await until('both ports attached', () => sw.has(1) && sw.has(2));
    const N = 1500;
    const [sa, sb] = await Promise.all([a.send(N, 0x22), b.send(N, 0x11)]);
    expect(sa.dropped).toBe(0);
    expect(sb.dropped).toBe(0);
    // The switch takes every frame; a frame it cannot place (a receiver descheduled longer than
    // the stall limit) is dropped and counted at the destination port: everything is accounted.
    await until('the switch took every frame', () => sw.portStats(1)!.rxFrames === N + 1 && sw.portStats(2)!.rxFrames === N + 1);
    const lost = (p: number): number => sw.portStats(p)!.drops['rx-ring-full'] ?? 0;
    await until('every frame delivered or counted', async () => {
      const [ra, rb] = await Promise.all([a.report(), b.report()]);
      return (ra.sources[0x22]?.frames ?? 0) + lost(1) >= N && (rb.sources[0x11]?.frames ?? 0) + lost(2) >= N;
    });
    const [ra, rb] = await Promise.all([a.report(), b.report()]);
    for (const [r, port] of [[ra.sources[0x22]!, 1], [rb.sources[0x11]!, 2]] as const) {
      expect(r).toMatchObject({ errors: 0, firstError: null });
      expect(r.frames).toBeLessThanOrEqual(N);
      expect(r.frames).toBeGreaterThanOrEqual(N - lost(port));
      expect(r.missing).toBeLessThanOrEqual(lost(port));
    }
    console.log(
      `cross-process: ${N} frames each way, ${((ra.sources[0x22]!.bytes + rb.sources[0x11]!.bytes) / 2 ** 20).toFixed(1)} MiB; ` +
        `sender a ${(sa.ms as number).toFixed(0)} ms (${String(sa.queued)} queued), b ${(sb.ms as number).toFixed(0)} ms; ` +
        `switch drops ${JSON.stringify(sw.portStats(1)!.drops)} ${JSON.stringify(sw.portStats(2)!.drops)}`,
    );
    await Promise.all([a.close(), b.close()]);
    await until('ports detached', () => sw.portCount === 0);
  });

  it('detaches a port whose process is SIGKILLed mid-stream while the others carry on, leaking nothing', { timeout: 90_000 }, async () => {
    const a = port(1, 0x11);
    const b = port(2, 0x22);
    const victim = port(3, 0x33);
    await Promise.all([a.ready(), b.ready(), victim.ready()]);
    await until('three ports attached', () => sw.portCount === 3);
    // The victim streams to a endlessly; a and b stream to each other.
    void victim.send(1_000_000, 0x11).catch(() => {});
    const N = 1000;
    const sends = Promise.all([a.send(N, 0x22), b.send(N, 0x11)]);
    await until('the victim mid-stream', async () => ((await a.report()).sources[0x33]?.frames ?? 0) > 200);
    victim.child.kill('SIGKILL');
    await victim.exited;
    await until('the killed port detached', () => !sw.has(3), 5000);
    await sends;
    const lost = (p: number): number => sw.portStats(p)!.drops['rx-ring-full'] ?? 0;
    await until('the switch took every a↔b frame', () => sw.portStats(1)!.rxFrames === N + 1 && sw.portStats(2)!.rxFrames === N + 1);
    await until('every a↔b frame delivered or counted', async () => {
      const [ra, rb] = await Promise.all([a.report(), b.report()]);
      return (ra.sources[0x22]?.frames ?? 0) + lost(1) >= N && (rb.sources[0x11]?.frames ?? 0) + lost(2) >= N;
    });
    const [ra, rb] = await Promise.all([a.report(), b.report()]);
    expect(ra.sources[0x22]).toMatchObject({ errors: 0 });
    expect(rb.sources[0x11]).toMatchObject({ errors: 0 });
    // What a receiver misses is what the switch counted as dropped at its port.
    expect(rb.sources[0x11]!.frames).toBeGreaterThanOrEqual(N - lost(2));
    expect(rb.sources[0x11]!.frames).toBeLessThanOrEqual(N);
    expect(ra.sources[0x22]!.frames).toBeGreaterThanOrEqual(N - lost(1));
    // What a got from the victim is an intact, in-order prefix of its stream.
    const fromVictim = ra.sources[0x33]!;
    expect(fromVictim.errors).toBe(0);
    expect(fromVictim.frames + fromVictim.missing).toBe(fromVictim.lastSeq + 1);
    expect(server.clients().map((c) => c.port)).toEqual([1, 2]);

    await Promise.all([a.close(), b.close()]);
    await until('all ports detached', () => sw.portCount === 0);
    await server.close();
    await until('no fds left behind', () => fdTargets().length <= fdsBefore.length, 5000);
    expect(fdTargets()).toEqual(fdsBefore);
    expect(shmFiles()).toEqual(shmBefore);
  });
});
