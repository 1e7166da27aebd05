/**
 * SwitchServer: a ValeSwitch served to other processes over a unix socket, so that emulators in
 * separate processes share one switch (`guestnet switch vale0`, then `backend=vale0:1` elsewhere).
 *
 * ## Theory of operation
 * The switch process listens on `${XDG_RUNTIME_DIR:-/tmp}/guestnet-vale/<name>.sock` (directory
 * 0700, socket 0600: only the same user attaches). Each connection is one switch port:
 *
 *   1. client → server, one JSON line: `{"guestnet":"vale","v":1,"op":"attach","port":N|NAME|null,
 *      "slots"?,"bufSize"?,"mac"?,"pid"?}` (`port: null` = the lowest free port; a NAME gets the
 *      lowest free port and keeps the name while attached, as VALE's `vale0:eth1`).
 *   2. server: reserves the port, creates a file `<shmdir>/guestnet-vale-<name>-<pid>-<port>-<seq>`
 *      (exclusive, 0600, reserved with posix_fallocate), maps it (src/shm.ts), formats a port
 *      region in it and replies `{"ok":true,"port","path","slots","bufSize","bytes"}`, or
 *      `{"ok":false,"code","message","hint"}` and closes (port taken, bad geometry, …).
 *   3. client maps the file, checks the region and sends `{"op":"mapped"}`. The server unlinks
 *      the file now — both sides hold a mapping, so the name is no longer needed and nothing is
 *      left in /dev/shm whatever happens later — and attaches the region to the switch.
 *   4. from then on the connection carries only kick bytes both ways (socket-doorbell.ts).
 *
 * When the connection closes (the client closed its port, exited or was killed: the kernel
 * closes its socket) the port is detached, and the mapping is released when the
 * SharedArrayBuffer is collected. The file name lives only between steps 2 and 3; if the switch
 * process itself is SIGKILLed in that window the file stays, so a starting server removes
 * `guestnet-vale-*-<pid>-*` files whose pid is no longer running.
 *
 * Also: `{"op":"stats"}` answers the switch's counters and closes (for tools).
 *
 * Security: the socket and files are the user's own (modes 0600/0700); a client is trusted as
 * much as any process of that user, and the ring code treats the region contents as hostile
 * anyway (ring.ts). Not done: fd passing (memfd over SCM_RIGHTS; Node cannot send fds on unix
 * sockets), authentication beyond file modes, remote (TCP) clients.
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { ErrorCode, GuestnetError, PermissionError, AddrInUseError } from '@guestnet/core';
import { DEFAULT_GEOMETRY, formatPortRegion, openPortRegion, portRegionBytes, type RingGeometry } from './ring.ts';
import { MAX_PORTS, type PortHandle, type SwitchStats, type ValeSwitch } from './switch.ts';
import { createSharedFile, defaultShmDir, unlinkSharedFile } from './shm.ts';
import { SocketKicks } from './socket-doorbell.ts';

/** Protocol version of the handshake. */
export const VALE_PROTOCOL_VERSION = 1;
/** A handshake line longer than this is refused (the real ones are ~150 bytes). */
export const MAX_LINE = 4096;
/** The most shared memory one client may ask for (a 65536-slot × 64 KiB ring pair is far more). */
export const MAX_PORT_BYTES = 256 * 1024 * 1024;
const HANDSHAKE_TIMEOUT_MS = 10_000;
const SWITCH_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** What a client sends first. */
export interface AttachRequest {
  guestnet: 'vale';
  v: number;
  op: 'attach' | 'stats';
  /** The port wanted: a number, a name (kept while attached), or null for the lowest free one. */
  port?: number | string | null;
  slots?: number;
  bufSize?: number;
  /** Informational: the guest's MAC (logged). */
  mac?: string;
  /** Informational: the client's pid (logged). */
  pid?: number;
}

export type AttachReply =
  | { ok: true; v: number; switch: string; port: number; path: string; slots: number; bufSize: number; bytes: number }
  | { ok: false; v: number; code: string; message: string; hint?: string };

