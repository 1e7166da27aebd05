/**
 * TapBackend: a guest NIC bridged onto a Linux TAP device, like QEMU `-netdev tap` and bhyve `tapN`.
 *
 * ## Theory of operation
 * init() opens the device through the addon (one fd per queue; IFF_TAP|IFF_NO_PI, IFF_VNET_HDR
 * with vnet_hdr=on, IFF_MULTI_QUEUE with queues>1; inside `netns` when given), applies mac/mtu,
 * runs `script`, brings the link up, and hands each fd to a native TapPoller (uv_poll, no libuv
 * threadpool). The poller drains the fd until EAGAIN into one preallocated buffer of slots and
 * calls back once per batch; each frame is handed to the guest as a view of its slot, valid only
 * during `rx` (the contract's push rule). The poll handle is unref'd: an idle tap does not keep
 * the process alive.
 *
 * tx: `send` writes the frame straight to the fd (one syscall; `sendBatch` writes a batch in one
 * native call). A tap practically never says EAGAIN, but when it does the frame is copied into a
 * bounded queue (TX_QUEUE_FRAMES), the verdict is Queued, the poller waits for POLLOUT, and
 * `drain` fires once the queue is written. With several queues, frames go to the queue their flow
 * hashes to, so one TCP connection is never reordered.
 *
 * Virtio-net header. With vnet_hdr=on the device always carries a header. The guest negotiates
 * 10 or 12 (TUNSETVNETHDRSZ) and offloads (TUNSETOFFLOAD: csum, tso4, tso6, ecn), which tell the
 * kernel what it may hand us: NEEDS_CSUM frames and GSO super-frames. Frames the guest sends may
 * always carry GSO/partial checksums; the kernel accepts them. If the guest negotiates no header
 * the backend strips the device's 10 bytes on rx (offloads are then off, so they are all zero)
 * and prepends 10 zero bytes on tx with writev: no copy. The kernel does not write num_buffers
 * (bytes 10–11 of a 12-byte header), so the backend sets it to 1 on rx.
 *
 * Not supported: TUN (layer 3) devices, a TAP fd without IFF_NO_PI, QEMU's `fds=`/`vhost=`,
 * UFO/USO offloads, changing the queue count after init, non-Linux hosts.
 */
import { execFile } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import {
  type BackendOptions,
  type BackendStats,
  type Capabilities,
  type VnetHdrLen,
  BaseBackend,
  ErrorCode,
  GuestnetError,
  Verdict,
} from '@guestnet/core';
import { type NativePoller, type NativeTap, loadAddon } from './addon.ts';
import { mapTapError } from './errors.ts';
import { flowHash } from './flow-hash.ts';

/** Bytes per rx slot: a 64 KiB GSO super-frame + Ethernet + VLAN + a 12-byte vnet header. */
export const RX_SLOT_SIZE = 65568;
/** Frames per rx batch (slots in each queue's buffer). */
export const RX_BATCH = 64;
/** Frames held for the device after an EAGAIN before sends are dropped ("backpressure"). */
export const TX_QUEUE_FRAMES = 256;
/** Length of the header a device opened with IFF_VNET_HDR uses until TUNSETVNETHDRSZ. */
const DEVICE_DEFAULT_VNET_HDR = 10;
const EAGAIN = osConstants.errno.EAGAIN;

/** The tap options, validated (names as in the config string). */
export interface TapConfig {
  ifname?: string;
  fd?: number;
  vnet_hdr?: boolean;
  queues?: number;
  mac?: string;
  mtu?: number;
  script?: string;
  downscript?: string;
  netns?: string;
  up?: boolean;
}

/** Programmatic knobs that are not config-string options (tests, embedders). */
export interface TapInternals {
  /** Use this addon object instead of loading one (tests). */
  addon?: NativeTap;
  /** Load the addon from this path instead of build/Release. */
  addonPath?: string;
  /** The clone device (default /dev/net/tun). */
  tunPath?: string;
  /** Frames per rx batch (default RX_BATCH). */
  batch?: number;
}

/** `/run/netns/NAME` for a bare name, `/proc/PID/ns/net` for a PID, a path as it is. */
export function resolveNetnsPath(arg: string | number): string {
  const s = String(arg).trim();
  if (/^[0-9]+$/.test(s)) return `/proc/${s}/ns/net`;
  if (!s.includes('/')) return `/run/netns/${s}`;
  return s;
}

