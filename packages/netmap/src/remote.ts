/**
 * Attaching to a switch served by another process (server.ts): `backend=vale0:1` in a process
 * when `guestnet switch vale0` (or any SwitchServer) runs elsewhere on the host.
 *
 * The client connects to the switch's unix socket, asks for its port (JSON-lines handshake, see
 * server.ts), maps the shared memory file the server made for it, validates the port region
 * (ring.ts refuses a bad magic, version or geometry), tells the server it has mapped it (the
 * server then unlinks the file) and returns a NetmapPortBackend over the region whose doorbells
 * are kick bytes on that same connection (socket-doorbell.ts). Frames never cross the socket.
 *
 * Lifetime: closing the backend marks the region closed, kicks the switch and ends the
 * connection; the switch detaches the port. If the switch process goes away (the connection
 * closes under an open port) the backend raises `error` with GUESTNET_CLOSED; frames sent after
 * that fill the orphaned ring and are then dropped (counted as backpressure).
 *
 * Not here: reconnecting to a restarted switch, TCP (the rings need shared memory on one host).
 */
import { lstatSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { ErrorCode, GuestnetError, PermissionError, type NetBackend } from '@guestnet/core';
import { openPortRegion, type PortRegion } from './ring.ts';
import type { Doorbell } from './doorbell.ts';
import { NetmapPortBackend, type NetmapPortOptions } from './port-backend.ts';
import { openSharedFile } from './shm.ts';
import { SocketKicks } from './socket-doorbell.ts';
import { LineReader, VALE_PROTOCOL_VERSION, defaultSwitchSocket, writeLine, type AttachReply, type AttachRequest } from './server.ts';

export interface RemoteAttachOptions {
  /** The switch's socket (option `switch=PATH`); default `${XDG_RUNTIME_DIR:-/tmp}/guestnet-vale/<name>.sock`. */
  socketPath?: string;
  /** Ring geometry wished for (the server's default otherwise). */
  slots?: number;
  bufSize?: number;
  /** The guest's MAC, for the switch's log. */
  mac?: string;
  /** IP MTU the port announces (NetmapPortBackend; default 1500). */
  mtu?: number;
  /** Handshake time limit. Default 10 s. */
  timeoutMs?: number;
}

/**
 * The options as the netmap backend's config hands them over (`switch=PATH`, `bufsize=N`, …)
 * are accepted too, so `tryAttachRemote(name, port, backendOptions)` works.
 */
export type RemoteAttachInput = { readonly [K in keyof RemoteAttachOptions]?: unknown } & { readonly switch?: unknown; readonly bufsize?: unknown };

function normalize(o: RemoteAttachInput): RemoteAttachOptions {
  const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const out: RemoteAttachOptions = {};
  const socketPath = str(o.socketPath) ?? str(o.switch);
  if (socketPath !== undefined) out.socketPath = socketPath;
  const slots = num(o.slots);
  if (slots !== undefined) out.slots = slots;
  const bufSize = num(o.bufSize) ?? num(o.bufsize);
  if (bufSize !== undefined) out.bufSize = bufSize;
  const mac = str(o.mac);
  if (mac !== undefined) out.mac = mac;
  const mtu = num(o.mtu);
  if (mtu !== undefined) out.mtu = mtu;
  const timeoutMs = num(o.timeoutMs);
  if (timeoutMs !== undefined) out.timeoutMs = timeoutMs;
  return out;
}

/** A switch port in another process: a NetmapPortBackend that owns its connection. */
export class RemotePortBackend extends NetmapPortBackend {
  readonly switchName: string;
  readonly port: number;
  readonly socketPath: string;
  private readonly socket: Socket;
  private readonly kicks: SocketKicks;

  constructor(
    init: { name: string; port: number; socketPath: string; socket: Socket; kicks: SocketKicks; region: PortRegion },
    bells: { toSwitch: Doorbell; fromSwitch: Doorbell },
    opts: NetmapPortOptions,
  ) {
    super(init.region, bells, {
      ...opts,
      onClose: () => {
        // The close kick is written in a microtask; end() after it flushes it, then FIN.
        setImmediate(() => {
          init.kicks.close();
          init.socket.end();
          setTimeout(() => init.socket.destroy(), 2000).unref();
        });
      },
    });
    this.switchName = init.name;
    this.port = init.port;
    this.socketPath = init.socketPath;
    this.socket = init.socket;
    this.kicks = init.kicks;
    this.socket.once('close', () => {
      if (this.state === 'closed') return;
      this.events.error?.(
        new GuestnetError(ErrorCode.Closed, `switch ${this.switchName} (${this.socketPath}) went away; port ${this.port} is disconnected`, {
          hint: `restart the switch (guestnet switch ${this.switchName}) and attach again`,
        }),
      );
    });
  }

  /** Kick bytes exchanged (tests and stats). */
  kickCounts(): { sent: number[]; received: number[] } {
    return { sent: [...this.kicks.sent], received: [...this.kicks.received] };
  }
}

function socketExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Attach to port `port` of the switch `name` served by another process: a number 0..253, a
 * name (the server gives a named port the lowest free number and keeps the name while it is
 * attached, as VALE does for `vale0:eth1`), or null for the lowest free port. Resolves null when
 * no socket exists for that switch (the caller then uses an in-process switch); rejects with a
 * coded error when the socket exists but the switch refuses (port taken: GUESTNET_EXISTS; nobody
 * listening: GUESTNET_IO; …). The backend is not initialised.
 */
export async function tryAttachRemote(name: string, port: number | string | null, opts: RemoteAttachInput = {}): Promise<NetBackend | null> {
  const o = normalize(opts);
  const path = o.socketPath ?? defaultSwitchSocket(name);
  if (!socketExists(path)) return null;
  return attachRemote(name, port, o);
}

/** Like {@link tryAttachRemote} but a missing socket is an error (GUESTNET_NOT_FOUND). */
export async function attachRemote(name: string, port: number | string | null, input: RemoteAttachInput = {}): Promise<RemotePortBackend> {
  const opts = normalize(input);
  const path = opts.socketPath ?? defaultSwitchSocket(name);
  const socket = await connectTo(path, name);
  try {
    return await handshake(socket, name, port, path, opts);
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

async function connectTo(path: string, name: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => {
      s.off('error', onError);
      resolve(s);
    });
    const onError = (e: NodeJS.ErrnoException): void => {
      if (e.code === 'ENOENT') {
        reject(
          new GuestnetError(ErrorCode.NotFound, `no switch ${name} is served at ${path}`, {
            hint: `start it with: guestnet switch ${name}   (or leave the switch in this process)`,
            cause: e,
          }),
        );
      } else if (e.code === 'ECONNREFUSED') {
        reject(
          new GuestnetError(ErrorCode.Io, `switch ${name}: ${path} exists but nothing listens on it (a switch process that crashed?)`, {
            hint: `restart it with guestnet switch ${name}, or remove ${path} to use a switch inside this process`,
            cause: e,
          }),
        );
      } else if (e.code === 'EACCES' || e.code === 'EPERM') {
        reject(new PermissionError(`switch ${name}: cannot connect to ${path}: ${e.message}`, 'the switch runs as another user: attach as that user', e));
      } else {
        reject(new GuestnetError(ErrorCode.Io, `switch ${name}: cannot connect to ${path}: ${e.message}`, { cause: e }));
      }
    };
    s.once('error', onError);
  });
}

