/**
 * An in-memory stand-in for the native addon, for unit tests of the TypeScript layer without root:
 * it records every ioctl-ish call, lets a test inject rx batches exactly as the native poller
 * delivers them (one buffer of slots + lengths), and can make writes return -EAGAIN.
 */
import { constants as osConstants } from 'node:os';
import type { LinkInfo, NativePoller, NativePollerOptions, NativeTap, OnFrames, OpenTapOptions } from '../addon.ts';

const EAGAIN = osConstants.errno.EAGAIN;

export class FakePoller implements NativePoller {
  readonly fd: number;
  readonly buffer: ArrayBuffer;
  readonly lengths: Uint32Array;
  readonly slotSize: number;
  paused = false;
  closed = false;
  writable = false;
  txPad = 0;
  /** Frames written (with any pad), in order. */
  written: Uint8Array[] = [];
  /** While true, writes return -EAGAIN. */
  full = false;
  txErrors = 0;
  private readonly opts: NativePollerOptions;
  private readonly onFrames: OnFrames;

  constructor(fd: number, opts: NativePollerOptions, onFrames: OnFrames) {
    this.fd = fd;
    this.opts = opts;
    this.onFrames = onFrames;
    this.slotSize = opts.frameBufSize;
    this.buffer = new ArrayBuffer(opts.frameBufSize * opts.batch);
    this.lengths = new Uint32Array(opts.batch);
  }

  /** Deliver frames (as the device would: header included) in one batch. */
  emit(frames: readonly Uint8Array[]): void {
    const u8 = new Uint8Array(this.buffer);
    frames.forEach((f, i) => {
      u8.set(f, i * this.slotSize);
      this.lengths[i] = f.length;
    });
    this.onFrames(this.buffer, this.lengths, frames.length);
  }

  /** The device became writable. */
  fireWritable(): void {
    if (!this.writable) return;
    this.writable = false;
    this.opts.onWritable?.();
  }

  fireError(code: string): void {
    this.opts.onError?.(code);
  }

  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  wantWritable(): void {
    this.writable = true;
  }
  write(frame: Uint8Array, offset: number, length: number): number {
    if (this.closed) return -9;
    if (this.full) return -EAGAIN;
    const out = new Uint8Array(this.txPad + length);
    out.set(frame.subarray(offset, offset + length), this.txPad);
    this.written.push(out);
    return out.length;
  }
  writeFrames(frames: readonly Uint8Array[], start: number, end: number): number {
    for (let i = start; i < end; i++) {
      if (this.write(frames[i]!, 0, frames[i]!.length) === -EAGAIN) return i;
    }
    return end;
  }
  setTxPad(n: number): void {
    this.txPad = n;
  }
  stats() {
    return { txErrors: this.txErrors, rxErrors: 0, lastTxError: '', lastRxError: '', polling: this.paused ? 0 : 1 };
  }
  close(): void {
    this.closed = true;
  }
}

export class FakeAddon implements NativeTap {
  calls: string[] = [];
  pollers: FakePoller[] = [];
  closedFds: number[] = [];
  link: LinkInfo = { flags: 0, up: false, mtu: 1500, mac: '02:00:00:00:00:01', index: 7 };
  nextFd = 100;
  /** Make openTap throw this (an errno-shaped error) once. */
  failOpen: { code: string; syscall: string; path?: string } | undefined;
  /** Make setLinkUp throw this code. */
  failUp: string | undefined;
  tapFlags = 0x0002 | 0x1000; // IFF_TAP | IFF_NO_PI

  readonly constants = {
    IFF_TAP: 0x0002,
    IFF_NO_PI: 0x1000,
    IFF_VNET_HDR: 0x4000,
    IFF_MULTI_QUEUE: 0x0100,
    TUN_F_CSUM: 1,
    TUN_F_TSO4: 2,
    TUN_F_TSO6: 4,
    TUN_F_TSO_ECN: 8,
  };

  readonly TapPoller: NativeTap['TapPoller'];

  constructor() {
    const self = this;
    this.TapPoller = class extends FakePoller {
      constructor(fd: number, opts: NativePollerOptions, onFrames: OnFrames) {
        super(fd, opts, onFrames);
        self.pollers.push(this);
      }
    };
  }

  openTap(opts: OpenTapOptions): { fd: number; ifname: string } {
    this.calls.push(`openTap ${opts.ifname ?? ''} vnet=${opts.vnetHdr} mq=${opts.multiQueue} ns=${opts.netnsPath ?? '-'}`);
    if (this.failOpen) {
      const e = Object.assign(new Error(`${this.failOpen.syscall}: failed`), this.failOpen);
      this.failOpen = undefined;
      throw e;
    }
    return { fd: this.nextFd++, ifname: opts.ifname || 'tap0' };
  }
  tapInfo(fd: number): { ifname: string; flags: number } {
    this.calls.push(`tapInfo ${fd}`);
    return { ifname: 'tapfd', flags: this.tapFlags };
  }
  setVnetHdrSize(fd: number, size: number): void {
    this.calls.push(`vnethdrsz ${fd} ${size}`);
  }
  setOffload(fd: number, flags: number): void {
    this.calls.push(`offload ${fd} ${flags}`);
  }
  closeFd(fd: number): void {
    this.closedFds.push(fd);
  }
  getLink(): LinkInfo {
    return { ...this.link };
  }
  setLinkUp(ifname: string, up: boolean): void {
    if (this.failUp) throw Object.assign(new Error('SIOCSIFFLAGS: denied'), { code: this.failUp, syscall: 'SIOCSIFFLAGS' });
    this.calls.push(`up ${ifname} ${up}`);
    this.link.up = up;
  }
  setMtu(ifname: string, mtu: number): void {
    this.calls.push(`mtu ${ifname} ${mtu}`);
    this.link.mtu = mtu;
  }
  setMac(ifname: string, mac: Uint8Array): void {
    this.calls.push(`mac ${ifname} ${[...mac].map((b) => b.toString(16).padStart(2, '0')).join(':')}`);
  }
  setIPv4(ifname: string, addr: string, prefixLen: number): void {
    this.calls.push(`ipv4 ${ifname} ${addr}/${prefixLen}`);
  }
  addDefaultRoute4(ifname: string, gateway: string): void {
    this.calls.push(`route ${ifname} ${gateway}`);
  }
}
