/**
 * The control socket of `guestnet serve --control unix:PATH`: JSON lines over a unix socket,
 * modelled on slirp4netns' API socket (`--api-socket`). One request per line, one reply line per
 * request, in order; a connection may carry several requests.
 *
 *   → {"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1","host_port":2222,"guest_port":22}}
 *   ← {"return":{"id":1}}
 *   → {"execute":"list_hostfwd"}
 *   ← {"return":{"entries":[{"id":1,"proto":"tcp","host_addr":"127.0.0.1","host_port":2222,"guest_addr":"","guest_port":22,"active":true}]}}
 *   → {"execute":"remove_hostfwd","arguments":{"id":1}}
 *   ← {"return":{}}
 *   → {"execute":"stats"}
 *   ← {"return":{"protocol":"stream","clients":[…],…}}
 *   ← {"error":{"desc":"…","code":"GUESTNET_ADDR_IN_USE"}}
 *
 * Differences from slirp4netns, on purpose: `host_addr` defaults to 127.0.0.1 (slirp4netns:
 * 0.0.0.0), as in our config grammar; `guest_addr` "" (or absent) means the guest's DHCP address;
 * a unix host side is `"host_path": "/abs/path"` instead of host_addr/host_port; `arguments.rule`
 * may carry a QEMU-grammar rule (`tcp::2222-:22`) instead of the fields; list entries carry
 * `active` (bound on the current owner) and `error` (why not); errors carry a stable `code`.
 * `stats` is ours. slirp4netns closes after one reply; we keep the connection open until the
 * client closes it.
 *
 * The socket is created mode 0600: whoever can connect can open host ports. Lines longer than
 * 64 KiB end the connection.
 */
import * as net from 'node:net';
import { promises as fsp } from 'node:fs';
import { ErrorCode, GuestnetError, isGuestnetError, parseHostFwd, type HostFwdRule } from '@guestnet/core';
import type { GuestnetServer, HostFwdEntry } from './server.ts';
import { clearStaleSocket } from './listen.ts';

const MAX_LINE = 64 * 1024;

export type ControlReply = { return: unknown } | { error: { desc: string; code: string } };

function bad(desc: string): GuestnetError {
  return new GuestnetError(ErrorCode.Protocol, `bad request: ${desc}`);
}

function intArg(args: Record<string, unknown>, name: string, min: number, max: number): number {
  const v = args[name];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`arguments.${name} must be an integer ${min}..${max}`);
  return v;
}

/** The rule in an add_hostfwd request. */
export function ruleFromArgs(args: Record<string, unknown>): HostFwdRule {
  if (typeof args.rule === 'string') return parseHostFwd(args.rule);
  const proto = args.proto ?? 'tcp';
  if (proto !== 'tcp' && proto !== 'udp') throw bad('arguments.proto must be "tcp" or "udp"');
  const guestAddr = args.guest_addr ?? '';
  if (typeof guestAddr !== 'string') throw bad('arguments.guest_addr must be a string');
  const guestPort = intArg(args, 'guest_port', 1, 65535);
  if (typeof args.host_path === 'string') {
    if (!args.host_path.startsWith('/')) throw bad('arguments.host_path must be absolute');
    return { proto, host: { kind: 'unix', path: args.host_path }, guestAddr, guestPort };
  }
  const hostAddr = args.host_addr ?? '127.0.0.1';
  if (typeof hostAddr !== 'string' || hostAddr === '') throw bad('arguments.host_addr must be an address');
  const hostPort = intArg(args, 'host_port', 0, 65535);
  // Reuse the config grammar's address checks (and its error text).
  const fmt = (a: string): string => (a.includes(':') ? `[${a}]` : a);
  return parseHostFwd(`${proto}:${fmt(hostAddr)}:${hostPort}-${guestAddr === '' ? '' : fmt(guestAddr)}:${guestPort}`);
}

