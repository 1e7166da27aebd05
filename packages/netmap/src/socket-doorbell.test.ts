import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KICK, SocketKicks } from './socket-doorbell.ts';

let dir = '';
let server: Server | null = null;
const sockets: Socket[] = [];

async function connectedPair(): Promise<[Socket, Socket]> {
  dir = mkdtempSync(join(tmpdir(), 'guestnet-kicks-'));
  const path = join(dir, 's.sock');
  const accepted = new Promise<Socket>((resolve) => {
    server = createServer(resolve);
    server.listen(path);
  });
  await new Promise((r) => server!.once('listening', r));
  const client = createConnection(path);
  await new Promise((r) => client.once('connect', r));
  const srv = await accepted;
  sockets.push(client, srv);
  return [srv, client];
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 20));
/** Wait for a kick to arrive (a loaded machine may take longer than one tick). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await tick();
}

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise((r) => (server ? server.close(r) : r(null)));
  server = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('socket doorbells', () => {
  it('coalesces many rings in one turn into one kick byte, heard once by the peer', async () => {
    const [a, b] = await connectedPair();
    const ka = new SocketKicks(a);
    const kb = new SocketKicks(b);
    let heard = 0;
    kb.bell('toPort').onRing(() => heard++);
    const bell = ka.bell('toPort');
    for (let i = 0; i < 100; i++) bell.ring();
    await until(() => heard === 1);
    await tick();
    expect(ka.sent).toEqual([0, 1]);
    expect(heard).toBe(1);
    bell.ring();
    await until(() => heard === 2);
    expect(heard).toBe(2);
  });

  it('keeps the two directions apart on one connection', async () => {
    const [sw, port] = await connectedPair();
    const ks = new SocketKicks(sw);
    const kp = new SocketKicks(port);
    const seen: string[] = [];
    ks.bell('toSwitch').onRing(() => seen.push('switch heard port'));
    kp.bell('toPort').onRing(() => seen.push('port heard switch'));
    // A bell also hears nothing of its own rings.
    ks.bell('toPort').onRing(() => seen.push('wrong'));
    kp.bell('toSwitch').ring();
    await until(() => seen.length === 1);
    expect(seen).toEqual(['switch heard port']);
    ks.bell('toPort').ring();
    await until(() => seen.length === 2);
    expect(seen).toEqual(['switch heard port', 'port heard switch']);
  });

  it('handles kicks read together with the handshake (leftover bytes)', async () => {
    const [a] = await connectedPair();
    const k = new SocketKicks(a, Uint8Array.of(KICK.toSwitch, 0x7b));
    let heard = 0;
    k.bell('toSwitch').onRing(() => heard++);
    await tick();
    expect(heard).toBe(1);
    expect(k.junk).toBe(1);
  });

  it('a closed bell neither rings nor hears; a closed channel leaves the socket open', async () => {
    const [a, b] = await connectedPair();
    const ka = new SocketKicks(a);
    const kb = new SocketKicks(b);
    let heard = 0;
    const hear = kb.bell('toSwitch');
    hear.onRing(() => heard++);
    const bell = ka.bell('toSwitch');
    bell.close();
    bell.ring();
    await tick();
    expect(ka.sent).toEqual([0, 0]);
    ka.bell('toSwitch').ring();
    await until(() => heard === 1);
    expect(heard).toBe(1);
    hear.close();
    ka.bell('toSwitch').ring();
    await tick();
    expect(heard).toBe(1);
    kb.close();
    expect(b.destroyed).toBe(false);
  });

  it('stops writing once the socket is gone instead of throwing', async () => {
    const [a, b] = await connectedPair();
    const ka = new SocketKicks(a);
    b.destroy();
    a.destroy();
    ka.bell('toPort').ring();
    await tick();
    expect(ka.sent).toEqual([0, 0]);
  });
});
