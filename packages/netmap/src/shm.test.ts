import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, GuestnetError } from '@guestnet/core';
import { createSharedFile, defaultShmDir, loadShmAddon, openSharedFile, shmAvailable, shmError, unlinkSharedFile } from './shm.ts';

const available = shmAvailable();
const made: string[] = [];
let seq = 0;
function tempPath(): string {
  const p = `${defaultShmDir()}/guestnet-shm-test-${process.pid}-${seq++}`;
  made.push(p);
  return p;
}
afterEach(() => {
  for (const p of made.splice(0)) if (available) unlinkSharedFile(p);
});

describe.skipIf(!available)('shared memory files', () => {
  it('two mappings of one file in one process see each other’s writes', () => {
    const path = tempPath();
    const a = createSharedFile(path, 65536);
    const b = openSharedFile(path);
    expect(a).toBeInstanceOf(SharedArrayBuffer);
    expect(b.byteLength).toBe(65536);
    const va = new Uint8Array(a);
    const vb = new Uint8Array(b);
    expect(vb.every((x) => x === 0)).toBe(true);
    va[65535] = 0xab;
    vb[0] = 0xcd;
    expect(vb[65535]).toBe(0xab);
    expect(va[0]).toBe(0xcd);
    Atomics.store(new Int32Array(a), 7, -5);
    expect(Atomics.compareExchange(new Int32Array(b), 7, -5, 9)).toBe(-5);
    expect(Atomics.load(new Int32Array(a), 7)).toBe(9);
  });

  it('a child process maps the same file and its Atomics writes reach the parent', async () => {
    const path = tempPath();
    const mem = createSharedFile(path, 4096);
    const words = new Int32Array(mem);
    Atomics.store(words, 1, 0x1234);
    const child = fork(fileURLToPath(new URL('./shm.process-child.ts', import.meta.url)), [path], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const reply = await new Promise<{ sawParent: number; byteLength: number }>((resolve, reject) => {
      child.once('message', (m) => resolve(m as { sawParent: number; byteLength: number }));
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`child exited ${code} without replying`)));
    });
    await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(null)));
    expect(reply).toEqual({ sawParent: 0x1234, byteLength: 4096 });
    expect(Atomics.load(words, 2)).toBe(0x5678);
    expect(Atomics.load(words, 0)).toBe(1000);
  });

  it('the mapping outlives the file name: unlink removes the name only', () => {
    const path = tempPath();
    const a = createSharedFile(path, 4096);
    const b = openSharedFile(path);
    expect(unlinkSharedFile(path)).toBe(true);
    expect(existsSync(path)).toBe(false);
    expect(unlinkSharedFile(path)).toBe(false);
    new Uint8Array(a)[10] = 3;
    expect(new Uint8Array(b)[10]).toBe(3);
  });

  it('reports a missing file as GUESTNET_NOT_FOUND and an existing one as GUESTNET_EXISTS', () => {
    const path = tempPath();
    expect(() => openSharedFile(path)).toThrow(expect.objectContaining({ code: ErrorCode.NotFound }));
    createSharedFile(path, 4096);
    expect(() => createSharedFile(path, 4096)).toThrow(expect.objectContaining({ code: ErrorCode.Exists }));
  });

  it('rejects a zero or absurd size before touching the file system', () => {
    const path = tempPath();
    expect(() => createSharedFile(path, 0)).toThrow(TypeError);
    expect(() => createSharedFile(path, 2 ** 40)).toThrow(TypeError);
    expect(existsSync(path)).toBe(false);
  });
});

describe('shared memory errors', () => {
  it('a missing addon is GUESTNET_BACKEND_NOT_INSTALLED with a build hint', () => {
    let err: unknown;
    try {
      loadShmAddon('/nonexistent/guestnet_shm.node');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GuestnetError);
    expect((err as GuestnetError).code).toBe(ErrorCode.BackendNotInstalled);
    expect((err as GuestnetError).hint).toMatch(/node-gyp rebuild/);
  });

  it('maps EPERM, ENOSPC and unknown errnos to coded errors that say what to do', () => {
    const errno = (code: string) => Object.assign(new Error(`open /dev/shm/x: ${code}`), { code });
    const eperm = shmError(errno('EACCES'), 'cannot map');
    expect(eperm.code).toBe(ErrorCode.EPERM);
    expect(eperm.hint).toMatch(/same user/);
    const full = shmError(errno('ENOSPC'), 'cannot create');
    expect(full.code).toBe(ErrorCode.Limit);
    expect(full.hint).toMatch(/df -h \/dev\/shm/);
    expect(shmError(errno('EIO'), 'x').code).toBe(ErrorCode.Io);
  });
});
