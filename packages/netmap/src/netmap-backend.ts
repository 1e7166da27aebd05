/**
 * The backend `createBackend('vale0:1')` returns: it decides at init() where the port lives.
 *
 * `create()` must be synchronous but finding a served switch is not, so this backend resolves
 * its target in `init()`: a pipe end goes to the in-process pipe registry; a VALE port tries a
 * switch served by another process (SHM's remote.ts, `tryAttachRemote`) unless `attach=local`,
 * and otherwise joins the in-process switch (local.ts), created on demand. Afterwards every call
 * is forwarded to the chosen NetBackend. Capability requests made before init are remembered and
 * replayed on it.
 */
import {
  ErrorCode,
  GuestnetError,
  NO_OFFLOADS,
  Verdict,
  type BackendEvents,
  type BackendOptions,
  type BackendStats,
  type Capabilities,
  type CapabilityRequest,
  type HostFwdApi,
  type NetBackend,
  type RxHandler,
} from '@guestnet/core';
import { MAX_FRAME_LEN, type RingGeometry } from './ring.ts';
import { badPipeName, parsePipeName } from './pipe.ts';
import { joinLocalSwitch, openLocalPipeEnd, parseValePortName } from './local.ts';

/** SHM's remote attach (src/remote.ts), loaded lazily so a thread-only install never needs it. */
type TryAttachRemote = (name: string, port: number | string, opts: BackendOptions) => Promise<NetBackend | null>;

async function loadRemote(): Promise<TryAttachRemote | null> {
  // A literal specifier, so bundlers follow it (and tsc rewrites the extension when it emits).
  try {
    const mod = (await import('./remote.ts')) as { tryAttachRemote?: TryAttachRemote };
    return typeof mod.tryAttachRemote === 'function' ? mod.tryAttachRemote : null;
  } catch (err) {
    const code = (err as { code?: string })?.code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return null;
    throw err;
  }
}

const NO_HOSTFWD: HostFwdApi = {
  add: () => Promise.reject(new GuestnetError(ErrorCode.Unsupported, 'the netmap backend does not forward host ports', { hint: 'attach a slirp uplink to the switch, or use backend=slirp' })),
  remove: () => Promise.reject(new GuestnetError(ErrorCode.Unsupported, 'the netmap backend does not forward host ports')),
  list: () => [],
};

export class NetmapBackend implements NetBackend {
  readonly type = 'netmap';
  readonly options: BackendOptions;
  private inner: NetBackend | null = null;
  private closed = false;
  private readonly early: CapabilityRequest[] = [];
  private caps: Capabilities;
  private earlyDrops = 0;

  constructor(options: BackendOptions) {
    this.options = options;
    const port = options.port;
    if (typeof port !== 'string' || port === '') {
      throw new GuestnetError(ErrorCode.BadConfig, 'netmap: no port given', { hint: 'e.g. vale0:1, netmap:vale0:1 or pipe0{1' });
    }
    // Validate the name now, so config errors surface at createBackend time.
    if (!parsePipeName(port) && !parseValePortName(port)) {
      if (port.includes('{') || port.includes('}')) throw badPipeName(port);
      throw new GuestnetError(ErrorCode.BadConfig, `netmap: '${port}' is not a VALE port or pipe name`, {
        hint: 'VALE ports are valeNAME:PORT (vale0:1); pipes NAME{ID / NAME}ID. Host interfaces (netmap:eth0) are not supported',
      });
    }
    const mtu = (options.mtu as number | undefined) ?? 1500;
    this.caps = {
      mtu,
      maxFrameLen: mtu + 18,
      vnetHdrLen: 0,
      offloads: { ...NO_OFFLOADS },
      supportedVnetHdrLens: [0, 10, 12],
      supportedOffloads: { csum: true, tso4: true, tso6: true, ecn: true, ufo: true },
      hostfwd: false,
    };
  }

  private geometry(): RingGeometry {
    return { slots: (this.options.slots as number | undefined) ?? 1024, bufSize: (this.options.bufsize as number | undefined) ?? 2048 };
  }