/** "52:54:00:12:34:56" → 6 bytes. */
export function parseMac(mac: string): Uint8Array {
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new GuestnetError(ErrorCode.BadConfig, `invalid MAC address '${mac}'`, { hint: 'write it as 52:54:00:12:34:56' });
  }
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}

function scriptName(s: string | undefined): string | undefined {
  return s === undefined || s === '' || s === 'no' ? undefined : s;
}

/** Run a QEMU-style ifup/ifdown script with the interface name as its only argument. */
export function runScript(script: string, ifname: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(script, [ifname], { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const e = err as NodeJS.ErrnoException & { code?: string | number };
      reject(
        new GuestnetError(ErrorCode.Io, `${what} '${script} ${ifname}' failed: ${e.message.trim()}${stderr ? `: ${String(stderr).trim()}` : ''}`, {
          hint: typeof e.code === 'string' && e.code === 'ENOENT' ? 'the script does not exist or is not executable' : 'check the script by running it by hand',
          cause: err,
        }),
      );
    });
  });
}

function normalize(options: BackendOptions | TapConfig): TapConfig {
  const o = options as Record<string, unknown>;
  const cfg: TapConfig = {};
  if (typeof o.ifname === 'string' && o.ifname !== '') cfg.ifname = o.ifname;
  if (typeof o.fd === 'number') cfg.fd = o.fd;
  cfg.vnet_hdr = o.vnet_hdr === true;
  cfg.queues = typeof o.queues === 'number' ? o.queues : 1;
  if (typeof o.mac === 'string') cfg.mac = o.mac;
  if (typeof o.mtu === 'number') cfg.mtu = o.mtu;
  const up = scriptName(o.script as string | undefined);
  if (up) cfg.script = up;
  const down = scriptName(o.downscript as string | undefined);
  if (down) cfg.downscript = down;
  if (typeof o.netns === 'string' || typeof o.netns === 'number') cfg.netns = resolveNetnsPath(o.netns);
  if (typeof o.up === 'boolean') cfg.up = o.up;
  if (cfg.ifname !== undefined && cfg.ifname.length > 15) {
    throw new GuestnetError(ErrorCode.BadConfig, `ifname '${cfg.ifname}' is longer than 15 characters`, { hint: 'Linux interface names have at most 15 characters' });
  }
  if (cfg.fd !== undefined && cfg.queues! > 1) {
    throw new GuestnetError(ErrorCode.BadConfig, 'fd= gives one queue; queues>1 needs guestnet to open the device', { hint: 'drop fd= and give ifname= with queues=N' });
  }
  return cfg;
}

export class TapBackend extends BaseBackend {
  readonly type = 'tap';
  private readonly cfg: TapConfig;
  private readonly addon: NativeTap;
  private readonly tunPath: string | undefined;
  private readonly batch: number;
  /** Whether the device carries a vnet header (IFF_VNET_HDR). */
  private readonly devVnet: boolean;
  private name: string | undefined;
  /** fds opened but not yet owned by a poller (closed by onClose if setup fails). */
  private fds: number[] = [];
  private pollers: NativePoller[] = [];
  private rxViews: Uint8Array[] = [];
  /** Bytes of device header to strip on rx / pad on tx (the guest negotiated no header). */
  private hdrPad = 0;
  private numBuffersFix = false;
  private opened = false;
  // tx queue after EAGAIN: a ring of copies.
  private readonly txq: (Uint8Array | null)[] = [];
  private txHead = 0;
  private txLen = 0;
  private owesDrain = false;
  private pollErrors = 0;

