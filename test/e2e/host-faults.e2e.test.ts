/**
 * Host-side faults that need real processes (the in-process ones — upstream reset, silent and
 * garbage DNS, a vanishing hostfwd client — are in packages/slirp/src/hostile.test.ts):
 *
 * - `guestnet serve`: a QEMU stream client that disconnects in the middle of a frame is logged
 *   and forgotten; the next client is served (DHCP, TCP through the gateway); the serve process
 *   has no more fds open afterwards than before (/proc/<pid>/fd).
 * - `guestnet serve` gets SIGTERM while a guest downloads through it: exit 0, the shutdown line,
 *   the unix socket removed, the host-side connection closed, the pcapng capture complete.
 * - `guestnet attach` gets SIGTERM while the kernel guest in a namespace downloads through it:
 *   exit 0, its log line, the TAP gone, the host-side connection and the hostfwd listener closed.
 *
 * The stream guest is slirp's scripted test guest over a socket (host-faults-link.ts). Safety:
 * every backend has `allow=127.0.0.0/8` and `dns-upstream=127.0.0.1#1`; host peers listen on
 * 127.0.0.1; the namespace is `gn-hfault-<pid>`, deleted in afterAll; processes are killed there
 * too. The serve tests need only Node; the attach test needs root, /dev/net/tun, busybox,
 * nsenter and a built @guestnet/tap (skips with the reason, fails under CI). Budget: ~10 s.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NetBackend } from '../../packages/core/src/index.ts';
import { TestGuest } from '../../packages/slirp/src/testing/test-guest.ts';
import { StreamLink } from './host-faults-link.ts';
import { Daemon, killAll } from './lib/proc.ts';
import { describeWith, needNetns, needTools, needTun, type Missing } from './lib/prereq.ts';
import { createNetns, deleteAllNetns } from './lib/netns.ts';
import { freePort } from './lib/servers.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'apps/cli/bin/guestnet.js');
const GW = (10 << 24) | (2 << 8) | 2;
const CONFIG = 'backend=slirp,dns-upstream=127.0.0.1#1,allow=127.0.0.0/8';

const tmp = mkdtempSync(join(tmpdir(), 'gn-hfault-'));
const undo: (() => unknown)[] = [];
afterAll(async () => {
  for (const u of undo.splice(0).reverse()) await u();
  await killAll();
  await deleteAllNetns();
  rmSync(tmp, { recursive: true, force: true });
});

const fds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/** Poll until `cond` holds or `ms` pass. */
async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A host server on 127.0.0.1 that streams bytes to every client until it goes away. */
async function firehose(): Promise<{ port: number; sent: () => number; open: () => number }> {
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  let sent = 0;
  const socks = new Set<net.Socket>();
  const server = net.createServer((s) => {
    socks.add(s);
    s.on('error', () => {});
    s.on('close', () => socks.delete(s));
    const pump = (): void => {
      while (!s.destroyed && s.write(chunk)) sent += chunk.length;
      if (!s.destroyed) sent += chunk.length;
    };
    s.on('drain', pump);
    pump();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  undo.push(() => {
    for (const s of socks) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as net.AddressInfo).port, sent: () => sent, open: () => socks.size };
}

function startServe(name: string, extra: string[] = []): { d: Daemon; sock: string } {
  const sock = join(tmp, `${name}.sock`);
  const d = new Daemon(process.execPath, [CLI, 'serve', '--listen', `unix:${sock}`, '--control', 'none', ...extra, CONFIG], { cwd: ROOT });
  undo.push(() => d.stop('SIGKILL'));
  return { d, sock };
}

/** Walk a pcapng file block by block; returns the number of Enhanced Packet Blocks, or throws. */
function pcapngPackets(path: string): number {
  const b = readFileSync(path);
  let off = 0;
  let epb = 0;
  while (off < b.length) {
    if (off + 12 > b.length) throw new Error(`truncated block header at ${off}`);
    const type = b.readUInt32LE(off);
    const len = b.readUInt32LE(off + 4);
    if (len < 12 || len % 4 !== 0 || off + len > b.length) throw new Error(`bad block length ${len} at ${off}`);
    if (b.readUInt32LE(off + len - 4) !== len) throw new Error(`trailing length mismatch at ${off}`);
    if (type === 6) epb++;
    off += len;
  }
  return epb;
}

async function guestOver(sock: string): Promise<{ guest: TestGuest; link: StreamLink }> {
  const link = await StreamLink.connect(sock);
  const guest = new TestGuest(link as unknown as NetBackend);
  await guest.start();
  return { guest, link };
}

describe('host faults: guestnet serve', () => {
  it('a QEMU stream client that disconnects mid-frame is logged and forgotten; the next client is served; no fd leaks in the serve process', async () => {
    const { d, sock } = startServe('midframe');
    await d.waitFor(/guestnet: ready on unix:/, 30_000);
    const pid = d.child.pid!;
    const echo = net.createServer((s) => s.on('error', () => {}).pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    undo.push(() => new Promise<void>((r) => echo.close(() => r())));
    const echoPort = (echo.address() as net.AddressInfo).port;

    // Warm-up client: the first backend loads modules and opens what a process opens once.
    const w = await guestOver(sock);
    await w.guest.dhcp();
    await w.guest.stop();
    await d.waitFor(/client 1 disconnected[^\n]*/);
    await new Promise((r) => setTimeout(r, 200));
    const fd0 = fds(pid);

    // Client 2: a length prefix promising 1000 bytes, 100 bytes, then gone.
    const bad = await StreamLink.connect(sock);
    await d.waitFor(/client 2 connected/);
    const frag = Buffer.alloc(104);
    frag.writeUInt32BE(1000, 0);
    bad.rawWrite(frag);
    await new Promise((r) => setTimeout(r, 50));
    await bad.close();
    const line = (await d.waitFor(/guestnet: client 2 (disconnected|dropped)[^\n]*/))[0];
    console.log(`serve logged: ${line}`);

    // Client 3 is served as if nothing happened.
    const g = await guestOver(sock);
    const ack = await g.guest.dhcp();
    expect(ack.yiaddr).toBe((10 << 24) | (2 << 8) | 15);
    await g.guest.arp(GW);
    const s = g.guest.connect(GW, echoPort);
    await s.until(() => s.established, 'TCP through serve');
    s.write(new TextEncoder().encode('still serving'));
    await s.until(() => s.received === 13, 'echo');
    s.abort();
    await g.guest.stop();
    await d.waitFor(/client 3 disconnected/);
    await until(() => fds(pid) <= fd0, `serve's fds back to ${fd0} (now ${fds(pid)})`, 5000);
    expect(d.child.exitCode).toBeNull();
    const exit = await d.stop('SIGTERM', 10_000);
    expect(exit).toEqual({ code: 0, signal: null });
  });

  it('SIGTERM during a download: exit 0, the shutdown line, socket file removed, host connection closed, pcapng complete', async () => {
    const pcap = join(tmp, 'sigterm.pcapng');
    const { d, sock } = startServe('sigterm', ['--pcap', pcap]);
    await d.waitFor(/guestnet: ready on unix:/, 30_000);
    const src = await firehose();
    const { guest, link } = await guestOver(sock);
    await guest.dhcp();
    await guest.arp(GW);
    const s = guest.connect(GW, src.port);
    await s.until(() => s.received > 2 * 1024 * 1024, 'a download under way', 30_000);
    expect(src.open()).toBe(1);
    const exit = await d.stop('SIGTERM', 10_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(d.stderr).toMatch(new RegExp(`guestnet: SIGTERM, shutting down \\(unix:${sock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)`));
    expect(existsSync(sock)).toBe(false);
    await until(() => src.open() === 0, 'the host side of the download closed', 5000);
    await until(() => link.closed, 'the stream closed for the guest', 5000);
    expect(statSync(pcap).size).toBeGreaterThan(0);
    const packets = pcapngPackets(pcap);
    expect(packets).toBeGreaterThan(100);
    console.log(`serve SIGTERM: ${s.received} bytes downloaded, ${packets} packets in a complete pcapng`);
    await guest.stop();
  });
});

async function needTapBackend(): Promise<Missing[]> {
  try {
    const { loadBackend } = await import('../../packages/core/src/index.ts');
    const { importer } = await import('../../apps/cli/src/commands/command.ts');
    await loadBackend('tap', { importer });
    return [];
  } catch (e) {
    return [{ what: `@guestnet/tap cannot be loaded (${(e as Error).message})`, fix: 'add @guestnet/tap to apps/cli and run pnpm install (builds the addon)' }];
  }
}

const attachMissing = [...needNetns(), ...needTun(), ...needTools('nsenter', 'busybox'), ...(await needTapBackend())];

describeWith('host faults: guestnet attach', attachMissing, () => {
  it('SIGTERM during a kernel-guest download: exit 0, its log line, TAP gone, host connection and hostfwd listener closed', async () => {
    const ns = await createNetns('hfault');
    undo.push(() => ns.delete());
    const src = await firehose();
    const fwdPort = await freePort();
    const cli = new Daemon(process.execPath, [CLI, 'attach', '--netns', ns.path, '--tap', 'tap0', '--configure', `${CONFIG},hostfwd=tcp:127.0.0.1:${fwdPort}-:8080`], { cwd: ROOT });
    undo.push(() => cli.stop('SIGKILL'));
    await cli.waitFor(/^attached .*$/m, 30_000);
    // stdin stays open (a pipe): at EOF on stdin nc would half-close and the server would stop.
    const nc = ns.spawn('busybox', ['nc', '10.0.2.2', String(src.port)], { stdio: ['pipe', 'ignore', 'pipe'] });
    undo.push(() => nc.stop('SIGKILL'));
    await until(() => src.sent() > 8 * 1024 * 1024, 'a download under way', 30_000);
    expect(src.open()).toBe(1);
    const exit = await cli.stop('SIGTERM', 10_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(cli.stderr).toMatch(/^guestnet: SIGTERM, detaching tap0$/m);
    const link = await ns.exec('ip', ['link', 'show', 'tap0']);
    expect(link.code).not.toBe(0);
    await until(() => src.open() === 0, 'the host side of the download closed', 5000);
    // The hostfwd listener is gone: the port can be bound again.
    const probe = net.createServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(fwdPort, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((r) => probe.close(() => r()));
    console.log(`attach SIGTERM after ${(src.sent() / 1048576).toFixed(1)} MiB sent`);
    await nc.stop('SIGKILL');
  });
});