/** A list_hostfwd entry. */
export function entryJson(e: HostFwdEntry): Record<string, unknown> {
  const r = e.bound ?? e.rule;
  const host = r.host.kind === 'unix' ? { host_path: r.host.path } : { host_addr: r.host.addr, host_port: r.host.port };
  return { id: e.id, proto: r.proto, ...host, guest_addr: r.guestAddr, guest_port: r.guestPort, active: e.bound !== null, ...(e.error ? { error: e.error } : {}) };
}

/** Handle one request line. Never throws. */
export async function handleControlLine(server: GuestnetServer, line: string): Promise<ControlReply> {
  try {
    let req: unknown;
    try {
      req = JSON.parse(line);
    } catch {
      throw bad('not JSON');
    }
    if (typeof req !== 'object' || req === null || typeof (req as { execute?: unknown }).execute !== 'string') throw bad('expected {"execute": NAME, "arguments": {...}}');
    const { execute } = req as { execute: string };
    const args = ((req as { arguments?: unknown }).arguments ?? {}) as Record<string, unknown>;
    if (typeof args !== 'object' || args === null) throw bad('arguments must be an object');
    switch (execute) {
      case 'add_hostfwd': {
        const e = await server.hostfwdAdd(ruleFromArgs(args));
        return { return: { id: e.id } };
      }
      case 'remove_hostfwd': {
        const id = intArg(args, 'id', 1, Number.MAX_SAFE_INTEGER);
        if (!(await server.hostfwdRemove(id))) throw new GuestnetError(ErrorCode.NotFound, `no hostfwd with id ${id}`);
        return { return: {} };
      }
      case 'list_hostfwd':
        return { return: { entries: server.hostfwdList().map(entryJson) } };
      case 'stats':
        return { return: server.stats() };
      default:
        throw bad(`unknown execute '${execute}' (add_hostfwd, remove_hostfwd, list_hostfwd, stats)`);
    }
  } catch (err) {
    const code = isGuestnetError(err) ? err.code : 'GUESTNET_INTERNAL';
    return { error: { desc: (err as Error).message, code } };
  }
}

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

export async function startControlServer(server: GuestnetServer, path: string, log: (l: string) => void): Promise<ControlServer> {
  await clearStaleSocket(path);
  const conns = new Set<net.Socket>();
  const srv = net.createServer((sock) => {
    conns.add(sock);
    sock.once('close', () => conns.delete(sock));
    sock.on('error', () => {});
    let buf = '';
    let chain: Promise<void> = Promise.resolve();
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line === '') continue;
        chain = chain.then(async () => {
          const reply = await handleControlLine(server, line);
          if (sock.writable) sock.write(`${JSON.stringify(reply)}\n`);
        });
      }
      if (buf.length > MAX_LINE) {
        log('guestnet: control: a request line over 64 KiB, connection closed');
        sock.destroy();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(path, () => resolve());
  });
  await fsp.chmod(path, 0o600);
  return {
    path,
    close: async () => {
      const closed = new Promise<void>((r) => srv.close(() => r()));
      for (const c of conns) c.destroy();
      await closed;
      await fsp.unlink(path).catch(() => {});
    },
  };
}

/**
 * Client: send one request to the control socket and return the `return` value; an `error`
 * reply is thrown as a GuestnetError with its code.
 */
export function controlRequest(path: string, execute: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new GuestnetError(ErrorCode.Io, `no reply from the control socket ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.once('error', (e: Error & { code?: string }) => {
      clearTimeout(timer);
      reject(
        new GuestnetError(ErrorCode.Io, `cannot reach the control socket ${path}: ${e.message}`, {
          hint: 'is `guestnet serve --control unix:PATH` running?',
          cause: e,
        }),
      );
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.destroy();
      let reply: ControlReply;
      try {
        reply = JSON.parse(buf.slice(0, nl)) as ControlReply;
      } catch {
        reject(new GuestnetError(ErrorCode.Protocol, 'the control socket sent a reply that is not JSON'));
        return;
      }
      if ('error' in reply) reject(new GuestnetError((reply.error.code as ErrorCode) ?? ErrorCode.Protocol, reply.error.desc));
      else resolve(reply.return);
    });
    sock.write(`${JSON.stringify(args ? { execute, arguments: args } : { execute })}\n`);
  });
}
