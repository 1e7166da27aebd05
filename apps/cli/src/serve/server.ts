/**
 * The `guestnet serve` server: a backend made reachable from another process (QEMU, passt-style
 * clients, v86/jor1k relays) over one of three transports.
 *
 * ## Theory of operation
 * - **stream** (QEMU `-netdev stream` / `-netdev socket`, 4-byte length + frame) and **ws** (one
 *   binary WebSocket message per frame) accept any number of connections on a unix or TCP
 *   listener. Each connection is one guest NIC and gets, by default, **its own backend instance**
 *   created from the config (own NAT table, own DHCP server, own counters). With `--shared` every
 *   connection is a port of one learning switch whose uplink is a single backend (switch.ts), so
 *   guests share one NAT and see each other.
 * - **dgram** (QEMU `-netdev dgram`, one frame per UDP datagram) has no connections: one backend,
 *   one UDP socket, the peer given with `--remote` or, by default, a free port chosen here and
 *   printed in the QEMU fragment (datagrams from any other source are dropped and counted).
 *
 * A client that sends garbage (a zero or oversized length, a bad WebSocket frame) is dropped with
 * a logged reason; its backend is closed, the others carry on. A client that disconnects and
 * connects again is a new client with a fresh backend (a rebooted VM asks DHCP again; QEMU ≥ 8
 * reconnects by itself with `reconnect=`).
 *
 * ## Host forwards with several backends
 * Rules (from the config's `hostfwd=` and the control socket) belong to the server, not to a
 * backend: they are applied to **the hostfwd owner**, which is the shared backend (--shared,
 * dgram), or, with per-client backends, **the oldest connected client**. When the owner
 * disconnects, the rules move to the next oldest client (or wait for the next one to connect), so
 * a VM that reconnects gets its forwards back. A rule whose host port cannot be bound when it is
 * re-applied is listed with its error and retried at the next move. Host ports are therefore bound
 * only while a client is connected, in per-client mode.
 *
 * ## Capture
 * `--pcap FILE`: withPcap around each backend (pcapng, direction marked as on the guest NIC). One
 * backend (dgram, --shared) writes FILE; per-client backends write FILE for client 1 and FILE.N
 * for client N ≥ 2 (one pcapng section per backend keeps each file a plain single-interface
 * capture). In --shared mode the capture sits on the uplink, so guest-to-guest frames switched
 * between ports are not in it.
 *
 * ## Shutdown
 * `close()` stops the listener and the control socket, detaches every client (their sockets and
 * backends closed, pcap files flushed), closes the shared backend and removes the socket files.
 */
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { promises as fsp } from 'node:fs';
import {
  ErrorCode,
  GuestnetError,
  formatHostFwd,
  resolveConfig,
  withPcap,
  type BackendDescriptor,
  type BackendOptions,
  type HostFwdRule,
  type Importer,
  type NetBackend,
} from '@guestnet/core';
import { attachDgram, attachStream, attachWebSocket, type DgramAttachment } from '@guestnet/core/node';
import { SharedSwitch } from './switch.ts';
import {
  formatAddr,
  freeUdpPort,
  prepareUnixListen,
  qemuDgramFragment,
  qemuStreamFragment,
  type ListenAddr,
  type Protocol,
} from './listen.ts';

export interface ServeOptions {
  /** Backend config string. Default `backend=slirp`. */
  config?: string;
  protocol?: Protocol;
  listen: ListenAddr & { privateDir?: boolean };
  shared?: boolean;
  /** dgram: where QEMU listens. Default: a free port on the listen host. */
  remote?: { host: string; port: number } | null;
  pcap?: string | null;
  /** Connections beyond this are refused (logged). Default 64. */
  maxClients?: number;
  /** Largest frame accepted from a client. Default 65535 + 12 + 14. */
  maxFrameLen?: number;
  importer?: Importer;
  /** Log lines (no trailing newline). Default: stderr. */
  log?: (line: string) => void;
}

export interface HostFwdEntry {
  id: number;
  /** As requested (a host port 0 means "any"). */
  rule: HostFwdRule;
  /** As bound on the current owner; null while no owner or after a failure. */
  bound: HostFwdRule | null;
  error: string | null;
}

interface Transport {
  readonly counters: object;
  close(): Promise<unknown>;
}

interface Client {
  id: number;
  peer: string;
  since: number;
  /** The per-client backend (hostfwd-capable); null in --shared mode (a switch port). */
  own: NetBackend | null;
  transport: Transport;
}

const defaultLog = (l: string): void => void process.stderr.write(`${l}\n`);

