import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, type NetBackend } from '@guestnet/core';
import { ValeSwitch } from './switch.ts';
import { SwitchServer, defaultSwitchSocket, sweepStaleShm } from './server.ts';
import { attachRemote, remoteSwitchStats, tryAttachRemote } from './remote.ts';
import { shmAvailable } from './shm.ts';

const ETHERTYPE = 0x88b5; // IEEE 802 local experimental

function frame(src: number, dst: number, seq: number, len = 64): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst === 0xff ? [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] : [0x02, 0, 0, 0, 0, dst], 0);
  f.set([0x02, 0, 0, 0, 0, src], 6);
  f[12] = ETHERTYPE >> 8;
  f[13] = ETHERTYPE & 0xff;
  new DataView(f.buffer).setUint32(14, seq);
  for (let i = 18; i < len; i++) f[i] = (seq + i) & 0xff;
  return f;
}

const until = async (what: string, cond: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe.skipIf(!shmAvailable())('a switch served over a unix socket', () => {
  let dir: string;
  let shmDir: string;
  let sw: ValeSwitch;
  let server: SwitchServer;
  const backends: NetBackend[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'guestnet-vale-test-'));
    shmDir = mkdtempSync('/dev/shm/guestnet-vale-test-');
    sw = new ValeSwitch('vtest');
    server = await SwitchServer.listen(sw, { socketPath: join(dir, 'vtest.sock'), shmDir, geometry: { slots: 64, bufSize: 2048 } });
  });

  afterEach(async () => {
    for (const b of backends.splice(0)) await b.close();
    await server.close();
    sw.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(shmDir, { recursive: true, force: true });
  });

  interface Attached {
    b: NetBackend;
    got: Uint8Array[];
    /** Send every frame, waiting for `drain` after a `queued` verdict. */
    sendAll(frames: Uint8Array[]): Promise<void>;
  }

  async function attach(port: number | null): Promise<Attached> {
    const b = await attachRemote('vtest', port, { socketPath: server.path });
    backends.push(b);
    const got: Uint8Array[] = [];
    let drained: (() => void) | null = null;
    await b.init((f) => got.push(f.slice()), { drain: () => drained?.() });
    return {
      b,
      got,
      async sendAll(frames) {
        for (const f of frames) {
          const v = b.send(f);
          expect(v).not.toBe('dropped');
          if (v === 'queued') await new Promise<void>((r) => (drained = r));
        }
      },
    };
  }

  it('carries frames between two remote ports, learning after the first broadcast', async () => {
    const a = await attach(1);
    const c = await attach(2);
    await until('both ports attached', () => sw.portCount === 2);
    expect(a.b.send(frame(1, 0xff, 0))).toBe('delivered');
    await until('the broadcast', () => c.got.length === 1);
    // 100 frames through 64-slot rings: the sender meets backpressure and waits for drain.
    await c.sendAll(Array.from({ length: 100 }, (_, k) => frame(2, 1, k + 1, 70 + k * 10)));
    await until('100 unicast frames', () => a.got.length === 100);
    expect(a.got.map((f) => new DataView(f.buffer).getUint32(14))).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(a.got[99]).toEqual(frame(2, 1, 100, 1060));
    expect(c.b.stats().drops).toEqual({});
    expect(sw.portStats(1)!.txFrames).toBe(100);
  });

  it('unlinks each port file once both sides have mapped it', async () => {
    await attach(3);
    await until('attached', () => sw.has(3));
    expect(readdirSync(shmDir)).toEqual([]);
  });

  it('gives the lowest free port to a client that asks for any', async () => {
    await attach(0);
    const any = (await attachRemote('vtest', null, { socketPath: server.path })) as { port: number } & NetBackend;
    backends.push(any);
    expect(any.port).toBe(1);
  });

  it('gives a named port the lowest free number and refuses the name twice', async () => {
    await attach(0);
    const web = (await attachRemote('vtest', 'web', { socketPath: server.path })) as { port: number } & NetBackend;
    backends.push(web);
    expect(web.port).toBe(1);
    await expect(attachRemote('vtest', 'web', { socketPath: server.path })).rejects.toMatchObject({ code: ErrorCode.Exists });
    await web.init(() => {});
    await until('attached', () => server.clients().length === 2);
    expect(server.clients()[1]).toMatchObject({ port: 1, name: 'web' });
    await web.close();
    await until('detached', () => !sw.has(1));
    const again = (await attachRemote('vtest', 'web', { socketPath: server.path, bufsize: 1024 })) as { port: number } & NetBackend;
    backends.push(again);
    expect(again.port).toBe(1);
  });

  it('refuses a port already taken with GUESTNET_EXISTS and leaves the holder attached', async () => {
    await attach(5);
    await expect(attachRemote('vtest', 5, { socketPath: server.path })).rejects.toMatchObject({ code: ErrorCode.Exists, hint: expect.stringMatching(/another port/) });
    expect(sw.has(5)).toBe(true);
    expect(readdirSync(shmDir)).toEqual([]);
  });

  it('refuses a port beyond the --ports limit', async () => {
    const small = await SwitchServer.listen(new ValeSwitch('small'), { socketPath: join(dir, 'small.sock'), shmDir, ports: 2 });
    try {
      await expect(attachRemote('small', 2, { socketPath: small.path })).rejects.toMatchObject({ code: ErrorCode.BadConfig, message: expect.stringMatching(/0\.\.1/) });
      const a = await attachRemote('small', null, { socketPath: small.path });
      const b = await attachRemote('small', null, { socketPath: small.path });
      backends.push(a, b);
      await expect(attachRemote('small', null, { socketPath: small.path })).rejects.toMatchObject({ code: ErrorCode.Limit });
    } finally {
      for (const x of backends.splice(0)) await x.close();
      await small.close();
    }
  });

  it('refuses an impossible geometry with a coded error', async () => {
    await expect(attachRemote('vtest', 1, { socketPath: server.path, slots: 3, bufSize: 10 })).rejects.toMatchObject({ code: ErrorCode.BadConfig });
    expect(sw.has(1)).toBe(false);
  });

  it('detaches the port when the client closes it', async () => {
    const a = await attach(4);
    await until('attached', () => sw.has(4));
    await a.b.close();
    await until('detached', () => !sw.has(4));
    expect(server.clients()).toEqual([]);
  });

  it('reports the switch counters to a stats client', async () => {
    await attach(7);
    await until('attached', () => sw.has(7));
    const r = (await remoteSwitchStats('vtest', server.path)) as { ok: boolean; stats: { ports: { port: number }[] }; clients: { port: number; pid: number }[] };
    expect(r.ok).toBe(true);
    expect(r.stats.ports.map((p) => p.port)).toEqual([7]);
    expect(r.clients).toEqual([expect.objectContaining({ port: 7, pid: process.pid })]);
  });

  it('tells attached clients when the server goes away, and removes its socket', async () => {
    const errors: Error[] = [];
    const b = await attachRemote('vtest', 1, { socketPath: server.path });
    backends.push(b);
    await b.init(() => {}, { error: (e) => errors.push(e) });
    await until('attached', () => sw.has(1));
    await server.close();
    expect(existsSync(server.path)).toBe(false);
    await until('the error event', () => errors.length === 1);
    expect(errors[0]).toMatchObject({ code: ErrorCode.Closed });
    expect(sw.has(1)).toBe(false);
  });

  it('refuses to serve a second time on a live socket', async () => {
    await expect(SwitchServer.listen(new ValeSwitch('vtest'), { socketPath: server.path })).rejects.toMatchObject({ code: ErrorCode.AddrInUse });
  });
});

