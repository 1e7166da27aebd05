import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ipv4View, Ipv6View, TftpErrorCode, TftpView, UdpView, emitTftp, parseTftp, tftpLen } from '@guestnet/wire';
import type { TftpOptions, TftpRepr } from '@guestnet/wire';
import { TftpServer } from './tftp-server.ts';
import type { TftpServerOptions } from './tftp-server.ts';
import { ip4, ip6 } from './config.ts';
import type { HostIo } from '@guestnet/core';
import { createNodeHostIo } from '@guestnet/core/node';
import { fakeContext } from './testing/fake-context.ts';

const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56);
const GUEST = ip4('10.0.2.15')!;
const GUEST6 = ip6('fec0::15')!;

let root = '';
let outside = '';
const small = randomBytes(1300);
const big = randomBytes(100_000);
const exact = randomBytes(1024);

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'guestnet-tftp-'));
  outside = mkdtempSync(join(tmpdir(), 'guestnet-tftp-outside-'));
  writeFileSync(join(root, 'small.bin'), small);
  writeFileSync(join(root, 'big.bin'), big);
  writeFileSync(join(root, 'exact.bin'), exact);
  mkdirSync(join(root, 'pxelinux.cfg'));
  writeFileSync(join(root, 'pxelinux.cfg', 'default'), 'DEFAULT linux\n');
  writeFileSync(join(outside, 'secret'), 'do not serve');
  symlinkSync(join(outside, 'secret'), join(root, 'link-out'));
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function setup(options: Record<string, unknown> = {}, serverOpts: TftpServerOptions = {}, io: HostIo = createNodeHostIo()) {
  const { cfg, ctx, frames, drops, counts, clock, timers } = fakeContext({ tftp: root, ...options }, { io, guestMac: GUEST_MAC, guestIp4: GUEST });
  const server = new TftpServer(ctx, serverOpts);
  servers.push(server);
  return { cfg, frames, drops, counts, clock, timers, server };
}