export class GuestnetServer {
  readonly protocol: Protocol;
  readonly shared: boolean;
  /** The listener's address as bound (a tcp port 0 replaced; dgram: our UDP address). */
  address!: ListenAddr;
  /** dgram: where frames for the guest are sent (QEMU's local address). */
  remote: { host: string; port: number } | null = null;

  private readonly opts: ServeOptions;
  private readonly log: (l: string) => void;
  private descriptor!: BackendDescriptor;
  private baseOptions!: BackendOptions;
  private listener: net.Server | null = null;
  private udp: dgram.Socket | null = null;
  private dgramAtt: DgramAttachment | null = null;
  private sw: SharedSwitch | null = null;
  /** The backend hostfwd rules live on (shared uplink, dgram backend, or the oldest client's). */
  private owner: { backend: NetBackend; clientId: number | null } | null = null;
  private readonly clients = new Map<number, Client>();
  private readonly sockets = new Set<net.Socket>();
  private readonly rules: HostFwdEntry[] = [];
  private nextClient = 0;
  private nextRule = 0;
  private droppedClients = 0;
  private refusedClients = 0;
  private readonly startedAt = Date.now();
  /** Rule operations run one at a time (owner changes race with control requests otherwise). */
  private ruleQueue: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | null = null;
  private readonly unlinkOnClose: string[] = [];

  private constructor(opts: ServeOptions) {
    this.opts = opts;
    this.protocol = opts.protocol ?? 'stream';
    this.shared = this.protocol !== 'dgram' && opts.shared === true;
    this.log = opts.log ?? defaultLog;
  }

  /** Validate the config, bind the listener (and the shared backend), resolve when ready. */
  static async start(opts: ServeOptions): Promise<GuestnetServer> {
    const s = new GuestnetServer(opts);
    try {
      await s.setup();
    } catch (err) {
      await s.close().catch(() => {});
      throw err;
    }
    return s;
  }

  private async setup(): Promise<void> {
    const { descriptor, options } = await resolveConfig(this.opts.config ?? 'backend=slirp', { importer: this.opts.importer });
    this.descriptor = descriptor;
    const initial = Array.isArray(options.hostfwd) ? (options.hostfwd as HostFwdRule[]) : [];
    // Rules are the server's (see the header): backends are created without them.
    this.baseOptions = descriptor.options.some((o) => o.name === 'hostfwd') ? { ...options, hostfwd: [] } : options;
    for (const rule of initial) this.rules.push({ id: ++this.nextRule, rule, bound: null, error: null });

    if (this.protocol === 'dgram') {
      await this.setupDgram();
    } else {
      if (this.shared) {
        this.sw = new SharedSwitch(this.makeBackend(this.opts.pcap ?? null));
        await this.sw.start();
        await this.setOwner({ backend: this.sw.uplink, clientId: null }, true);
      }
      await this.setupListener();
    }
  }

  private makeBackend(pcapPath: string | null): NetBackend {
    const b = this.descriptor.create(this.baseOptions);
    return pcapPath ? withPcap(b, { path: pcapPath }) : b;
  }

  private async setupDgram(): Promise<void> {
    const l = this.opts.listen;
    if (l.kind !== 'inet') throw new GuestnetError(ErrorCode.BadConfig, 'dgram needs a udp:HOST:PORT listen address');
    const sock = dgram.createSocket(l.host.includes(':') ? 'udp6' : 'udp4');
    this.udp = sock;
    await new Promise<void>((resolve, reject) => {
      sock.once('error', (e) => reject(bindError(e, formatAddr(l, 'udp'))));
      sock.bind(l.port, l.host, () => resolve());
    });
    this.address = { kind: 'inet', host: l.host, port: sock.address().port };
    this.remote = this.opts.remote ?? { host: l.host, port: await freeUdpPort(l.host) };
    const backend = this.makeBackend(this.opts.pcap ?? null);
    this.dgramAtt = await attachDgram(sock, { address: this.remote.host, port: this.remote.port }, backend, { maxFrameLen: this.opts.maxFrameLen });
    void this.dgramAtt.done.then((end) => {
      if (end.reason === 'error' && !this.closing) this.log(`guestnet: dgram socket failed: ${end.error?.message ?? 'error'}`);
    });
    await this.setOwner({ backend, clientId: null }, true);
  }