  /**
   * Throws GUESTNET_UNSUPPORTED off Linux, GUESTNET_BACKEND_NOT_INSTALLED when the addon is not
   * built, GUESTNET_BAD_CONFIG for inconsistent options. Opens nothing until init(); with `fd=`,
   * the fd is inspected (TUNGETIFF) and made non-blocking here.
   */
  constructor(options: BackendOptions | TapConfig = {}, internals: TapInternals = {}) {
    const cfg = normalize(options);
    const addon = internals.addon ?? loadAddon(internals.addonPath);
    let devVnet = cfg.vnet_hdr === true;
    let fdName: string | undefined;
    if (cfg.fd !== undefined) {
      let info: { ifname: string; flags: number };
      try {
        info = addon.tapInfo(cfg.fd);
      } catch (err) {
        throw new GuestnetError(ErrorCode.BadConfig, `fd=${cfg.fd} is not an open TAP device: ${(err as Error).message}`, {
          hint: 'pass an fd opened on /dev/net/tun with TUNSETIFF (IFF_TAP|IFF_NO_PI), inherited by this process',
          cause: err,
        });
      }
      const c = addon.constants;
      if (!(info.flags & c.IFF_TAP) || !(info.flags & c.IFF_NO_PI)) {
        throw new GuestnetError(ErrorCode.BadConfig, `fd=${cfg.fd} (${info.ifname}) is not a TAP device opened with IFF_NO_PI`, {
          hint: 'TUN (layer 3) devices and packet-info headers are not supported',
        });
      }
      devVnet = (info.flags & c.IFF_VNET_HDR) !== 0;
      if (cfg.vnet_hdr && !devVnet) {
        throw new GuestnetError(ErrorCode.BadConfig, `vnet_hdr=on, but fd=${cfg.fd} was opened without IFF_VNET_HDR`, { hint: 'open the device with IFF_VNET_HDR, or drop vnet_hdr=on' });
      }
      fdName = info.ifname;
    }
    super({
      ...(cfg.mtu !== undefined ? { mtu: cfg.mtu } : {}),
      supportedVnetHdrLens: devVnet ? [10, 12] : [],
      supportedOffloads: devVnet ? { csum: true, tso4: true, tso6: true, ecn: true } : {},
    });
    this.cfg = cfg;
    this.addon = addon;
    this.tunPath = internals.tunPath;
    this.batch = internals.batch ?? RX_BATCH;
    this.devVnet = devVnet;
    this.name = fdName ?? cfg.ifname;
    if (cfg.fd !== undefined) this.fds = [cfg.fd];
  }

  /** The interface name (known after init, or at once with fd=/ifname=). */
  get ifname(): string | undefined {
    return this.name;
  }

  /** The namespace the device lives in (a path), if any. */
  get netnsPath(): string | undefined {
    return this.cfg.netns;
  }

  /** Queues (fds) in use. */
  get queueCount(): number {
    return this.pollers.length;
  }