/** Throws GUESTNET_BAD_CONFIG unless `name` is a plain switch name (it becomes a file name). */
export function checkSwitchName(name: string): void {
  if (!SWITCH_NAME.test(name)) {
    throw new GuestnetError(ErrorCode.BadConfig, `switch name '${name}' must be 1-64 characters of A-Z a-z 0-9 _ . -`, {
      hint: 'e.g. vale0',
    });
  }
}

/** The directory of served switches' sockets: `${XDG_RUNTIME_DIR:-/tmp}/guestnet-vale`. */
export function switchSocketDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_RUNTIME_DIR || '/tmp', 'guestnet-vale');
}

/** Where a switch named `name` is served by default. */
export function defaultSwitchSocket(name: string, env: NodeJS.ProcessEnv = process.env): string {
  checkSwitchName(name);
  return join(switchSocketDir(env), `${name}.sock`);
}

/**
 * Reads newline-terminated JSON from a socket during the handshake. Bytes after a line stay in
 * `rest` for the next read (or for SocketKicks). The socket is paused between reads so nothing
 * is emitted while no listener is attached.
 */
export class LineReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly socket: Socket;
  constructor(socket: Socket) {
    this.socket = socket;
    socket.pause();
  }

  /** Bytes read past the last line. */
  get rest(): Buffer {
    return this.buf;
  }

  /** The next line parsed as JSON. Rejects (GUESTNET_PROTOCOL) on close, timeout, junk. */
  read(timeoutMs: number, what: string): Promise<unknown> {
    const s = this.socket;
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | null = null;
      const done = (err: Error | null, v?: unknown): void => {
        if (timer) clearTimeout(timer);
        s.off('data', onData);
        s.off('close', onClose);
        s.off('error', onError);
        s.pause();
        if (err) reject(err);
        else resolve(v);
      };
      const tryLine = (): boolean => {
        const nl = this.buf.indexOf(0x0a);
        if (nl < 0) {
          if (this.buf.length > MAX_LINE) done(new GuestnetError(ErrorCode.Protocol, `${what}: handshake line longer than ${MAX_LINE} bytes`));
          return this.buf.length > MAX_LINE;
        }
        const line = this.buf.subarray(0, nl).toString('utf8');
        this.buf = this.buf.subarray(nl + 1);
        try {
          done(null, JSON.parse(line));
        } catch {
          done(new GuestnetError(ErrorCode.Protocol, `${what}: not a guestnet switch handshake (${JSON.stringify(line.slice(0, 80))})`));
        }
        return true;
      };
      const onData = (chunk: Buffer): void => {
        this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
        tryLine();
      };
      const onClose = (): void => done(new GuestnetError(ErrorCode.Protocol, `${what}: the peer closed the connection during the handshake`));
      const onError = (e: Error): void => done(new GuestnetError(ErrorCode.Io, `${what}: ${e.message}`, { cause: e }));
      if (tryLine()) return;
      timer = setTimeout(() => done(new GuestnetError(ErrorCode.Protocol, `${what}: no handshake within ${timeoutMs} ms`)), timeoutMs);
      s.on('data', onData);
      s.once('close', onClose);
      s.once('error', onError);
      s.resume();
    });
  }
}

export function writeLine(socket: Socket, msg: unknown): void {
  socket.write(`${JSON.stringify(msg)}\n`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

/** Remove port files left by switch processes that no longer run. Returns how many. */
export function sweepStaleShm(dir: string = defaultShmDir()): number {
  let n = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const f of names) {
    const m = /^guestnet-vale-.+-(\d+)-\d+-\d+$/.exec(f);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || isAlive(pid)) continue;
    try {
      unlinkSync(join(dir, f));
      n++;
    } catch {
      // someone else's, or already gone
    }
  }
  return n;
}