  private async setupListener(): Promise<void> {
    const l = this.opts.listen;
    if (l.kind === 'unix') await prepareUnixListen(l.path, l.privateDir === true);
    const server = net.createServer((socket) => this.onConnection(socket));
    this.listener = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(bindError(e, formatAddr(l))));
      if (l.kind === 'unix') server.listen(l.path, () => resolve());
      else server.listen(l.port, l.host, () => resolve());
    });
    server.on('error', (e) => this.log(`guestnet: listener error: ${e.message}`));
    if (l.kind === 'unix') {
      this.unlinkOnClose.push(l.path);
      this.address = { kind: 'unix', path: l.path };
    } else {
      const a = server.address() as net.AddressInfo;
      this.address = { kind: 'inet', host: l.host, port: a.port };
    }
  }

  /** Socket files to remove on close (the control socket registers its own). */
  registerSocketFile(path: string): void {
    this.unlinkOnClose.push(path);
  }

  /** The line printed at start: "ready", where, and the matching QEMU (or relay) fragment. */
  readyLine(): string {
    const a = this.address;
    if (this.protocol === 'dgram') {
      const us = a as { host: string; port: number };
      return `guestnet: ready on ${formatAddr(a, 'udp')} (dgram) — qemu: ${qemuDgramFragment(us, this.remote!)}`;
    }
    if (this.protocol === 'ws') {
      if (a.kind === 'unix') return `guestnet: ready on ${formatAddr(a)} (ws) — relay clients connect with a WebSocket over this unix socket`;
      const url = `ws://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}/`;
      return `guestnet: ready on ${url} (ws${this.shared ? ', shared' : ''}) — v86: network_relay_url: "${url}"`;
    }
    return `guestnet: ready on ${formatAddr(a)} (stream${this.shared ? ', shared' : ''}) — qemu: ${qemuStreamFragment(a)}`;
  }

  // ---- clients ---------------------------------------------------------------------------------

  private onConnection(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const max = this.opts.maxClients ?? 64;
    const peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix';
    if (this.clients.size >= max) {
      this.refusedClients++;
      this.log(`guestnet: refused a connection from ${peer}: ${max} clients already (--max-clients)`);
      socket.destroy();
      return;
    }
    const id = ++this.nextClient;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    void this.attachClient(id, socket, peer);
  }

  private pcapFor(id: number): string | null {
    const p = this.opts.pcap;
    if (!p) return null;
    return id === 1 ? p : `${p}.${id}`;
  }

  private async attachClient(id: number, socket: net.Socket, peer: string): Promise<void> {
    const own = this.sw ? null : this.makeBackend(this.pcapFor(id));
    const backend = own ?? this.sw!.port(`client${id}`);
    let transport: Transport & { done: Promise<{ reason: string; error?: Error }> };
    try {
      transport =
        this.protocol === 'ws'
          ? await attachWebSocket(socket, backend, { maxFrameLen: this.opts.maxFrameLen })
          : await attachStream(socket, backend, { maxFrameLen: this.opts.maxFrameLen });
    } catch (err) {
      this.droppedClients++;
      this.log(`guestnet: client ${id} (${peer}) dropped: ${(err as Error).message}`);
      socket.destroy();
      await backend.close().catch(() => {});
      return;
    }
    const client: Client = { id, peer, since: Date.now(), own, transport };
    if (this.closing) {
      await transport.close();
      return;
    }
    this.clients.set(id, client);
    this.log(`guestnet: client ${id} connected (${peer})`);
    void transport.done.then((end) => this.onClientEnd(client, end));
    if (own && !this.owner) await this.setOwner({ backend: own, clientId: id }, false);
  }

  private async onClientEnd(client: Client, end: { reason: string; error?: Error; code?: number }): Promise<void> {
    this.clients.delete(client.id);
    if (end.reason === 'protocol' || end.reason === 'error') {
      this.droppedClients++;
      this.log(`guestnet: client ${client.id} dropped: ${end.error?.message ?? end.reason}`);
    } else if (!this.closing) {
      this.log(`guestnet: client ${client.id} disconnected (${end.reason}${end.code ? ` ${end.code}` : ''})`);
    }
    if (this.owner && this.owner.clientId === client.id) {
      this.owner = null;
      for (const r of this.rules) r.bound = null;
      if (this.closing) return;
      // The oldest remaining client inherits the rules.
      const next = [...this.clients.values()].sort((a, b) => a.id - b.id).find((c) => c.own);
      if (next) await this.setOwner({ backend: next.own!, clientId: next.id }, false);
    }
  }

  // ---- host forwards ------------------------------------------------------------------------------

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.ruleQueue.then(fn, fn);
    this.ruleQueue = p.catch(() => {});
    return p;
  }

  /** Make `owner` the hostfwd owner and apply every rule to it. `strict`: the first failure throws. */
  private setOwner(owner: { backend: NetBackend; clientId: number | null }, strict: boolean): Promise<void> {
    return this.serial(async () => {
      this.owner = owner;
      for (const r of this.rules) {
        try {
          r.bound = await owner.backend.hostfwd.add(r.rule);
          r.error = null;
        } catch (err) {
          r.bound = null;
          r.error = (err as Error).message;
          if (strict) throw err;
          this.log(`guestnet: hostfwd ${r.id} (${formatHostFwd(r.rule)}) not applied to client ${owner.clientId}: ${r.error}`);
        }
      }
    });
  }

  /** Add a rule at run time. Rejects (nothing recorded) when the owner cannot bind it. */
  hostfwdAdd(rule: HostFwdRule): Promise<HostFwdEntry> {
    return this.serial(async () => {
      if (this.rules.some((r) => sameHostSide(r.rule, rule) && (rule.host.kind === 'unix' || rule.host.port !== 0))) {
        throw new GuestnetError(ErrorCode.Exists, `a hostfwd for ${formatHostFwd(rule)}'s host side already exists`, { hint: 'list them with `guestnet hostfwd list`' });
      }
      const entry: HostFwdEntry = { id: ++this.nextRule, rule, bound: null, error: null };
      if (this.owner) entry.bound = await this.owner.backend.hostfwd.add(rule);
      this.rules.push(entry);
      return entry;
    });
  }

  /** Remove a rule by id; false if there is none. */
  hostfwdRemove(id: number): Promise<boolean> {
    return this.serial(async () => {
      const i = this.rules.findIndex((r) => r.id === id);
      if (i < 0) return false;
      const [entry] = this.rules.splice(i, 1);
      if (this.owner && entry!.bound) await this.owner.backend.hostfwd.remove(entry!.bound);
      return true;
    });
  }

  hostfwdList(): HostFwdEntry[] {
    return this.rules.map((r) => ({ ...r }));
  }

  // ---- stats ----------------------------------------------------------------------------------------

  stats(): Record<string, unknown> {
    const clients = [...this.clients.values()].map((c) => ({
      id: c.id,
      peer: c.peer,
      since: new Date(c.since).toISOString(),
      hostfwd_owner: this.owner?.clientId === c.id,
      transport: { ...c.transport.counters },
      ...(c.own ? { backend: c.own.stats() } : {}),
    }));
    const out: Record<string, unknown> = {
      protocol: this.protocol,
      listen: this.protocol === 'dgram' ? formatAddr(this.address, 'udp') : formatAddr(this.address),
      backend_type: this.descriptor?.name,
      shared: this.shared,
      uptime_s: Math.round((Date.now() - this.startedAt) / 1000),
      clients_connected: clients.length,
      clients_total: this.nextClient,
      clients_dropped: this.droppedClients,
      clients_refused: this.refusedClients,
      hostfwd_owner: this.owner ? (this.owner.clientId === null ? 'shared' : `client ${this.owner.clientId}`) : null,
      clients,
    };
    if (this.sw) out.backend = this.sw.uplink.stats();
    if (this.sw) out.switch = { ports: this.sw.portCount, floods: this.sw.floods };
    if (this.dgramAtt) {
      out.backend = this.owner?.backend.stats();
      out.dgram = { peer: this.dgramAtt.peer, ...this.dgramAtt.counters };
    }
    return out;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  // ---- shutdown -------------------------------------------------------------------------------------

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    const listenerClosed = this.listener
      ? new Promise<void>((r) => this.listener!.close(() => r()))
      : Promise.resolve();
    await Promise.all([...this.clients.values()].map((c) => c.transport.close().catch(() => {})));
    // Connections still in their handshake (ws) or init.
    for (const s of this.sockets) s.destroy();
    await listenerClosed;
    if (this.sw) await this.sw.close().catch(() => {});
    if (this.dgramAtt) await this.dgramAtt.close().catch(() => {});
    else if (this.udp) this.udp.close();
    for (const p of this.unlinkOnClose) await fsp.unlink(p).catch(() => {});
  }
}

function sameHostSide(a: HostFwdRule, b: HostFwdRule): boolean {
  if (a.proto !== b.proto || a.host.kind !== b.host.kind) return false;
  if (a.host.kind === 'unix') return a.host.path === (b.host as { path: string }).path;
  const bh = b.host as { addr: string; port: number };
  return a.host.addr === bh.addr && a.host.port === bh.port;
}

function bindError(e: Error & { code?: string }, where: string): GuestnetError {
  if (e.code === 'EADDRINUSE') return new GuestnetError(ErrorCode.AddrInUse, `${where} is already in use`, { hint: 'choose another --listen address', cause: e });
  if (e.code === 'EACCES' || e.code === 'EPERM') return new GuestnetError(ErrorCode.EPERM, `cannot listen on ${where}: ${e.message}`, { cause: e });
  return new GuestnetError(ErrorCode.Io, `cannot listen on ${where}: ${e.message}`, { cause: e });
}