  /** The device fds, one per queue (owned by the backend; for diagnostics). */
  get fdList(): number[] {
    return this.pollers.map((p) => p.fd);
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  protected async onInit(): Promise<void> {
    const a = this.addon;
    const cfg = this.cfg;
    const ns = cfg.netns;
    const ctx = () => ({ ...(this.name !== undefined ? { ifname: this.name } : {}), ...(ns !== undefined ? { netns: ns } : {}) });
    try {
      if (cfg.fd === undefined) {
        const queues = cfg.queues ?? 1;
        for (let q = 0; q < queues; q++) {
          const r = a.openTap({
            ifname: this.name ?? '',
            vnetHdr: this.devVnet,
            multiQueue: queues > 1,
            ...(ns !== undefined ? { netnsPath: ns } : {}),
            ...(this.tunPath !== undefined ? { tunPath: this.tunPath } : {}),
          });
          this.fds.push(r.fd);
          this.name = r.ifname;
        }
      }
      this.opened = true;
      this.applyVnet();
      const name = this.name!;
      if (cfg.mac !== undefined) a.setMac(name, parseMac(cfg.mac), ns);
      if (cfg.mtu !== undefined) a.setMtu(name, cfg.mtu, ns);
    } catch (err) {
      throw mapTapError(err, ctx());
    }
    this.readLinkMtu();
    if (cfg.script) await runScript(cfg.script, this.name!, 'script');
    if (cfg.up !== false) {
      try {
        a.setLinkUp(this.name!, true, ns);
      } catch (err) {
        // Without CAP_NET_ADMIN a user's persistent tap is left as its owner configured it,
        // unless up=on was asked for explicitly.
        const code = (err as { code?: string }).code;
        if (cfg.up === true || (code !== 'EPERM' && code !== 'EACCES')) throw mapTapError(err, ctx());
      }
    }
    for (let q = 0; q < this.fds.length; q++) {
      const fd = this.fds[q]!;
      let p: NativePoller;
      try {
        p = new a.TapPoller(
          fd,
          { frameBufSize: RX_SLOT_SIZE, batch: this.batch, onWritable: () => this.flushTx(), onError: (code) => this.onPollError(code) },
          (_buf, lengths, count) => this.onFrames(q, lengths, count),
        );
      } catch (err) {
        throw mapTapError(err, ctx());
      }
      p.setTxPad(this.hdrPad);
      this.pollers.push(p);
      this.rxViews.push(new Uint8Array(p.buffer));
      if (this.paused) p.pause();
    }
    this.fds = [];
  }

  protected async onClose(): Promise<void> {
    for (const p of this.pollers) p.pause();
    let scriptErr: unknown;
    if (this.cfg.downscript && this.opened && this.name) {
      try {
        await runScript(this.cfg.downscript, this.name, 'downscript');
      } catch (err) {
        scriptErr = err;
      }
    }
    for (const p of this.pollers) p.close();
    for (const fd of this.fds) this.addon.closeFd(fd);
    this.pollers = [];
    this.rxViews = [];
    this.fds = [];
    this.txq.length = 0;
    this.txHead = 0;
    this.txLen = 0;
    this.owesDrain = false;
    if (scriptErr) throw scriptErr;
  }

  protected override onPause(): void {
    for (const p of this.pollers) p.pause();
  }

  protected override onResume(): void {
    for (const p of this.pollers) p.resume();
  }

  // ---- capabilities --------------------------------------------------------------------------

  protected override onCapabilities(_caps: Capabilities): void {
    // The kernel's rules (tun set_offload): TSO needs checksum offload, ECN needs TSO.
    const o = this.caps.offloads;
    if (!o.csum) o.tso4 = o.tso6 = false;
    if (!o.tso4 && !o.tso6) o.ecn = false;
    o.ufo = false;
    const gso = o.tso4 || o.tso6;
    this.caps.maxFrameLen = gso ? 65535 + 14 + this.caps.vnetHdrLen : this.caps.mtu + 18 + this.caps.vnetHdrLen;
    if (!this.opened) return;
    try {
      this.applyVnet();
      const dev = this.linkMtu();
      if (dev !== undefined && dev !== this.caps.mtu) this.addon.setMtu(this.name!, this.caps.mtu, this.cfg.netns);
    } catch (err) {
      throw mapTapError(err, { ...(this.name ? { ifname: this.name } : {}), ...(this.cfg.netns ? { netns: this.cfg.netns } : {}) });
    }
  }

  /** Push the negotiated header length and offloads to the device (all queues). */
  private applyVnet(): void {
    if (!this.devVnet) return;
    const a = this.addon;
    const c = a.constants;
    const hdr: VnetHdrLen = this.caps.vnetHdrLen;
    const o = this.caps.offloads;
    let flags = 0;
    if (hdr > 0) {
      if (o.csum) flags |= c.TUN_F_CSUM;
      if (o.tso4) flags |= c.TUN_F_TSO4;
      if (o.tso6) flags |= c.TUN_F_TSO6;
      if (o.ecn) flags |= c.TUN_F_TSO_ECN;
    }
    const fds = this.pollers.length > 0 ? this.pollers.map((p) => p.fd) : this.fds;
    for (const fd of fds) {
      a.setVnetHdrSize(fd, hdr === 0 ? DEVICE_DEFAULT_VNET_HDR : hdr);
      a.setOffload(fd, flags);
    }
    this.hdrPad = hdr === 0 ? DEVICE_DEFAULT_VNET_HDR : 0;
    this.numBuffersFix = hdr === 12;
    for (const p of this.pollers) p.setTxPad(this.hdrPad);
  }

  private linkMtu(): number | undefined {
    try {
      return this.addon.getLink(this.name!, this.cfg.netns).mtu;
    } catch {
      return undefined; // an inherited fd's device may live in a namespace we cannot see
    }
  }

  private readLinkMtu(): void {
    const mtu = this.linkMtu();
    if (mtu === undefined) return;
    this.caps.mtu = mtu;
    const o = this.caps.offloads;
    this.caps.maxFrameLen = o.tso4 || o.tso6 ? 65535 + 14 + this.caps.vnetHdrLen : mtu + 18 + this.caps.vnetHdrLen;
  }

  // ---- rx ------------------------------------------------------------------------------------

  private onFrames(q: number, lengths: Uint32Array, count: number): void {
    const u8 = this.rxViews[q];
    if (u8 === undefined) return;
    const strip = this.hdrPad;
    for (let i = 0; i < count; i++) {
      const start = i * RX_SLOT_SIZE + strip;
      const len = lengths[i]! - strip;
      if (len < 14) {
        this.drop('rx-runt');
        continue;
      }
      // The kernel leaves num_buffers unwritten; a mergeable-rx-buffers guest expects 1.
      if (this.numBuffersFix) {
        u8[start + 10] = 1;
        u8[start + 11] = 0;
      }
      try {
        this.deliver(u8.subarray(start, start + len));
      } catch {
        this.drop('rx-handler-error');
      }
    }
  }

  private onPollError(code: string): void {
    this.pollErrors++;
    this.drop('rx-error');
    if (this.state === 'closed') return;
    this.events.error?.(
      new GuestnetError(ErrorCode.Io, `tap device '${this.name ?? '?'}' failed (${code}); it was probably deleted`, {
        hint: 'close this backend and create it again',
      }),
    );
  }

  // ---- tx ------------------------------------------------------------------------------------

  private pick(frame: Uint8Array): NativePoller {
    const n = this.pollers.length;
    if (n === 1) return this.pollers[0]!;
    return this.pollers[flowHash(frame, this.caps.vnetHdrLen) % n]!;
  }

  protected onSend(frame: Uint8Array): Verdict {
    if (this.txLen > 0) return this.enqueue(frame);
    const p = this.pick(frame);
    const r = p.write(frame, 0, frame.length);
    if (r >= 0) return Verdict.Delivered;
    if (r === -EAGAIN) {
      const v = this.enqueue(frame);
      p.wantWritable();
      return v;
    }
    return Verdict.Dropped; // counted natively, reported as drops["tx-error"]
  }

  override sendBatch(frames: readonly Uint8Array[]): number {
    if (this.pollers.length !== 1 || this.txLen > 0 || this.state !== 'running') return super.sendBatch(frames);
    const min = 14 + this.caps.vnetHdrLen;
    for (let i = 0; i < frames.length; i++) if (frames[i]!.length < min) return super.sendBatch(frames);
    const p = this.pollers[0]!;
    const done = p.writeFrames(frames, 0, frames.length);
    for (let i = 0; i < done; i++) {
      this.counters.txFrames++;
      this.counters.txBytes += frames[i]!.length;
    }
    if (done >= frames.length) return done;
    // EAGAIN at frames[done]: take it into the (empty) queue, wait for POLLOUT, and stop there.
    const f = frames[done]!;
    this.counters.txFrames++;
    this.counters.txBytes += f.length;
    this.enqueue(f);
    p.wantWritable();
    return done + 1;
  }

  private enqueue(frame: Uint8Array): Verdict {
    if (this.txLen >= TX_QUEUE_FRAMES) {
      this.drop('backpressure');
      return Verdict.Dropped;
    }
    this.txq[(this.txHead + this.txLen) % TX_QUEUE_FRAMES] = frame.slice();
    this.txLen++;
    this.owesDrain = true;
    return Verdict.Queued;
  }

  /** The device is writable again: write the queue in order, then raise drain. */
  private flushTx(): void {
    while (this.txLen > 0) {
      const f = this.txq[this.txHead]!;
      const p = this.pick(f);
      const r = p.write(f, 0, f.length);
      if (r === -EAGAIN) {
        p.wantWritable();
        return;
      }
      this.txq[this.txHead] = null;
      this.txHead = (this.txHead + 1) % TX_QUEUE_FRAMES;
      this.txLen--;
    }
    this.txHead = 0;
    if (this.owesDrain && this.state === 'running') {
      this.owesDrain = false;
      this.events.drain?.();
    }
  }

  // ---- stats ---------------------------------------------------------------------------------

  override stats(): BackendStats {
    const s = super.stats();
    let txErr = 0;
    for (const p of this.pollers) txErr += p.stats().txErrors;
    if (txErr > 0) s.drops['tx-error'] = (s.drops['tx-error'] ?? 0) + txErr;
    return s;
  }

  protected override extraStats(): Record<string, number> {
    return { queues: this.pollers.length, txQueued: this.txLen, pollErrors: this.pollErrors };
  }
}
