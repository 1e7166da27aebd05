/**
 * The in-process registry of named VALE switches and pipes, and the explicit API for worker
 * threads.
 *
 * `vale0:1` in this process joins port 1 of the switch "vale0", created on demand and dropped
 * when its last port leaves (unless it was created explicitly with {@link createLocalSwitch}).
 * The switch runs on the event loop of the thread that created it.
 *
 * A config string cannot reach another thread's switch (each worker has its own module
 * registry), so threads use the explicit API: the switch's thread calls
 * `createLocalSwitch('vale0').createPortRegion(1)` and posts the returned handle (it holds a
 * SharedArrayBuffer, so postMessage shares rather than copies it); the worker calls
 * {@link openPortBackend}(handle) and gets an ordinary NetBackend. Pipes work the same way with
 * createPipeRegion / openPipeBackend (pipe.ts).
 *
 * Port names: `vale<NAME>:<PORT>` where the switch name starts with "vale" (as in netmap and
 * bhyve) and PORT is a number 0..253 or, as netmap allows, a name (letters, digits, `_`, not all
 * digits): a named port takes the lowest free number for as long as it is attached.
 */
import { ErrorCode, GuestnetError } from '@guestnet/core';
import { DEFAULT_GEOMETRY, formatPortRegion, openPortRegion, portRegionBytes, type RegionSide, type RingGeometry } from './ring.ts';
import { portDoorbells, switchDoorbells } from './doorbell.ts';
import { ValeSwitch, MAX_PORTS, type ValeSwitchOptions, type PortHandle } from './switch.ts';
import { NetmapPortBackend, type NetmapPortOptions } from './port-backend.ts';
import { createPipeRegion, openPipeBackend, type PipeEnd, type PipeName, type PipeRegion } from './pipe.ts';
import type { NetBackend } from '@guestnet/core';

/** A port's shared region, transferable to another thread with postMessage. */
export interface PortRegionHandle {
  readonly kind: 'vale' | 'pipe';
  readonly mem: SharedArrayBuffer;
  readonly byteOffset: number;
  /** The side the receiver opens ('port' for a switch port or pipe master, 'peer' for a pipe slave). */
  readonly side: RegionSide;
  /** Switch or pipe name. */
  readonly name: string;
  /** The port number (switch) or pipe id. */
  readonly port: number | string;
}

const VALE_RE = /^(vale[A-Za-z0-9_.-]{0,59}):([A-Za-z0-9_]{1,32})$/;

export interface ValePortName {
  switchName: string;
  /** A number 0..253, or a port name. */
  port: number | string;
}

/** Parse `valeNAME:PORT`; null when the string is not a VALE port name. Range errors throw. */
export function parseValePortName(s: string): ValePortName | null {
  const m = VALE_RE.exec(s);
  if (!m) return null;
  const p = m[2]!;
  if (/^\d+$/.test(p)) {
    const n = Number(p);
    if (n >= MAX_PORTS) {
      throw new GuestnetError(ErrorCode.BadConfig, `switch port ${p} is out of range 0..${MAX_PORTS - 1}`, { hint: `e.g. ${m[1]}:1` });
    }
    return { switchName: m[1]!, port: n };
  }
  return { switchName: m[1]!, port: p };
}

export class LocalSwitch {
  readonly name: string;
  readonly switch: ValeSwitch;
  /** Kept when its last port leaves (created with createLocalSwitch). */
  persistent = false;
  private readonly named = new Map<string, number>();
  private readonly handles = new Map<number, PortHandle>();
  private closed = false;

  constructor(name: string, opts: ValeSwitchOptions = {}) {
    this.name = name;
    const userHook = opts.onDetach;
    this.switch = new ValeSwitch(name, {
      ...opts,
      onDetach: (port, last) => {
        for (const [k, v] of this.named) if (v === port) this.named.delete(k);
        this.handles.delete(port);
        userHook?.(port, last);
        if (!this.persistent && this.switch.portCount === 0) this.close();
      },
    });
  }

  /** The port number for a number or a name (a new name takes the lowest free port). */
  resolvePort(port: number | string): number {
    if (typeof port === 'number') return port;
    const known = this.named.get(port);
    if (known !== undefined) {
      throw new GuestnetError(ErrorCode.Exists, `port '${port}' of switch ${this.name} is already in use`);
    }
    const free = this.switch.freePort();
    if (free < 0) throw new GuestnetError(ErrorCode.Limit, `switch ${this.name} has no free port (all ${MAX_PORTS} in use)`);
    return free;
  }

