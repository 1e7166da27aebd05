/**
 * Stack tier: several SlirpBackends in one process share nothing — each guest gets its own
 * 10.0.2.15, its own flow table and its own counters.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseIpv4Addr } from '@guestnet/wire';
import { Cleanups, echoServer, guestWith } from './testing/harness.ts';

const GW = parseIpv4Addr('10.0.2.2')!;

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

describe('slirp stack: multiple instances', () => {
  it('runs two independent stacks side by side: both guests lease .15 and their flows stay separate', async () => {
    const echo = await echoServer(cleanups);
    const a = await guestWith(cleanups);
    const b = await guestWith(cleanups);
    const [ackA, ackB] = await Promise.all([a.guest.dhcp(), b.guest.dhcp()]);
    expect(ackA.yiaddr).toBe(parseIpv4Addr('10.0.2.15'));
    expect(ackB.yiaddr).toBe(parseIpv4Addr('10.0.2.15'));
    await a.guest.arp(GW);
    await b.guest.arp(GW);
    const sa = [a.guest.connect(GW, echo.port), a.guest.connect(GW, echo.port)];
    const sb = b.guest.connect(GW, echo.port);
    await Promise.all([...sa, sb].map((s) => s.until(() => s.established, 'established')));
    expect(a.backend.stats().flows.tcp).toBe(2);
    expect(b.backend.stats().flows.tcp).toBe(1);
    // Same guest address and (first) guest port on both: each stack routes to its own guest.
    sa[0]!.write(new TextEncoder().encode('from A'));
    sb.write(new TextEncoder().encode('from B!'));
    await sa[0]!.until(() => sa[0]!.received === 6, 'echo A');
    await sb.until(() => sb.received === 7, 'echo B');
    expect(new TextDecoder().decode(sa[0]!.data())).toBe('from A');
    expect(new TextDecoder().decode(sb.data())).toBe('from B!');
    // Closing one stack leaves the other running.
    await a.guest.stop();
    expect(a.backend.stats().flows.tcp).toBe(0);
    sb.write(new TextEncoder().encode('+'));
    await sb.until(() => sb.received === 8, 'B still works');
    expect(b.backend.stats().flows.tcp).toBe(1);
    expect(b.backend.leases()).toHaveLength(1);
    sb.end();
  });
});
