/**
 * Stack tier, connection teardown through the NAT: half-close in each direction, resets in each
 * direction, and nothing (host sockets, timers, flows) left behind after `close()`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { parseIpv4Addr } from '@guestnet/wire';
import { Cleanups, bindUdp, closeServer, guestWith, listenTcp, sha, sleep } from './testing/harness.ts';

const GW = parseIpv4Addr('10.0.2.2')!;
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

async function server(handler: (s: net.Socket) => void): Promise<number> {
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    handler(s);
  });
  const port = await listenTcp(srv);
  cleanups.add(() => closeServer(srv));
  return port;
}

describe('slirp stack: teardown', () => {
  it('relays a guest half-close: the host sees end, keeps sending, then closes', async () => {
    const events: string[] = [];
    const port = await server((s) => {
      s.on('data', (d) => events.push(`data:${d.toString()}`));
      s.on('end', () => {
        events.push('end');
        // The guest's write side is closed; ours is still open.
        s.write('reply after your FIN');
        setTimeout(() => s.end('bye'), 20);
      });
    });
    const { guest } = await guestWith(cleanups);
    await guest.dhcp();
    await guest.arp(GW);
    const s = guest.connect(GW, port);
    await s.until(() => s.established, 'established');
    s.write(enc('request'));
    s.end();
    await s.until(() => s.peerFin, 'host FIN');
    expect(events).toEqual(['data:request', 'end']);
    expect(dec(s.data())).toBe('reply after your FIN' + 'bye');
    await s.until(() => s.closedReason !== null, 'closed', 10_000);
    expect(s.closedReason).toBe('fin');
  });

  it('relays a host half-close: the guest sees FIN, keeps sending, and the host receives it all', async () => {
    const got: Buffer[] = [];
    let ended = false;
    const port = await server((s) => {
      s.end('early FIN');
      s.on('data', (d) => got.push(d));
      s.on('end', () => (ended = true));
    });
    const { guest } = await guestWith(cleanups);
    await guest.dhcp();
    await guest.arp(GW);
    const s = guest.connect(GW, port);
    await s.until(() => s.peerFin, 'host FIN');
    expect(dec(s.data())).toBe('early FIN');
    const big = randomBytes(512 * 1024);
    s.write(big);
    s.end();
    await guest.until(() => ended, 'host sees the guest FIN after all data');
    expect(sha(Buffer.concat(got))).toBe(sha(big));
    await s.until(() => s.closedReason !== null, 'closed');
    expect(s.closedReason).toBe('fin');
  });

  it('resets the guest connection when the host server resets mid-transfer', async () => {
    const port = await server((s) => {
      s.write(randomBytes(64 * 1024));
      setTimeout(() => s.resetAndDestroy(), 30);
    });
    const { guest, backend } = await guestWith(cleanups);
    await guest.dhcp();
    await guest.arp(GW);
    const s = guest.connect(GW, port);
    await s.until(() => s.closedReason !== null, 'reset from the host');
    expect(s.closedReason).toBe('reset');
    expect(s.received).toBeGreaterThan(0);
    expect(backend.stats().extra?.['tcp-host-reset']).toBe(1);
    await guest.until(() => backend.stats().flows.tcp === 0, 'flow removed');
  });

  it('closes the host socket when the guest resets (the server sees an error or close)', async () => {
    let serverSaw = '';
    const port = await server((s) => {
      s.on('error', (e) => (serverSaw ||= (e as NodeJS.ErrnoException).code ?? 'error'));
      s.on('end', () => (serverSaw ||= 'end'));
      s.on('close', () => (serverSaw ||= 'close'));
      s.write('hello');
    });
    const { guest, backend } = await guestWith(cleanups);
    await guest.dhcp();
    await guest.arp(GW);
    const s = guest.connect(GW, port);
    await s.until(() => s.received === 5, 'greeting');
    s.abort();
    await guest.until(() => serverSaw !== '', 'host socket closed');
    expect(['ECONNRESET', 'close', 'end']).toContain(serverSaw);
    expect(backend.stats().flows.tcp).toBe(0);
  });

  it('leaves no host sockets, timers or flows behind after close()', async () => {
    const sink = dgram.createSocket('udp4');
    cleanups.add(() => sink.close());
    const uport = await bindUdp(sink);
    const port = await server((s) => {
      s.on('data', (d) => s.write(d));
    });
    await sleep(20);
    const before = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
    const { guest, backend } = await guestWith(cleanups);
    await guest.dhcp();
    await guest.arp(GW);
    const socks = [guest.connect(GW, port), guest.connect(GW, port), guest.connect(GW, port)];
    await Promise.all(socks.map((s) => s.until(() => s.established, 'established')));
    socks[0]!.write(enc('x'));
    await socks[0]!.until(() => socks[0]!.received === 1, 'echo');
    for (let i = 0; i < 5; i++) guest.sendUdp(GW, uport, enc('u'), 9000 + i);
    await guest.until(() => backend.stats().flows.udp === 5, 'udp flows');
    await sleep(20);
    expect(process.getActiveResourcesInfo().length).toBeGreaterThan(before.length);
    await guest.stop();
    expect(backend.stats().flows).toEqual({ tcp: 0, udp: 0 });
    await sleep(50);
    const after = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
    const count = (l: string[]) => l.reduce<Record<string, number>>((m, r) => ((m[r] = (m[r] ?? 0) + 1), m), {});
    // Nothing of a kind more than before the stack existed (a test-runner timer may have gone).
    const a = count(after);
    const b = count(before);
    for (const k of Object.keys(a)) expect({ [k]: a[k] }).toEqual({ [k]: Math.min(a[k]!, b[k] ?? 0) });
  });
});