  /**
   * Create a port: allocate and format its region, attach it to the switch, and return the
   * handle to open it with {@link openPortBackend} (in this thread or, after postMessage, in a
   * worker).
   */
  createPortRegion(port: number | string, geometry: RingGeometry = DEFAULT_GEOMETRY): PortRegionHandle {
    this.checkOpen();
    const n = this.resolvePort(port);
    const mem = new SharedArrayBuffer(portRegionBytes(geometry));
    formatPortRegion(mem, geometry);
    const sw = openPortRegion(mem, 0, 'switch');
    this.handles.set(n, this.switch.attachRegion(n, sw, switchDoorbells(sw)));
    if (typeof port === 'string') this.named.set(port, n);
    return { kind: 'vale', mem, byteOffset: 0, side: 'port', name: this.name, port: n };
  }

  /** A port backend in this thread (createPortRegion + openPortBackend). */
  openPort(port: number | string, opts: NetmapPortOptions & { geometry?: RingGeometry } = {}): NetmapPortBackend {
    const h = this.createPortRegion(port, opts.geometry);
    const ph = this.handles.get(h.port as number);
    return openPortBackend(h, {
      ...opts,
      onClose: () => {
        ph?.detach();
        opts.onClose?.();
      },
    });
  }

  /** Make a port an uplink to another backend (see ValeSwitch.attachBackend). */
  async attachBackend(port: number | string, backend: NetBackend, opts: { closeOnDetach?: boolean } = {}): Promise<PortHandle> {
    this.checkOpen();
    const n = this.resolvePort(port);
    const h = await this.switch.attachBackend(n, backend, opts);
    if (typeof port === 'string') this.named.set(port, n);
    return h;
  }

  /** Detach every port, stop the switch and forget its name. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (switches.get(this.name) === this) switches.delete(this.name);
    this.switch.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private checkOpen(): void {
    if (this.closed) throw new GuestnetError(ErrorCode.Closed, `switch ${this.name} is closed`, { hint: 'create it again with createLocalSwitch()' });
  }
}

const switches = new Map<string, LocalSwitch>();

/**
 * The switch `name` of this thread, created if needed. A switch created here is persistent: it
 * stays when its ports leave, until its close().
 */
export function createLocalSwitch(name: string, opts: ValeSwitchOptions = {}): LocalSwitch {
  checkSwitchName(name);
  let s = switches.get(name);
  if (!s) {
    s = new LocalSwitch(name, opts);
    switches.set(name, s);
  }
  s.persistent = true;
  return s;
}

/** The switch `name` of this thread, if any. */
export function getLocalSwitch(name: string): LocalSwitch | undefined {
  return switches.get(name);
}

/** Names of this thread's switches. */
export function localSwitchNames(): string[] {
  return [...switches.keys()];
}

/** The on-demand switch for `backend=valeX:N` (dropped with its last port). */
export function joinLocalSwitch(name: string): LocalSwitch {
  checkSwitchName(name);
  let s = switches.get(name);
  if (!s) {
    s = new LocalSwitch(name);
    switches.set(name, s);
  }
  return s;
}

function checkSwitchName(name: string): void {
  if (!/^vale[A-Za-z0-9_.-]{0,59}$/.test(name)) {
    throw new GuestnetError(ErrorCode.BadConfig, `'${name}' is not a VALE switch name`, { hint: 'VALE switch names start with "vale" (vale0, vale-lab)' });
  }
}

/** Open the guest side of a port or pipe region handed over by {@link LocalSwitch.createPortRegion}. */
export function openPortBackend(handle: Pick<PortRegionHandle, 'mem' | 'byteOffset' | 'side'>, opts: NetmapPortOptions = {}): NetmapPortBackend {
  const region = openPortRegion(handle.mem, handle.byteOffset, handle.side === 'peer' ? 'peer' : 'port');
  return new NetmapPortBackend(region, portDoorbells(region), opts);
}

// ---- pipes ----------------------------------------------------------------------------------

interface LocalPipe {
  region: PipeRegion;
  open: Set<PipeEnd>;
}
const pipes = new Map<string, LocalPipe>();

/**
 * One end of the named pipe of this thread, created on first use; the region is dropped when
 * both ends have closed. Throws GUESTNET_EXISTS if that end is already open.
 */
export function openLocalPipeEnd(p: PipeName, opts: NetmapPortOptions & { geometry?: RingGeometry } = {}): NetmapPortBackend {
  const key = `${p.name}\u0000${p.id}`;
  let lp = pipes.get(key);
  if (!lp) {
    lp = { region: createPipeRegion(opts.geometry ?? DEFAULT_GEOMETRY), open: new Set() };
    pipes.set(key, lp);
  }
  if (lp.open.has(p.end)) {
    throw new GuestnetError(ErrorCode.Exists, `the ${p.end} end of pipe ${p.name}${p.end === 'master' ? '{' : '}'}${p.id} is already open`);
  }
  const pipe = lp;
  pipe.open.add(p.end);
  return openPipeBackend(pipe.region, p.end, {
    ...opts,
    onClose: () => {
      pipe.open.delete(p.end);
      if (pipe.open.size === 0 && pipes.get(key) === pipe) pipes.delete(key);
      opts.onClose?.();
    },
  });
}