export interface SwitchServerOptions {
  /** Socket path; default {@link defaultSwitchSocket}(switch name). */
  socketPath?: string;
  /** Where port files are made; default /dev/shm (else $XDG_RUNTIME_DIR, else the temp dir). */
  shmDir?: string;
  /** Geometry for clients that ask for none. Default 1024 slots × 2048 bytes. */
  geometry?: RingGeometry;
  /** Ports clients may use: 0..ports-1 (default 254, all). Ports taken in-process count too. */
  ports?: number;
  /** Log lines (clients coming and going). */
  log?: (line: string) => void;
}

/** One connected client port, as `clients()` lists it. */
export interface ServedPort {
  port: number;
  /** The name it was asked for by (`vale0:web`), or null. */
  name: string | null;
  pid: number | null;
  mac: string | null;
  geometry: RingGeometry;
}

interface Conn {
  socket: Socket;
  port: number;
  name: string | null;
  path: string | null;
  handle: PortHandle | null;
  kicks: SocketKicks | null;
  info: ServedPort | null;
}

/**
 * Serve `sw` on a unix socket. The server never closes the switch (its owner does); close()
 * detaches the remote ports, closes their connections and removes the socket.
 */
export class SwitchServer {
  readonly switch: ValeSwitch;
  readonly path: string;
  private readonly server: Server;
  private readonly shmDir: string;
  private readonly geometry: RingGeometry;
  private readonly log: (line: string) => void;
  /** Port numbers clients may use: 0..maxPorts-1. */
  readonly maxPorts: number;
  private readonly conns = new Set<Conn>();
  /** Ports promised to a client between reply and attach. */
  private readonly reserved = new Set<number>();
  /** Named ports (`vale0:web`) → their number, while attached or reserved. */
  private readonly names = new Map<string, number>();
  private seq = 0;
  private closed = false;

  private constructor(sw: ValeSwitch, path: string, server: Server, opts: SwitchServerOptions) {
    this.switch = sw;
    this.path = path;
    this.server = server;
    this.shmDir = opts.shmDir ?? defaultShmDir();
    this.geometry = opts.geometry ?? DEFAULT_GEOMETRY;
    this.log = opts.log ?? (() => {});
    this.maxPorts = opts.ports ?? MAX_PORTS;
    server.on('connection', (s) => this.accept(s));
  }

