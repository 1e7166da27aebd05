/**
 * Addresses for `guestnet serve`: the `--listen` / `--control` / `--remote` grammar, the default
 * socket location, stale-socket cleanup, and the QEMU `-netdev` fragment printed at start.
 *
 *   --listen unix:PATH              stream or ws over a unix socket
 *   --listen tcp:HOST:PORT          stream or ws over TCP ([::1]:PORT for IPv6)
 *   --listen udp:HOST:PORT          dgram (tcp: is accepted too and means the same address)
 *
 * Defaults: stream on `unix:$XDG_RUNTIME_DIR/guestnet.sock`, else
 * `unix:/tmp/guestnet-$UID/guestnet.sock` (the directory is created 0700 and must be ours, so
 * another user cannot pre-create it and listen in); ws on `tcp:127.0.0.1:8765` (a browser cannot
 * reach a unix socket; loopback only); dgram on `udp:127.0.0.1:0` (an ephemeral port, printed).
 *
 * QEMU 7.2 syntax (qapi/net.json NetdevStreamOptions / NetdevDgramOptions):
 *   -netdev stream,id=n0,server=off,addr.type=unix,addr.path=PATH
 *   -netdev stream,id=n0,server=off,addr.type=inet,addr.host=HOST,addr.port=PORT
 *   -netdev dgram,id=n0,local.type=inet,local.host=H,local.port=P,remote.type=inet,remote.host=H,remote.port=P
 * (`server=off`: QEMU connects to us; 7.2 does not retry, so QEMU must start after the ready line.)
 */
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import { dirname, join } from 'node:path';
import { ErrorCode, GuestnetError } from '@guestnet/core';
import { UsageError } from '../usage-error.ts';

export type Protocol = 'stream' | 'dgram' | 'ws';

export type ListenAddr = { kind: 'unix'; path: string } | { kind: 'inet'; host: string; port: number };

export function formatAddr(a: ListenAddr, scheme = 'tcp'): string {
  if (a.kind === 'unix') return `unix:${a.path}`;
  return `${scheme}:${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

/** HOST:PORT with an optional [IPv6]. */
export function parseHostPort(s: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`${what}: expected HOST:PORT (e.g. 127.0.0.1:5555 or [::1]:5555), got '${s}'`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

export function parseListen(s: string, protocol: Protocol, what = '--listen'): ListenAddr {
  if (s.startsWith('unix:')) {
    if (protocol === 'dgram') throw new UsageError(`${what}: dgram runs over UDP (Node has no unix datagram sockets): use udp:HOST:PORT`);
    const path = s.slice(5);
    if (path === '') throw new UsageError(`${what}: unix: needs a path`);
    if (Buffer.byteLength(path) > 107) throw new UsageError(`${what}: the socket path is longer than 107 bytes (sun_path)`);
    return { kind: 'unix', path };
  }
  const m = /^(tcp|udp|inet):(.*)$/.exec(s);
  if (!m) throw new UsageError(`${what}: expected unix:PATH, tcp:HOST:PORT or udp:HOST:PORT, got '${s}'`);
  if (m[1] === 'udp' && protocol !== 'dgram') throw new UsageError(`${what}: udp: is for --protocol dgram`);
  return { kind: 'inet', ...parseHostPort(m[2]!, what) };
}

/** Where the default socket lives, and whether its directory is ours to create. */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env, name = 'guestnet.sock'): { path: string; privateDir: boolean } {
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg) return { path: join(xdg, name), privateDir: false };
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return { path: join('/tmp', `guestnet-${uid}`, name), privateDir: true };
}

export function defaultListen(protocol: Protocol, env: NodeJS.ProcessEnv = process.env): ListenAddr & { privateDir?: boolean } {
  if (protocol === 'dgram') return { kind: 'inet', host: '127.0.0.1', port: 0 };
  if (protocol === 'ws') return { kind: 'inet', host: '127.0.0.1', port: 8765 };
  const d = defaultSocketPath(env);
  return { kind: 'unix', path: d.path, privateDir: d.privateDir };
}

/** Create the /tmp fallback directory 0700, and refuse one that another user owns or can write. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await fsp.lstat(dir);
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new GuestnetError(ErrorCode.EPERM, `${dir} is not a private directory of this user`, {
      hint: `remove it, or set XDG_RUNTIME_DIR, or pass --listen unix:PATH`,
    });
  }
}

/**
 * Make `path` free for a unix listener: a leftover socket file nobody listens on is removed
 * (a crashed server leaves one); a live one, or a file that is not a socket, is an error.
 */
export async function clearStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = await fsp.lstat(path);
  } catch {
    return;
  }
  if (!st.isSocket()) {
    throw new GuestnetError(ErrorCode.AddrInUse, `${path} exists and is not a socket`, { hint: 'choose another --listen path' });
  }
  const live = await new Promise<boolean>((resolve) => {
    const c = net.connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (live) {
    throw new GuestnetError(ErrorCode.AddrInUse, `something is already listening on ${path}`, {
      hint: 'another `guestnet serve` is running there; stop it or choose another --listen path',
    });
  }
  await fsp.unlink(path).catch(() => {});
}

export async function prepareUnixListen(path: string, privateDir = false): Promise<void> {
  if (privateDir) await ensurePrivateDir(dirname(path));
  await clearStaleSocket(path);
}

/** The QEMU `-netdev` fragment that connects to a stream listener. */
export function qemuStreamFragment(a: ListenAddr, id = 'n0'): string {
  if (a.kind === 'unix') return `-netdev stream,id=${id},server=off,addr.type=unix,addr.path=${a.path}`;
  return `-netdev stream,id=${id},server=off,addr.type=inet,addr.host=${a.host},addr.port=${a.port}`;
}

/** The QEMU `-netdev dgram` fragment: QEMU binds `qemu`, sends to `us`. */
export function qemuDgramFragment(us: { host: string; port: number }, qemu: { host: string; port: number }, id = 'n0'): string {
  return (
    `-netdev dgram,id=${id},local.type=inet,local.host=${qemu.host},local.port=${qemu.port},` +
    `remote.type=inet,remote.host=${us.host},remote.port=${us.port}`
  );
}

/** A currently free UDP port on `host` (for the QEMU side of dgram when --remote is not given). */
export async function freeUdpPort(host: string): Promise<number> {
  const dgram = await import('node:dgram');
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, host, () => resolve());
  });
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