  async init(rx: RxHandler | null, events: BackendEvents = {}): Promise<void> {
    if (this.inner || this.closed) throw new GuestnetError(ErrorCode.BadBackend, 'netmap: init() called twice or after close()');
    const port = this.options.port as string;
    const mtu = (this.options.mtu as number | undefined) ?? 1500;
    const geometry = this.geometry();
    let inner: NetBackend;
    const pipe = parsePipeName(port);
    if (pipe) {
      inner = openLocalPipeEnd(pipe, { mtu, geometry });
    } else {
      const vp = parseValePortName(port)!;
      const mode = (this.options.attach as string | undefined) ?? 'auto';
      let remote: NetBackend | null = null;
      if (mode !== 'local') {
        const tryAttachRemote = await loadRemote();
        if (!tryAttachRemote) {
          if (mode === 'remote' || this.options.switch !== undefined) {
            throw new GuestnetError(ErrorCode.Unsupported, `netmap: attaching to a switch served by another process is not available in this build (src/remote.ts is missing)`, {
              hint: 'use attach=local for an in-process switch',
            });
          }
        } else {
          remote = await tryAttachRemote(vp.switchName, vp.port, this.options);
          if (!remote && (mode === 'remote' || this.options.switch !== undefined)) {
            throw new GuestnetError(ErrorCode.NotFound, `netmap: no switch ${vp.switchName} is being served`, {
              hint: `start one with: guestnet switch ${vp.switchName}   (or use attach=local)`,
            });
          }
        }
      }
      inner = remote ?? joinLocalSwitch(vp.switchName).openPort(vp.port, { mtu, geometry });
    }
    if (this.closed) {
      await inner.close();
      throw new GuestnetError(ErrorCode.Closed, 'netmap: closed during init');
    }
    this.inner = inner;
    for (const req of this.early) inner.setCapabilities(req);
    await inner.init(rx, events);
  }

  send(frame: Uint8Array): Verdict {
    if (!this.inner) {
      this.earlyDrops++;
      return Verdict.Dropped;
    }
    return this.inner.send(frame);
  }
  sendBatch(frames: readonly Uint8Array[]): number {
    if (!this.inner) {
      this.earlyDrops += frames.length;
      return frames.length;
    }
    return this.inner.sendBatch(frames);
  }
  peekRecvLen(): number {
    return this.inner ? this.inner.peekRecvLen() : 0;
  }
  recv(buf: Uint8Array): number {
    return this.inner ? this.inner.recv(buf) : 0;
  }
  pauseRecv(): void {
    this.inner?.pauseRecv();
  }
  resumeRecv(): void {
    this.inner?.resumeRecv();
  }
  get hostfwd(): HostFwdApi {
    return this.inner ? this.inner.hostfwd : NO_HOSTFWD;
  }
  capabilities(): Capabilities {
    return this.inner ? this.inner.capabilities() : { ...this.caps, offloads: { ...this.caps.offloads } };
  }
  setCapabilities(req: CapabilityRequest): Capabilities {
    if (this.inner) return this.inner.setCapabilities(req);
    if (req.vnetHdrLen !== undefined && !this.caps.supportedVnetHdrLens.includes(req.vnetHdrLen)) {
      throw new GuestnetError(ErrorCode.Unsupported, `netmap: virtio-net header length ${req.vnetHdrLen} is not supported`, { hint: 'supported: 0, 10, 12' });
    }
    if (req.mtu !== undefined && (!Number.isInteger(req.mtu) || req.mtu < 68 || req.mtu > 65535)) {
      throw new GuestnetError(ErrorCode.BadConfig, `mtu ${req.mtu} is out of range 68..65535`);
    }
    this.early.push(req);
    const c = this.caps;
    if (req.vnetHdrLen !== undefined) c.vnetHdrLen = req.vnetHdrLen;
    if (req.mtu !== undefined) c.mtu = req.mtu;
    if (req.offloads) for (const [k, v] of Object.entries(req.offloads)) if (v !== undefined) c.offloads[k as keyof typeof c.offloads] = v && c.vnetHdrLen > 0;
    if (c.vnetHdrLen === 0) c.offloads = { ...NO_OFFLOADS };
    const gso = c.offloads.tso4 || c.offloads.tso6 || c.offloads.ufo;
    c.maxFrameLen = gso ? Math.min(MAX_FRAME_LEN, 65535 + 14 + 12) : c.mtu + 18 + c.vnetHdrLen;
    return this.capabilities();
  }
  stats(): BackendStats {
    if (this.inner) return this.inner.stats();
    return { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, drops: this.earlyDrops ? { 'not-running': this.earlyDrops } : {}, flows: {} };
  }
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.inner?.close();
  }
}