  /**
   * Start serving. Rejects with GUESTNET_ADDR_IN_USE when another process already serves a switch
   * on that socket, GUESTNET_EPERM when the directory belongs to another user.
   */
  static async listen(sw: ValeSwitch, opts: SwitchServerOptions = {}): Promise<SwitchServer> {
    const path = opts.socketPath ?? defaultSwitchSocket(sw.name);
    portRegionBytes(opts.geometry ?? DEFAULT_GEOMETRY); // validate early
    if (opts.ports !== undefined && (!Number.isInteger(opts.ports) || opts.ports < 1 || opts.ports > MAX_PORTS)) {
      throw new GuestnetError(ErrorCode.BadConfig, `a switch has 1..${MAX_PORTS} ports, not ${opts.ports}`);
    }
    prepareDir(path);
    await removeStaleSocket(path);
    sweepStaleShm(opts.shmDir ?? defaultShmDir());
    const server = createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'EADDRINUSE') reject(new AddrInUseError(path, e));
        else if (e.code === 'EACCES' || e.code === 'EPERM') reject(new PermissionError(`cannot listen on ${path}: ${e.message}`, 'pick a --socket path in a directory you own', e));
        else reject(new GuestnetError(ErrorCode.Io, `cannot listen on ${path}: ${e.message}`, { cause: e }));
      });
      server.listen(path, () => resolve());
    });
    try {
      chmodSync(path, 0o600);
    } catch {
      // the directory is 0700 anyway
    }
    return new SwitchServer(sw, path, server, opts);
  }

  /** The remote ports attached now. */
  clients(): ServedPort[] {
    const out: ServedPort[] = [];
    for (const c of this.conns) if (c.info && c.handle) out.push(c.info);
    return out.sort((a, b) => a.port - b.port);
  }

  /** Detach every remote port, close connections and the listener, remove the socket. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closing = new Promise<void>((r) => this.server.close(() => r()));
    for (const c of [...this.conns]) this.drop(c);
    await closing;
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }

  // ---- per connection ---------------------------------------------------------------------------

  private accept(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const c: Conn = { socket, port: -1, name: null, path: null, handle: null, kicks: null, info: null };
    this.conns.add(c);
    socket.on('error', () => {}); // 'close' follows and does the cleanup
    socket.once('close', () => this.drop(c));
    this.handshake(c).catch((err: unknown) => {
      const e = err instanceof GuestnetError ? err : new GuestnetError(ErrorCode.Io, String((err as Error)?.message ?? err));
      if (!socket.destroyed && socket.writable) {
        const reply: AttachReply = { ok: false, v: VALE_PROTOCOL_VERSION, code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
        writeLine(socket, reply);
        socket.end();
      }
      this.log(`switch ${this.switch.name}: refused a client: ${e.message}`);
      // Bound how long a refused client may keep the connection half-open.
      setTimeout(() => socket.destroy(), 1000).unref();
      this.releasePort(c);
      if (c.port >= 0 && !c.handle) this.forgetName(c);
    });
  }

  private async handshake(c: Conn): Promise<void> {
    const reader = new LineReader(c.socket);
    const req = (await reader.read(HANDSHAKE_TIMEOUT_MS, `switch ${this.switch.name}`)) as Partial<AttachRequest> | null;
    if (!req || typeof req !== 'object' || req.guestnet !== 'vale') {
      throw new GuestnetError(ErrorCode.Protocol, 'not a guestnet switch client (no "guestnet":"vale")');
    }
    if (req.v !== VALE_PROTOCOL_VERSION) {
      throw new GuestnetError(ErrorCode.Protocol, `handshake version ${String(req.v)}, this switch speaks ${VALE_PROTOCOL_VERSION}`, {
        hint: 'run the same guestnet version on both sides',
      });
    }
    if (req.op === 'stats') {
      writeLine(c.socket, { ok: true, v: VALE_PROTOCOL_VERSION, stats: this.switch.stats() satisfies SwitchStats, clients: this.clients() });
      c.socket.end();
      return;
    }
    if (req.op !== 'attach') throw new GuestnetError(ErrorCode.Protocol, `unknown op ${JSON.stringify(req.op)}`);

    const port = this.pickPort(req.port);
    c.port = port;
    this.reserved.add(port);
    if (typeof req.port === 'string') {
      c.name = req.port;
      this.names.set(req.port, port);
    }
    const geometry: RingGeometry = { slots: req.slots ?? this.geometry.slots, bufSize: req.bufSize ?? this.geometry.bufSize };
    const bytes = portRegionBytes(geometry);
    if (bytes > MAX_PORT_BYTES) {
      throw new GuestnetError(ErrorCode.Limit, `${geometry.slots} slots × ${geometry.bufSize} bytes need ${bytes} bytes, more than ${MAX_PORT_BYTES}`, {
        hint: 'ask for fewer slots or smaller buffers',
      });
    }
    const path = join(this.shmDir, `guestnet-vale-${this.switch.name}-${process.pid}-${port}-${this.seq++}`);
    c.path = path;
    const mem = createSharedFile(path, bytes);
    formatPortRegion(mem, geometry);
    const reply: AttachReply = { ok: true, v: VALE_PROTOCOL_VERSION, switch: this.switch.name, port, path, slots: geometry.slots, bufSize: geometry.bufSize, bytes };
    writeLine(c.socket, reply);

    const ack = (await reader.read(HANDSHAKE_TIMEOUT_MS, `switch ${this.switch.name} port ${port}`)) as { op?: string } | null;
    if (!ack || ack.op !== 'mapped') throw new GuestnetError(ErrorCode.Protocol, `port ${port}: expected {"op":"mapped"}`);
    unlinkSharedFile(path);
    c.path = null;
    if (this.closed || c.socket.destroyed) return;

    const kicks = new SocketKicks(c.socket, reader.rest);
    c.kicks = kicks;
    this.reserved.delete(port);
    c.handle = this.switch.attachRegion(port, openPortRegion(mem, 0, 'switch'), {
      toPort: kicks.bell('toPort'),
      fromPort: kicks.bell('toSwitch'),
    });
    c.info = {
      port,
      name: c.name,
      pid: typeof req.pid === 'number' ? req.pid : null,
      mac: typeof req.mac === 'string' ? req.mac : null,
      geometry,
    };
    c.socket.resume();
    this.log(`switch ${this.switch.name}: port ${port} attached (pid ${c.info.pid ?? '?'}${c.info.mac ? `, mac ${c.info.mac}` : ''}, ${geometry.slots} × ${geometry.bufSize} B)`);
  }

  private pickPort(want: number | string | null | undefined): number {
    if (typeof want === 'string' && this.names.has(want)) {
      throw new GuestnetError(ErrorCode.Exists, `port ${want} of switch ${this.switch.name} is already in use (as port ${this.names.get(want)})`, {
        hint: 'pick another port name',
      });
    }
    if (want === null || want === undefined || typeof want === 'string') {
      for (let i = 0; i < this.maxPorts; i++) if (!this.switch.has(i) && !this.reserved.has(i)) return i;
      throw new GuestnetError(ErrorCode.Limit, `switch ${this.switch.name} has no free port (it has ${this.maxPorts})`, { hint: 'detach a port first' });
    }
    if (!Number.isInteger(want) || want < 0 || want >= this.maxPorts) {
      throw new GuestnetError(ErrorCode.BadConfig, `port ${String(want)} is out of range 0..${this.maxPorts - 1} of switch ${this.switch.name}`);
    }
    if (this.switch.has(want) || this.reserved.has(want)) {
      throw new GuestnetError(ErrorCode.Exists, `port ${want} of switch ${this.switch.name} is already in use`, {
        hint: `pick another port, or ask for any free one (${this.switch.name}:any)`,
      });
    }
    return want;
  }

  private releasePort(c: Conn): void {
    if (c.path) {
      try {
        unlinkSharedFile(c.path);
      } catch {
        // best effort; a sweep at the next start removes it
      }
      c.path = null;
    }
    if (c.port >= 0 && !c.handle) this.reserved.delete(c.port);
  }

  private forgetName(c: Conn): void {
    if (c.name !== null && this.names.get(c.name) === c.port) this.names.delete(c.name);
    c.name = null;
  }

  private drop(c: Conn): void {
    if (!this.conns.delete(c)) return;
    this.releasePort(c);
    this.forgetName(c);
    if (c.handle) {
      c.handle.detach();
      this.log(`switch ${this.switch.name}: port ${c.port} detached`);
    }
    c.handle = null;
    // The switch rang and closed the port's bells on detach; give that kick a turn to go out.
    const kicks = c.kicks;
    c.kicks = null;
    const s = c.socket;
    setImmediate(() => {
      kicks?.close();
      s.destroy();
    });
  }
}

function prepareDir(path: string): void {
  const dir = join(path, '..');
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new PermissionError(`cannot create ${dir}: ${(e as Error).message}`, 'pick a --socket path in a directory you own', e);
  }
  const st = lstatSync(dir);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid && dir.startsWith(switchSocketDir())) {
    throw new PermissionError(`${dir} belongs to uid ${st.uid}, not to you (uid ${uid})`, 'set XDG_RUNTIME_DIR to a directory of your own, or pass --socket PATH');
  }
}

/** A socket file nobody listens on (a crashed switch) is removed; a live one is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  let exists = false;
  try {
    exists = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!exists) {
    throw new GuestnetError(ErrorCode.Exists, `${path} exists and is not a socket`, { hint: 'remove it or pick another --socket path' });
  }
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) {
    throw new GuestnetError(ErrorCode.AddrInUse, `a switch is already served on ${path}`, {
      hint: 'attach to it (backend=NAME:PORT), stop that process, or pick another name / --socket',
    });
  }
  try {
    unlinkSync(path);
  } catch {
    // raced with someone else's cleanup
  }
}
