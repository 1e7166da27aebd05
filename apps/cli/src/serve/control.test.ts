import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import { Writable } from 'node:stream';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pair } from '@guestnet/core';
import { attachStream } from '@guestnet/core/node';
import { TestGuest } from '../../../../packages/slirp/src/testing/test-guest.ts';
import { GuestnetServer } from './server.ts';
import { controlRequest, handleControlLine, startControlServer } from './control.ts';
import { main } from '../main.ts';

const CONFIG = 'backend=slirp,dns-upstream=127.0.0.1#1,allow=127.0.0.0/8';

let dir: string;
let server: GuestnetServer;
let ctl: string;
const cleanups: (() => Promise<unknown> | unknown)[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gn-ctl-'));
  server = await GuestnetServer.start({ config: CONFIG, listen: { kind: 'unix', path: join(dir, 'gn.sock') }, log: () => {} });
  ctl = join(dir, 'gn.ctl');
  const c = await startControlServer(server, ctl, () => {});
  cleanups.push(() => server.close(), () => c.close());
  // One connected client: the hostfwd owner.
  const sock = net.connect(join(dir, 'gn.sock'));
  await new Promise((r) => sock.once('connect', r));
  const [nic, wire] = pair();
  await attachStream(sock, wire);
  const guest = new TestGuest(nic);
  await guest.start();
  await guest.dhcp();
  cleanups.push(() => guest.stop(), () => sock.destroy());
});
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const w = (f: (s: string) => void) => new Writable({ write: (c, _e, cb) => (f(c.toString()), cb()) });
  const code = await main(argv, w((s) => (out += s)), w((s) => (err += s)));
  return { code, out, err };
}

describe('control socket (slirp4netns-style JSON lines)', () => {
  it('adds, lists and removes a hostfwd with slirp4netns request shapes', async () => {
    const add = (await controlRequest(ctl, 'add_hostfwd', { proto: 'tcp', host_addr: '127.0.0.1', host_port: 0, guest_port: 22 })) as { id: number };
    expect(add).toEqual({ id: 1 });
    const list = (await controlRequest(ctl, 'list_hostfwd')) as { entries: Record<string, unknown>[] };
    expect(list.entries).toHaveLength(1);
    expect(list.entries[0]).toMatchObject({ id: 1, proto: 'tcp', host_addr: '127.0.0.1', guest_addr: '', guest_port: 22, active: true });
    expect(list.entries[0]!.host_port).toBeGreaterThan(0);
    expect(await controlRequest(ctl, 'remove_hostfwd', { id: 1 })).toEqual({});
    expect(await controlRequest(ctl, 'list_hostfwd')).toEqual({ entries: [] });
  });

  it('replies with coded errors: unknown id, bad arguments, unknown command, not JSON', async () => {
    expect(await handleControlLine(server, '{"execute":"remove_hostfwd","arguments":{"id":9}}')).toEqual({ error: { desc: 'no hostfwd with id 9', code: 'GUESTNET_NOT_FOUND' } });
    expect(await handleControlLine(server, '{"execute":"add_hostfwd","arguments":{"proto":"sctp","host_port":1,"guest_port":2}}')).toMatchObject({ error: { code: 'GUESTNET_PROTOCOL', desc: expect.stringContaining('proto') } });
    expect(await handleControlLine(server, '{"execute":"add_hostfwd","arguments":{"host_port":1}}')).toMatchObject({ error: { desc: expect.stringContaining('guest_port') } });
    expect(await handleControlLine(server, '{"execute":"frob"}')).toMatchObject({ error: { desc: expect.stringContaining("unknown execute 'frob'") } });
    expect(await handleControlLine(server, 'nope')).toMatchObject({ error: { desc: 'bad request: not JSON' } });
  });

  it('refuses a host port already forwarded, with GUESTNET_EXISTS', async () => {
    const { id } = (await controlRequest(ctl, 'add_hostfwd', { rule: 'tcp::0-:22' })) as { id: number };
    const port = ((await controlRequest(ctl, 'list_hostfwd')) as { entries: { host_port: number }[] }).entries[0]!.host_port;
    expect(id).toBe(1);
    await expect(controlRequest(ctl, 'add_hostfwd', { proto: 'tcp', host_port: port, guest_port: 80 })).rejects.toMatchObject({ code: 'GUESTNET_EXISTS' });
  });

  it('answers several requests on one connection, in order', async () => {
    const sock = net.connect(ctl);
    let buf = '';
    sock.on('data', (d) => (buf += d.toString()));
    sock.write('{"execute":"list_hostfwd"}\n{"execute":"stats"}\n');
    const end = Date.now() + 5000;
    while (buf.split('\n').length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    sock.destroy();
    const [a, b] = buf.trim().split('\n').map((l) => JSON.parse(l));
    expect(a).toEqual({ return: { entries: [] } });
    expect(b.return).toMatchObject({ protocol: 'stream', clients_connected: 1, hostfwd_owner: 'client 1' });
  });

  it('is created mode 0600', () => {
    expect(statSync(ctl).mode & 0o777).toBe(0o600);
  });
});

describe('guestnet hostfwd / stats (control socket clients)', () => {
  it('adds with QEMU grammar, lists and removes by id and by rule', async () => {
    const add = await cli('hostfwd', 'add', '--control', `unix:${ctl}`, 'tcp::0-:22');
    expect(add.code).toBe(0);
    expect(add.out).toMatch(/^hostfwd 1: tcp:127\.0\.0\.1:\d+-:22\n$/);
    const bound = add.out.slice('hostfwd 1: '.length).trim();
    const list = await cli('hostfwd', 'list', `--control=unix:${ctl}`);
    expect(list.out).toMatch(new RegExp(`^1\\s+${bound.replace(/\./g, '\\.')}\\s+active$`, 'm'));
    expect((await cli('hostfwd', 'remove', '--control', `unix:${ctl}`, bound)).out).toBe('hostfwd 1 removed\n');
    await cli('hostfwd', 'add', '--control', `unix:${ctl}`, 'udp::0-:53');
    expect((await cli('hostfwd', 'remove', '--control', `unix:${ctl}`, '2')).code).toBe(0);
    expect((await cli('hostfwd', 'list', '--control', `unix:${ctl}`, '--json')).out).toBe('[]\n');
  });

  it('reports a bad rule with a caret and exit code 2', async () => {
    const r = await cli('hostfwd', 'add', '--control', `unix:${ctl}`, 'tcp::22');
    expect(r.code).toBe(2);
    expect(r.err).toContain('GUESTNET_BAD_CONFIG');
  });

  it('removing an unknown id fails with GUESTNET_NOT_FOUND, exit 1', async () => {
    const r = await cli('hostfwd', 'remove', '--control', `unix:${ctl}`, '42');
    expect(r.code).toBe(1);
    expect(r.err).toContain('GUESTNET_NOT_FOUND: no hostfwd with id 42');
  });

  it('prints stats as JSON', async () => {
    const r = await cli('stats', '--control', `unix:${ctl}`);
    expect(r.code).toBe(0);
    const st = JSON.parse(r.out);
    expect(st).toMatchObject({ protocol: 'stream', backend_type: 'slirp', clients_connected: 1 });
    expect(st.clients[0].backend.txFrames).toBeGreaterThanOrEqual(2);
  });

  it('says what to do when nothing listens on the control socket', async () => {
    const r = await cli('stats', '--control', `unix:${join(dir, 'nothing.ctl')}`);
    expect(r.code).toBe(1);
    expect(r.err).toContain('GUESTNET_IO: cannot reach the control socket');
    expect(r.err).toContain('hint:');
  });
});