/** A socket file whose listener was SIGKILLed, as a crashed switch leaves it. */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  await new Promise((r) => child.once('exit', r));
  expect(existsSync(path)).toBe(true);
}

describe.skipIf(!shmAvailable())('finding a served switch', () => {
  it('tryAttachRemote resolves null when no socket exists for the switch', async () => {
    await expect(tryAttachRemote('nosuch', 1, { socketPath: join(tmpdir(), `guestnet-none-${process.pid}.sock`) })).resolves.toBeNull();
  });

  it('a socket nobody listens on is a coded error that says what to do', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'guestnet-vale-stale-'));
    try {
      const path = join(dir, 'stale.sock');
      await staleSocket(path);
      await expect(tryAttachRemote('stale', 1, { socketPath: path })).rejects.toMatchObject({ code: ErrorCode.Io, hint: expect.stringMatching(/remove/) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a stale socket file is replaced by a new server', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'guestnet-vale-stale-'));
    const sw = new ValeSwitch('again');
    try {
      const path = join(dir, 'again.sock');
      await staleSocket(path);
      const server = await SwitchServer.listen(sw, { socketPath: path });
      await server.close();
    } finally {
      sw.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the default socket is ${XDG_RUNTIME_DIR:-/tmp}/guestnet-vale/NAME.sock, and names are checked', () => {
    expect(defaultSwitchSocket('vale0', { XDG_RUNTIME_DIR: '/run/user/7' })).toBe('/run/user/7/guestnet-vale/vale0.sock');
    expect(defaultSwitchSocket('vale0', {})).toBe('/tmp/guestnet-vale/vale0.sock');
    expect(() => defaultSwitchSocket('../x', {})).toThrow(expect.objectContaining({ code: ErrorCode.BadConfig }));
  });

  it('sweeps port files left by switch processes that are gone', () => {
    const dir = mkdtempSync(join(tmpdir(), 'guestnet-sweep-'));
    try {
      writeFileSync(join(dir, 'guestnet-vale-v0-999999999-1-0'), '');
      writeFileSync(join(dir, `guestnet-vale-v0-${process.pid}-1-0`), '');
      writeFileSync(join(dir, 'unrelated'), '');
      expect(sweepStaleShm(dir)).toBe(1);
      expect(readdirSync(dir).sort()).toEqual([`guestnet-vale-v0-${process.pid}-1-0`, 'unrelated']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
