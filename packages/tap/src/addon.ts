/**
 * Loading the native half (src/native/tap.cc, built by node-gyp into build/Release) and its types.
 *
 * The addon is loaded lazily, when a TapBackend is created, so importing @guestnet/tap works on
 * every platform and when the build failed: the failure surfaces as a coded GuestnetError
 * (GUESTNET_UNSUPPORTED off Linux, GUESTNET_BACKEND_NOT_INSTALLED when the addon is missing).
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ErrorCode, GuestnetError, UnsupportedError } from '@guestnet/core';

/** `onFrames(buffer, lengths, count)`: frame i is `lengths[i]` bytes at `i * slotSize`. */
export type OnFrames = (buffer: ArrayBuffer, lengths: Uint32Array, count: number) => void;

export interface NativePollerOptions {
  /** Bytes per frame slot (the largest frame read, vnet header included). */
  frameBufSize: number;
  /** Frames per batch (slots in the buffer). */
  batch: number;
  /** After wantWritable(): the fd accepts writes again (one-shot). */
  onWritable?: () => void;
  /** The poll or a read failed (errno name); the poller has stopped reading. */
  onError?: (code: string) => void;
}

/** The native uv_poll watcher of one tap fd. It owns the fd: close() closes both. */
export interface NativePoller {
  readonly fd: number;
  readonly buffer: ArrayBuffer;
  readonly lengths: Uint32Array;
  readonly slotSize: number;
  pause(): void;
  resume(): void;
  wantWritable(): void;
  /** Bytes written, or -errno (-EAGAIN when the device queue is full). Never throws on I/O. */
  write(frame: Uint8Array, offset: number, length: number): number;
  /** Index of the first frame not written (stops at EAGAIN; other errors count as txErrors). */
  writeFrames(frames: readonly Uint8Array[], start: number, end: number): number;
  /** Zero bytes prepended to every written frame (a vnet header the guest did not negotiate). */
  setTxPad(n: number): void;
  stats(): { txErrors: number; rxErrors: number; lastTxError: string; lastRxError: string; polling: number };
  close(): void;
}

export interface LinkInfo {
  flags: number;
  up: boolean;
  mtu: number;
  mac: string;
  index: number;
}

export interface OpenTapOptions {
  ifname?: string;
  vnetHdr: boolean;
  multiQueue: boolean;
  /** Create the device inside this network namespace (a path such as /run/netns/x). */
  netnsPath?: string;
  /** The clone device; only tests change it. */
  tunPath?: string;
}

/** The addon's exports. Control-path calls throw Errors with `code` = errno name and `syscall`. */
export interface NativeTap {
  openTap(opts: OpenTapOptions): { fd: number; ifname: string };
  tapInfo(fd: number): { ifname: string; flags: number };
  setVnetHdrSize(fd: number, size: number): void;
  setOffload(fd: number, flags: number): void;
  closeFd(fd: number): void;
  getLink(ifname: string, netnsPath?: string): LinkInfo;
  setLinkUp(ifname: string, up: boolean, netnsPath?: string): void;
  setMtu(ifname: string, mtu: number, netnsPath?: string): void;
  setMac(ifname: string, mac: Uint8Array, netnsPath?: string): void;
  setIPv4(ifname: string, addr: string, prefixLen: number, netnsPath?: string): void;
  addDefaultRoute4(ifname: string, gateway: string, netnsPath?: string): void;
  TapPoller: new (fd: number, opts: NativePollerOptions, onFrames: OnFrames) => NativePoller;
  constants: {
    IFF_TAP: number;
    IFF_NO_PI: number;
    IFF_VNET_HDR: number;
    IFF_MULTI_QUEUE: number;
    TUN_F_CSUM: number;
    TUN_F_TSO4: number;
    TUN_F_TSO6: number;
    TUN_F_TSO_ECN: number;
  };
}

/** Where node-gyp puts the addon, relative to this file (same from src/ and dist/). */
export const DEFAULT_ADDON_PATH = fileURLToPath(new URL('../build/Release/guestnet_tap.node', import.meta.url));

const loaded = new Map<string, NativeTap>();

/**
 * Load the addon (cached per path; default: $GUESTNET_TAP_ADDON, else build/Release). Throws
 * GUESTNET_UNSUPPORTED off Linux and GUESTNET_BACKEND_NOT_INSTALLED when the addon is missing or
 * does not load.
 */
export function loadAddon(path: string = process.env.GUESTNET_TAP_ADDON || DEFAULT_ADDON_PATH): NativeTap {
  if (process.platform !== 'linux') {
    throw new UnsupportedError(
      `the tap backend is not supported on ${process.platform}`,
      'TAP devices are Linux-only in guestnet; use backend=slirp (user-mode NAT, no root) instead',
    );
  }
  const hit = loaded.get(path);
  if (hit) return hit;
  let mod: NativeTap;
  try {
    mod = createRequire(import.meta.url)(path) as NativeTap;
  } catch (cause) {
    throw new GuestnetError(ErrorCode.BackendNotInstalled, `@guestnet/tap: the native addon is not built or does not load (${path})`, {
      hint: 'build it: cd node_modules/@guestnet/tap && npx node-gyp rebuild (needs g++, make, python3 and the Node headers), then retry',
      cause,
    });
  }
  loaded.set(path, mod);
  return mod;
}
