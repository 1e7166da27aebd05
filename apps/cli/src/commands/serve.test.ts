import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { Writable } from 'node:stream';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pair } from '@guestnet/core';
import { attachStream } from '@guestnet/core/node';
import { TestGuest } from '../../../../packages/slirp/src/testing/test-guest.ts';
import { main } from '../main.ts';
import { defaultSocketPath } from '../serve/listen.ts';

const BIN = resolve(fileURLToPath(import.meta.url), '../../../bin/guestnet.js');
const CONFIG = 'backend=slirp,dns-upstream=127.0.0.1#1,allow=127.0.0.0/8';

let dir: string;
const cleanups: (() => Promise<unknown> | unknown)[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'gn-cli-serve-'));
});
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

interface Served {
  child: ChildProcess;
  ready: string;
  ms: number;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawn `guestnet serve ARGS` and wait for its ready line. */
async function spawnServe(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));
  let err = '';
  child.stderr!.on('data', (d) => (err += d.toString()));
  const ready = await new Promise<string>((res, rej) => {
    let out = '';
    const timer = setTimeout(() => rej(new Error(`no ready line within 15 s; stderr: ${err}`)), 15_000);
    child.stdout!.on('data', (d) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('ready'));
      if (line && out.includes('\n')) {
        clearTimeout(timer);
        res(line);
      }
    });
    void exit.then(({ code }) => rej(new Error(`serve exited (${code}) before ready; stderr: ${err}`)));
  });
  return { child, ready, ms: performance.now() - t0, stderr: () => err, exit };
}

async function guestOn(path: string): Promise<{ guest: TestGuest; sock: net.Socket }> {
  const sock = net.connect(path);
  await new Promise((r, j) => (sock.once('connect', r), sock.once('error', j)));
  const [nic, wire] = pair();
  await attachStream(sock, wire);
  const guest = new TestGuest(nic);
  await guest.start();
  cleanups.push(() => guest.stop(), () => sock.destroy());
  return { guest, sock };
}

describe('guestnet serve (spawned CLI)', () => {
  it('with no arguments serves slirp on $XDG_RUNTIME_DIR/guestnet.sock, prints how to connect QEMU, and exits 0 on SIGINT', async () => {
    const s = await spawnServe([], { XDG_RUNTIME_DIR: dir });
    const sock = join(dir, 'guestnet.sock');
    expect(s.ready).toBe(`guestnet: ready on unix:${sock} (stream) — qemu: -netdev stream,id=n0,server=off,addr.type=unix,addr.path=${sock}`);
    console.warn(`guestnet serve: ready after ${s.ms.toFixed(0)} ms (process spawn included)`);
    expect(existsSync(join(dir, 'guestnet.ctl'))).toBe(true);
    const { guest } = await guestOn(sock);
    await guest.dhcp();
    s.child.kill('SIGINT');
    expect(await s.exit).toEqual({ code: 0, signal: null });
    expect(existsSync(sock)).toBe(false);
    expect(existsSync(join(dir, 'guestnet.ctl'))).toBe(false);
  });

  it('SIGTERM during traffic: exits 0, removes the socket file, leaves a complete pcapng', async () => {
    const sock = join(dir, 'vm.sock');
    const pcap = join(dir, 'cap.pcapng');
    const s = await spawnServe(['--listen', `unix:${sock}`, '--pcap', pcap, CONFIG]);
    const { guest } = await guestOn(sock);
    await guest.dhcp();
    // Keep frames flowing while the signal lands.
    const t = setInterval(() => void guest.arp(0x0a000202, 200).catch(() => {}), 2);
    cleanups.push(() => clearInterval(t));
    await new Promise((r) => setTimeout(r, 200));
    s.child.kill('SIGTERM');
    expect(await s.exit).toEqual({ code: 0, signal: null });
    clearInterval(t);
    expect(existsSync(sock)).toBe(false);
    expect(s.stderr()).toContain('guestnet: SIGTERM, shutting down');
    const buf = readFileSync(pcap);
    let off = 0;
    let epbs = 0;
    while (off + 12 <= buf.length) {
      const len = buf.readUInt32LE(off + 4);
      expect(buf.readUInt32LE(off + len - 4)).toBe(len); // every block complete: flushed
      if (buf.readUInt32LE(off) === 6) epbs++;
      off += len;
    }
    expect(off).toBe(buf.length);
    expect(epbs).toBeGreaterThan(10);
  });

  it('replaces a stale socket file nobody listens on', async () => {
    const sock = join(dir, 'stale.sock');
    // A server killed without cleanup leaves its socket file behind.
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(existsSync(sock)).toBe(true);
    const s = await spawnServe(['--listen', `unix:${sock}`, CONFIG]);
    expect(s.ready).toContain(`ready on unix:${sock}`);
    s.child.kill('SIGTERM');
    expect({ ...(await s.exit), stderr: s.stderr() }).toMatchObject({ code: 0, signal: null });
  });

  it('prints the QEMU dgram fragment with both ports', async () => {
    const s = await spawnServe(['--protocol', 'dgram', CONFIG]);
    expect(s.ready).toMatch(
      /^guestnet: ready on udp:127\.0\.0\.1:(\d+) \(dgram\) — qemu: -netdev dgram,id=n0,local\.type=inet,local\.host=127\.0\.0\.1,local\.port=\d+,remote\.type=inet,remote\.host=127\.0\.0\.1,remote\.port=\1$/,
    );
    s.child.kill('SIGTERM');
    expect({ ...(await s.exit), stderr: s.stderr() }).toMatchObject({ code: 0, signal: null });
  });
});