// Every server is closed after its test, so transfers a test leaves open do not leak file handles.
const servers: TftpServer[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

type Env = ReturnType<typeof setup>;

function pkt(r: TftpRepr): Uint8Array {
  const b = new Uint8Array(tftpLen(r));
  emitTftp(r, b, 0);
  return b;
}

const rrq = (filename: string, options: TftpOptions = {}): Uint8Array => pkt({ op: 'rrq', filename, mode: 'octet', options });
const ack = (block: number): Uint8Array => pkt({ op: 'ack', block });

/** Parse a delivered IPv4 frame to its TFTP packet, checking addresses, ports and checksums. */
function parse4(env: Env, f: Uint8Array, port = 1069): TftpRepr {
  const ip = new Ipv4View();
  expect(ip.reset(f, 14, f.length - 14)).toBe(true);
  expect(ip.verifyChecksum()).toBe(true);
  expect([ip.src, ip.dst]).toEqual([env.cfg.host, GUEST]);
  const udp = new UdpView();
  expect(udp.reset(f, ip.payloadOffset, ip.payloadLen)).toBe(true);
  expect(udp.verifyChecksumV4(f, 14)).toBe(true);
  expect([udp.srcPort, udp.dstPort]).toEqual([69, port]);
  const v = new TftpView();
  expect(v.reset(f, udp.payloadOffset, udp.payloadLen)).toBe(true);
  const r = parseTftp(v);
  expect(r).not.toBeNull();
  return r!;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Wait (real time, for the file system) until `n` frames have been delivered. */
async function frameCount(env: Env, n: number, ms = 3000): Promise<void> {
  // In-memory reads finish within a few microtask turns; the file system needs event-loop turns.
  for (let i = 0; i < 8 && env.frames.length < n; i++) await Promise.resolve();
  const end = Date.now() + ms;
  while (env.frames.length < n) {
    if (Date.now() > end) throw new Error(`timed out waiting for frame ${n}`);
    await tick();
  }
}

const cursors = new WeakMap<Env, number>();

/** The next frame not yet looked at (waiting for it if needed). */
async function next(env: Env, port = 1069): Promise<TftpRepr> {
  const n = cursors.get(env) ?? 0;
  await frameCount(env, n + 1);
  cursors.set(env, n + 1);
  return parse4(env, env.frames[n]!, port);
}

/** The UDP payload of an IPv4 frame (IP ids differ between retransmissions). */
const udpPayload = (f: Uint8Array): Uint8Array => f.subarray(14 + 20 + 8);

/** Run a whole transfer as a well-behaved client. */
async function fetch(env: Env, name: string, options: TftpOptions = {}, port = 1069): Promise<{ data: Uint8Array; blocks: number[]; oack: TftpOptions | null }> {
  env.server.handle(GUEST, port, env.cfg.host, 69, rrq(name, options), GUEST_MAC);
  let r = await next(env, port);
  let oack: TftpOptions | null = null;
  let blksize = 512;
  if (r.op === 'oack') {
    oack = r.options;
    blksize = r.options.blksize ?? 512;
    env.server.handle(GUEST, port, env.cfg.host, 69, ack(0), GUEST_MAC);
    r = await next(env, port);
  }
  const chunks: Uint8Array[] = [];
  const blocks: number[] = [];
  for (;;) {
    if (r.op !== 'data') throw new Error(`expected DATA, got ${JSON.stringify(r)}`);
    blocks.push(r.block);
    chunks.push(r.data);
    env.server.handle(GUEST, port, env.cfg.host, 69, ack(r.block), GUEST_MAC);
    if (r.data.length < blksize) break;
    r = await next(env, port);
  }
  await tick();
  expect(env.frames.length).toBe(cursors.get(env));
  return { data: Buffer.concat(chunks), blocks, oack };
}

describe('TftpServer', () => {
  it('serves a file whole in 512-byte blocks without options', async () => {
    const env = setup();
    const { data, blocks, oack } = await fetch(env, 'big.bin');
    expect(oack).toBeNull();
    expect(sha(data)).toBe(sha(big));
    expect(blocks.length).toBe(Math.ceil(big.length / 512));
    expect(blocks.slice(0, 3)).toEqual([1, 2, 3]);
    expect(env.server.sessionCount).toBe(0);
    expect(env.counts.get('tftp-complete')).toBe(1);
    expect(env.timers.size).toBe(0);
  });

  it('negotiates blksize 1428 and tsize with an OACK, then serves the file', async () => {
    const env = setup();
    const { data, blocks, oack } = await fetch(env, 'big.bin', { tsize: 0, blksize: 1428, order: ['tsize', 'blksize'] });
    expect(oack).toEqual({ tsize: big.length, blksize: 1428, order: ['tsize', 'blksize'] });
    expect(sha(data)).toBe(sha(big));
    expect(blocks.length).toBe(Math.ceil(big.length / 1428));
  });

  it('clamps blksize to one unfragmented datagram in the MTU, and echoes timeout', async () => {
    const env = setup();
    const { data, oack } = await fetch(env, 'small.bin', { blksize: 8192, timeout: 3 });
    expect(oack!.blksize).toBe(1500 - 20 - 8 - 4);
    expect(oack!.timeout).toBe(3);
    expect(sha(data)).toBe(sha(small));
    const env2 = setup({ mtu: 1000 });
    expect((await fetch(env2, 'small.bin', { blksize: 65464 })).oack!.blksize).toBe(968);
  });

  it('answers plain DATA when the client only asks for options it does not know', async () => {
    const env = setup();
    const { oack, data } = await fetch(env, 'small.bin', { windowsize: 4, extra: [{ name: 'foo', value: 'bar' }] });
    expect(oack).toBeNull();
    expect(sha(data)).toBe(sha(small));
  });

  it('ends a file that is an exact multiple of blksize with an empty DATA block', async () => {
    const env = setup();
    const { data, blocks } = await fetch(env, 'exact.bin');
    expect(blocks).toEqual([1, 2, 3]);
    expect(env.frames.length).toBe(3);
    expect(parse4(env, env.frames[2]!)).toEqual({ op: 'data', block: 3, data: new Uint8Array(0) });
    expect(sha(data)).toBe(sha(exact));
    expect(env.server.sessionCount).toBe(0);
  });

  it('serves files in subdirectories', async () => {
    const env = setup();
    const { data } = await fetch(env, 'pxelinux.cfg/default');
    expect(Buffer.from(data).toString()).toBe('DEFAULT linux\n');
  });

  it('refuses paths with ../ with an access violation', async () => {
    const env = setup();
    for (const name of ['../secret', 'pxelinux.cfg/../../etc/passwd', '..\\secret']) {
      env.server.handle(GUEST, 1069, env.cfg.host, 69, rrq(name), GUEST_MAC);
      expect(parse4(env, env.frames.at(-1)!)).toEqual({ op: 'error', code: TftpErrorCode.ACCESS_VIOLATION, message: 'Access violation' });
    }
    expect(env.server.sessionCount).toBe(0);
  });

  it('answers file-not-found for a missing file and for a symlink leaving the root', async () => {
    const env = setup();
    for (const name of ['missing.bin', 'link-out', 'pxelinux.cfg']) {
      env.server.handle(GUEST, 1069, env.cfg.host, 69, rrq(name), GUEST_MAC);
      expect(await next(env)).toEqual({ op: 'error', code: TftpErrorCode.FILE_NOT_FOUND, message: 'File not found' });
    }
    expect(env.server.sessionCount).toBe(0);
  });

  it('refuses write requests', () => {
    const env = setup();
    env.server.handle(GUEST, 1069, env.cfg.host, 69, pkt({ op: 'wrq', filename: 'new.bin', mode: 'octet', options: {} }), GUEST_MAC);
    expect(env.frames.length).toBe(1);
    expect(parse4(env, env.frames[0]!)).toEqual({ op: 'error', code: TftpErrorCode.ACCESS_VIOLATION, message: 'Access violation' });
    expect(env.drops.get('tftp-write-refused')).toBe(1);
  });

  it('retransmits the last DATA after a lost ACK, then gives up', async () => {
    const env = setup({}, { retransmitMs: 1000, maxRetries: 2 });
    env.server.handle(GUEST, 1069, env.cfg.host, 69, rrq('small.bin'), GUEST_MAC);
    const first = await next(env);
    expect(first).toMatchObject({ op: 'data', block: 1 });
    env.clock.advance(999);
    expect(env.frames.length).toBe(1);
    env.clock.advance(1);
    expect(env.frames.length).toBe(2);
    expect(udpPayload(env.frames[1]!)).toEqual(udpPayload(env.frames[0]!));
    env.clock.advance(1000);
    expect(env.frames.length).toBe(3);
    env.clock.advance(1000);
    expect(env.frames.length).toBe(3);
    expect(env.server.sessionCount).toBe(0);
    expect(env.drops.get('tftp-timeout')).toBe(1);
    expect(env.counts.get('tftp-retransmit')).toBe(2);
  });

  it('uses the negotiated timeout for retransmission', async () => {
    const env = setup({}, { retransmitMs: 1000 });
    env.server.handle(GUEST, 1069, env.cfg.host, 69, rrq('small.bin', { timeout: 5 }), GUEST_MAC);
    expect((await next(env)).op).toBe('oack');
    env.clock.advance(4999);
    expect(env.frames.length).toBe(1);
    env.clock.advance(1);
    expect(parse4(env, env.frames[1]!).op).toBe('oack');
  });

  it('ignores duplicate ACKs (no Sorcerer’s Apprentice)', async () => {
    const env = setup();
    env.server.handle(GUEST, 1069, env.cfg.host, 69, rrq('small.bin'), GUEST_MAC);
    await next(env);
    env.server.handle(GUEST, 1069, env.cfg.host, 69, ack(1), GUEST_MAC);
    expect(await next(env)).toMatchObject({ op: 'data', block: 2 });
    env.server.handle(GUEST, 1069, env.cfg.host, 69, ack(1), GUEST_MAC);
    env.server.handle(GUEST, 1069, env.cfg.host, 69, ack(1), GUEST_MAC);
    await new Promise((r) => setTimeout(r, 20));
    expect(env.frames.length).toBe(2);
    expect(env.counts.get('tftp-dup-ack')).toBe(2);
    env.server.handle(GUEST, 1069, env.cfg.host, 69, ack(2), GUEST_MAC);
    expect(await next(env)).toMatchObject({ op: 'data', block: 3 });
  });

  it('resends the first reply when the client repeats its RRQ', async () => {
    const env = setup();
    env.server.handle(GUEST, 1069, env.cfg.host, 69, rrq('small.bin', { blksize: 1024 }), GUEST_MAC);
    await next(env);
    env.server.handle(GUEST, 1069, env.cfg.host, 69, rrq('small.bin', { blksize: 1024 }), GUEST_MAC);
    expect(env.frames.length).toBe(2);
    expect(udpPayload(env.frames[1]!)).toEqual(udpPayload(env.frames[0]!));
    expect(env.server.sessionCount).toBe(1);
  });

  it('keeps concurrent transfers apart by guest port', async () => {
    const env2 = setup();
    env2.server.handle(GUEST, 2000, env2.cfg.host, 69, rrq('small.bin'), GUEST_MAC);
    await next(env2, 2000);
    env2.server.handle(GUEST, 2001, env2.cfg.host, 69, rrq('exact.bin'), GUEST_MAC);
    expect(await next(env2, 2001)).toMatchObject({ op: 'data', block: 1, data: new Uint8Array(exact.subarray(0, 512)) });
    expect(env2.server.sessionCount).toBe(2);
    env2.server.handle(GUEST, 2000, env2.cfg.host, 69, ack(1), GUEST_MAC);
    expect(await next(env2, 2000)).toMatchObject({ op: 'data', block: 2, data: new Uint8Array(small.subarray(512, 1024)) });
    env2.server.close();
  });

  it('bounds the number of sessions', async () => {
    const env = setup({}, { maxSessions: 2 });
    for (let p = 3000; p < 3003; p++) env.server.handle(GUEST, p, env.cfg.host, 69, rrq('small.bin'), GUEST_MAC);
    expect(env.server.sessionCount).toBe(2);
    expect(env.drops.get('tftp-sessions-full')).toBe(1);
    expect(parse4(env, env.frames[0]!, 3002)).toEqual({ op: 'error', code: 0, message: 'Too many transfers' });
    env.server.close();
  });

  it('wraps block numbers past 65535 to 0', async () => {
    // An in-memory file so 65 540 blocks go fast.
    const size = 65_540 * 8 + 3;
    const content = new Uint8Array(size);
    for (let i = 0; i < size; i++) content[i] = (i * 7 + (i >>> 8)) & 0xff;
    const io: HostIo = {
      ...createNodeHostIo(),
      openFile: async () => ({
        size,
        read: async (pos, dst) => {
          const n = Math.max(0, Math.min(dst.length, size - pos));
          dst.set(content.subarray(pos, pos + n));
          return n;
        },
        close: () => {},
      }),
    };
    const env = setup({}, {}, io);
    env.server.handle(GUEST, 1069, env.cfg.host, 69, rrq('mem', { blksize: 8 }), GUEST_MAC);
    expect(await next(env)).toEqual({ op: 'oack', options: { blksize: 8, order: ['blksize'] } });
    // A lean client loop (the checked parser for 65 541 packets would dominate the run time);
    // the checked path is exercised on the last packets below.
    const got = new Uint8Array(size);
    const blocks: number[] = [];
    let ackNo = 0;
    let pos = 0;
    for (;;) {
      const before = env.frames.length;
      env.server.handle(GUEST, 1069, env.cfg.host, 69, ack(ackNo), GUEST_MAC);
      await frameCount(env, before + 1);
      const f = env.frames.pop()!;
      const payload = f.subarray(14 + 20 + 8);
      expect(payload[1]).toBe(3);
      ackNo = (payload[2]! << 8) | payload[3]!;
      blocks.push(ackNo);
      got.set(payload.subarray(4), pos);
      pos += payload.length - 4;
      if (payload.length - 4 < 8) {
        env.frames.push(f);
        break;
      }
    }
    expect(parse4(env, env.frames.at(-1)!)).toEqual({ op: 'data', block: 65_541 & 0xffff, data: content.subarray(size - 3) });
    env.server.handle(GUEST, 1069, env.cfg.host, 69, ack(ackNo), GUEST_MAC);
    expect(env.server.sessionCount).toBe(0);
    expect(blocks.length).toBe(65_541);
    expect(blocks[65_534]).toBe(65_535);
    expect(blocks[65_535]).toBe(0);
    expect(blocks[65_536]).toBe(1);
    expect(pos).toBe(size);
    expect(sha(got)).toBe(sha(content));
  }, 60_000);

  it('closes the file when the session ends, the client errors, or the server closes', async () => {
    let opened = 0;
    let closed = 0;
    const io: HostIo = {
      ...createNodeHostIo(),
      openFile: async () => {
        opened++;
        return { size: 100, read: async (_p, dst) => dst.length, close: () => void closed++ };
      },
    };
    const env = setup({}, {}, io);
    await fetch(env, 'a');
    expect(closed).toBe(1);
    env.server.handle(GUEST, 1070, env.cfg.host, 69, rrq('b'), GUEST_MAC);
    await next(env, 1070);
    env.server.handle(GUEST, 1070, env.cfg.host, 69, pkt({ op: 'error', code: 0, message: 'abort' }), GUEST_MAC);
    expect(closed).toBe(2);
    env.server.handle(GUEST, 1071, env.cfg.host, 69, rrq('c'), GUEST_MAC);
    await next(env, 1071);
    env.server.close();
    expect(closed).toBe(3);
    expect(opened).toBe(3);
    expect(env.timers.size).toBe(0);
  });

  it('serves IPv6 guests from the address they asked', async () => {
    const env = setup();
    env.server.handle6(GUEST6, 1069, env.cfg.ipv6Host, 69, rrq('pxelinux.cfg/default'), GUEST_MAC);
    await frameCount(env, 1);
    const f = env.frames[0]!;
    const ip = new Ipv6View();
    expect(ip.reset(f, 14, f.length - 14)).toBe(true);
    expect(f.slice(ip.srcOffset, ip.srcOffset + 16)).toEqual(env.cfg.ipv6Host);
    expect(f.slice(ip.dstOffset, ip.dstOffset + 16)).toEqual(GUEST6);
    const udp = new UdpView();
    expect(udp.reset(f, ip.payloadOffset, ip.payloadLen)).toBe(true);
    expect(udp.verifyChecksumV6(f, 14)).toBe(true);
    const v = new TftpView();
    v.reset(f, udp.payloadOffset, udp.payloadLen);
    expect(parseTftp(v)).toEqual({ op: 'data', block: 1, data: new Uint8Array(Buffer.from('DEFAULT linux\n')) });
    env.server.handle6(GUEST6, 1069, env.cfg.ipv6Host, 69, ack(1), GUEST_MAC);
    expect(env.server.sessionCount).toBe(0);
  });

  it('is silent when no TFTP root is configured, and drops junk', () => {
    const env = setup({ tftp: '' });
    env.server.handle(GUEST, 1069, env.cfg.host, 69, rrq('small.bin'), GUEST_MAC);
    expect(env.frames).toEqual([]);
    expect(env.drops.get('tftp-disabled')).toBe(1);
    const on = setup();
    on.server.handle(GUEST, 1069, on.cfg.host, 69, Uint8Array.of(0, 1), GUEST_MAC);
    on.server.handle(GUEST, 1069, on.cfg.host, 69, Uint8Array.of(0, 1, 0x61, 0x62), GUEST_MAC); // RRQ without NULs
    on.server.handle(GUEST, 1069, on.cfg.host, 69, ack(1), GUEST_MAC);
    expect(on.frames).toEqual([]);
    expect(on.drops.get('tftp-malformed')).toBe(2);
    expect(on.drops.get('tftp-no-session')).toBe(1);
  });
});