async function handshake(socket: Socket, name: string, port: number | string | null, path: string, opts: RemoteAttachOptions): Promise<RemotePortBackend> {
  socket.on('error', () => {}); // 'close' reports it
  const reader = new LineReader(socket);
  const req: AttachRequest = {
    guestnet: 'vale',
    v: VALE_PROTOCOL_VERSION,
    op: 'attach',
    port,
    pid: process.pid,
    ...(opts.slots !== undefined ? { slots: opts.slots } : {}),
    ...(opts.bufSize !== undefined ? { bufSize: opts.bufSize } : {}),
    ...(opts.mac !== undefined ? { mac: opts.mac } : {}),
  };
  writeLine(socket, req);
  const timeout = opts.timeoutMs ?? 10_000;
  const reply = (await reader.read(timeout, `switch ${name}`)) as AttachReply | null;
  if (!reply || typeof reply !== 'object' || typeof reply.ok !== 'boolean') {
    throw new GuestnetError(ErrorCode.Protocol, `switch ${name}: unexpected handshake reply`);
  }
  if (!reply.ok) {
    const code = (Object.values(ErrorCode) as string[]).includes(reply.code) ? (reply.code as ErrorCode) : ErrorCode.Protocol;
    throw new GuestnetError(code, `switch ${name}: ${reply.message}`, reply.hint ? { hint: reply.hint } : {});
  }
  const mem = openSharedFile(reply.path);
  const region = openPortRegion(mem, 0, 'port');
  if (region.geometry.slots !== reply.slots || region.geometry.bufSize !== reply.bufSize) {
    throw new GuestnetError(ErrorCode.Protocol, `switch ${name}: the port region does not match the announced geometry`);
  }
  writeLine(socket, { op: 'mapped' });
  const kicks = new SocketKicks(socket, reader.rest);
  return new RemotePortBackend(
    { name, port: reply.port, socketPath: path, socket, kicks, region },
    { toSwitch: kicks.bell('toSwitch'), fromSwitch: kicks.bell('toPort') },
    { ...(opts.mtu !== undefined ? { mtu: opts.mtu } : {}) },
  );
}

/** Read a served switch's counters and attached ports (what `guestnet switch --stats` shows). */
export async function remoteSwitchStats(name: string, socketPath?: string, timeoutMs = 5000): Promise<unknown> {
  const path = socketPath ?? defaultSwitchSocket(name);
  const socket = await connectTo(path, name);
  try {
    socket.on('error', () => {});
    const reader = new LineReader(socket);
    writeLine(socket, { guestnet: 'vale', v: VALE_PROTOCOL_VERSION, op: 'stats' } satisfies AttachRequest);
    return await reader.read(timeoutMs, `switch ${name}`);
  } finally {
    socket.destroy();
  }
}