describe('guestnet serve (arguments)', () => {
  async function run(...argv: string[]): Promise<{ code: number; err: string; out: string }> {
    let err = '';
    let out = '';
    const w = (f: (s: string) => void) => new Writable({ write: (c, _e, cb) => (f(c.toString()), cb()) });
    const code = await main(['serve', ...argv], w((s) => (out += s)), w((s) => (err += s)));
    return { code, err, out };
  }

  it('rejects an unknown protocol, --shared with dgram and a unix dgram listen with exit code 2', async () => {
    expect(await run('--protocol', 'tcp')).toMatchObject({ code: 2, err: expect.stringContaining('--protocol is stream, dgram or ws') });
    expect(await run('--protocol', 'dgram', '--shared')).toMatchObject({ code: 2, err: expect.stringContaining('--shared needs') });
    expect(await run('--protocol', 'dgram', '--listen', 'unix:/tmp/x')).toMatchObject({ code: 2, err: expect.stringContaining('udp:HOST:PORT') });
    expect(await run('--listen', 'tcp:localhost')).toMatchObject({ code: 2, err: expect.stringContaining('HOST:PORT') });
    expect(await run('--frob')).toMatchObject({ code: 2, err: expect.stringContaining("unknown option '--frob'") });
  });

  it('reports a bad config with a caret before listening', async () => {
    const r = await run('--listen', `unix:${join(dir, 'x.sock')}`, 'backend=slirp,nett=10.0.3.0/24');
    expect(r.code).toBe(2);
    expect(r.err).toContain("did you mean 'net'?");
    expect(existsSync(join(dir, 'x.sock'))).toBe(false);
  });

  it('prints its help with the protocols and the hostfwd rule', async () => {
    const r = await run('--help');
    expect(r.code).toBe(0);
    expect(r.out).toContain('--protocol P');
    expect(r.out).toContain('oldest connected client');
  });

  it('defaults to $XDG_RUNTIME_DIR, else a private /tmp/guestnet-$UID directory', () => {
    expect(defaultSocketPath({ XDG_RUNTIME_DIR: '/run/user/1000' })).toEqual({ path: '/run/user/1000/guestnet.sock', privateDir: false });
    expect(defaultSocketPath({})).toEqual({ path: `/tmp/guestnet-${process.getuid!()}/guestnet.sock`, privateDir: true });
  });
});
