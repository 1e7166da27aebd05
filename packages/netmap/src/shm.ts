/**
 * Shared memory files mapped as SharedArrayBuffers (the native helper src/native/shm.cc).
 *
 * A switch process and the processes attached to it share each port's rings through one file
 * (normally under /dev/shm, a tmpfs): the creator sizes and maps it, the peer maps the same file,
 * and both get a SharedArrayBuffer over the same pages, so the ring protocol's Atomics work
 * across processes exactly as between worker threads.
 *
 * The addon is loaded lazily, on the first cross-process call, so importing @guestnet/netmap
 * works on every platform and when the native build failed: in-process switches and pipes need
 * no native code. The failure surfaces as a coded GuestnetError (GUESTNET_UNSUPPORTED off Linux,
 * GUESTNET_BACKEND_NOT_INSTALLED when the addon is missing).
 *
 * A mapping lives as long as the SharedArrayBuffer: V8 munmaps it when the buffer is collected.
 * There is no explicit unmap on purpose (a view used after munmap would crash the process).
 * Unlinking the file only removes the name; mapped pages stay valid until every side unmaps.
 */
import { createRequire } from 'node:module';
import { accessSync, constants as fsConstants } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ErrorCode, GuestnetError, PermissionError, UnsupportedError } from '@guestnet/core';

/** The addon's exports. Calls throw Errors with `code` = errno name, `syscall` and `path`. */
export interface NativeShm {
  createShm(path: string, size: number, mode: number): SharedArrayBuffer;
  openShm(path: string): SharedArrayBuffer;
  unlinkShm(path: string): boolean;
  liveMappings(): number;
}

/** Where node-gyp puts the addon, relative to this file (same from src/ and dist/). */
export const DEFAULT_SHM_ADDON_PATH = fileURLToPath(new URL('../build/Release/guestnet_shm.node', import.meta.url));

const loaded = new Map<string, NativeShm>();

/**
 * Load the addon (cached per path; default: $GUESTNET_SHM_ADDON, else build/Release). Throws
 * GUESTNET_UNSUPPORTED off Linux and GUESTNET_BACKEND_NOT_INSTALLED when it is missing.
 */
export function loadShmAddon(path: string = process.env.GUESTNET_SHM_ADDON || DEFAULT_SHM_ADDON_PATH): NativeShm {
  if (process.platform !== 'linux') {
    throw new UnsupportedError(
      `cross-process netmap switches are not supported on ${process.platform}`,
      'use the switch inside one process (worker threads share it through SharedArrayBuffer)',
    );
  }
  const hit = loaded.get(path);
  if (hit) return hit;
  let mod: NativeShm;
  try {
    mod = createRequire(import.meta.url)(path) as NativeShm;
  } catch (cause) {
    throw new GuestnetError(
      ErrorCode.BackendNotInstalled,
      `@guestnet/netmap: the native shared-memory helper is not built or does not load (${path}); switches work only inside one process`,
      {
        hint: 'build it: cd node_modules/@guestnet/netmap && npx node-gyp rebuild --nodedir=/usr (needs g++, make, python3 and the Node headers), then retry',
        cause,
      },
    );
  }
  loaded.set(path, mod);
  return mod;
}

/** Whether cross-process shared memory is available here (the addon loads). */
export function shmAvailable(): boolean {
  try {
    loadShmAddon();
    return true;
  } catch {
    return false;
  }
}

/** Map a native errno Error to a GuestnetError with something the user can do. */
export function shmError(err: unknown, what: string): GuestnetError {
  if (err instanceof GuestnetError) return err;
  const e = err as { code?: string; message?: string };
  const detail = e?.message ?? String(err);
  switch (e?.code) {
    case 'EPERM':
    case 'EACCES':
      return new PermissionError(
        `${what}: permission denied (${detail})`,
        'the shared memory file belongs to another user: run the switch and its clients as the same user, or point XDG_RUNTIME_DIR at a directory both can use',
        err,
      );
    case 'ENOENT':
      return new GuestnetError(ErrorCode.NotFound, `${what}: no such file (${detail})`, {
        hint: 'the switch process removed it (it exited or dropped the port); restart the switch and attach again',
        cause: err,
      });
    case 'ENOSPC':
    case 'ENOMEM':
      return new GuestnetError(ErrorCode.Limit, `${what}: out of shared memory (${detail})`, {
        hint: 'the tmpfs is full: check `df -h /dev/shm`, remove stale guestnet-* files there, or use smaller rings (fewer slots / smaller buffers)',
        cause: err,
      });
    case 'EMFILE':
    case 'ENFILE':
      return new GuestnetError(ErrorCode.Limit, `${what}: too many open files (${detail})`, {
        hint: 'raise the limit (ulimit -n) or close other ports',
        cause: err,
      });
    case 'EEXIST':
      return new GuestnetError(ErrorCode.Exists, `${what}: the file already exists (${detail})`, {
        hint: 'a stale file from a crashed switch: remove it and retry',
        cause: err,
      });
    case 'EINVAL':
      return new GuestnetError(ErrorCode.Protocol, `${what}: not a usable shared memory file (${detail})`, { cause: err });
    default:
      return new GuestnetError(ErrorCode.Io, `${what}: ${detail}`, { cause: err });
  }
}

/**
 * Create `path` (exclusively, mode 0600 by default), reserve `size` bytes and map it. The memory
 * is zero-filled. Throws a GuestnetError (EPERM, EXISTS, LIMIT for a full tmpfs, …).
 */
export function createSharedFile(path: string, size: number, mode = 0o600): SharedArrayBuffer {
  const addon = loadShmAddon();
  try {
    return addon.createShm(path, size, mode);
  } catch (err) {
    if (err instanceof TypeError) throw err; // a programming error (bad size), not the system's
    throw shmError(err, `cannot create shared memory ${path}`);
  }
}

/** Map an existing shared memory file, whole. */
export function openSharedFile(path: string): SharedArrayBuffer {
  const addon = loadShmAddon();
  try {
    return addon.openShm(path);
  } catch (err) {
    throw shmError(err, `cannot map shared memory ${path}`);
  }
}

/** Remove a shared memory file's name; false when it was already gone. Mappings stay valid. */
export function unlinkSharedFile(path: string): boolean {
  const addon = loadShmAddon();
  try {
    return addon.unlinkShm(path);
  } catch (err) {
    throw shmError(err, `cannot remove shared memory ${path}`);
  }
}

/** Mappings this process still holds (freed when their SharedArrayBuffers are collected). */
export function liveMappings(): number {
  return loadShmAddon().liveMappings();
}

/**
 * The directory for port files: /dev/shm when writable (tmpfs, never written to disk), else
 * $XDG_RUNTIME_DIR, else the temp dir.
 */
export function defaultShmDir(): string {
  for (const dir of ['/dev/shm', process.env.XDG_RUNTIME_DIR]) {
    if (!dir) continue;
    try {
      accessSync(dir, fsConstants.W_OK | fsConstants.X_OK);
      return dir;
    } catch {
      // not usable; try the next
    }
  }
  return tmpdir();
}
