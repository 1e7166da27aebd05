/**
 * hostfwd host sides beyond plain IPv4: a unix socket (QEMU's `unix:PATH-…`) and an IPv6 host
 * address ([::1]), each forwarding into a guest TCP server, plus runtime removal releasing the
 * host side.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseIpv4Addr } from '@guestnet/wire';
import type { HostFwdRule } from '@guestnet/core';
import { Cleanups, guestWith } from './testing/harness.ts';

const GW = parseIpv4Addr('10.0.2.2')!;
const cleanups = new Cleanups();
afterEach(() => cleanups.run());

function readAll(connect: () => net.Socket, send: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = connect();
    let text = '';
    c.on('connect', () => c.write(send));
    c.on('data', (d) => (text += d.toString()));
    c.on('end', () => {
      c.end();
      resolve(text);
    });
    c.on('error', reject);
  });
}

async function guestEchoServer(port: number) {
  const { guest, backend } = await guestWith(cleanups);
  await guest.dhcp();
  await guest.arp(GW);
  guest.listen(port, (s) => {
    s.until(() => s.received > 0, 'request').then(
      () => {
        s.write(new TextEncoder().encode(`guest got: ${new TextDecoder().decode(s.data())}`));
        s.end();
      },
      () => {},
    );
  });
  return { guest, backend };
}

describe('slirp hostfwd host sides', () => {
  it('forwards a unix socket on the host into a guest server, and removes the socket file on remove', async () => {
    const { backend } = await guestEchoServer(22);
    const dir = mkdtempSync(join(tmpdir(), 'gn-hostfwd-'));
    cleanups.add(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'ssh.sock');
    const rule: HostFwdRule = { proto: 'tcp', host: { kind: 'unix', path }, guestAddr: '', guestPort: 22 };
    const bound = await backend.hostfwd.add(rule);
    expect(bound.host).toEqual({ kind: 'unix', path });
    expect(existsSync(path)).toBe(true);
    expect(await readAll(() => net.connect(path), 'hello')).toBe('guest got: hello');
    expect(await backend.hostfwd.remove({ proto: 'tcp', host: { kind: 'unix', path } })).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    await expect(readAll(() => net.connect(path), 'x')).rejects.toMatchObject({ code: expect.stringMatching(/ENOENT|ECONNREFUSED/) });
  });

  it('forwards an IPv6 host address ([::1]) into the guest', async () => {
    const { backend } = await guestEchoServer(8080);
    const bound = await backend.hostfwd.add({ proto: 'tcp', host: { kind: 'inet', addr: '::1', port: 0 }, guestAddr: '', guestPort: 8080 });
    const port = bound.host.kind === 'inet' ? bound.host.port : 0;
    expect(port).toBeGreaterThan(0);
    expect(await readAll(() => net.connect({ host: '::1', port }), 'v6')).toBe('guest got: v6');
    // The forward listens on ::1 only, not on IPv4 loopback.
    await expect(readAll(() => net.connect({ host: '127.0.0.1', port }), 'x')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
