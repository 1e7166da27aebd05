/**
 * Stack tier, guestfwd: connections from the guest to a virtual address (10.0.2.100) go to a
 * command's stdin/stdout or to a host address, as QEMU's `guestfwd=` does.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseIpv4Addr } from '@guestnet/wire';
import type { GuestFwdRule } from '@guestnet/core';
import { Cleanups, echoServer, guestWith } from './testing/harness.ts';

const FWD = parseIpv4Addr('10.0.2.100')!;
const GW = parseIpv4Addr('10.0.2.2')!;
const text = (b: Uint8Array) => new TextDecoder().decode(b);

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

describe('slirp stack: guestfwd', () => {
  it('answers ARP for the guestfwd address and connects the guest to a command (cat echoes)', async () => {
    const rule: GuestFwdRule = { proto: 'tcp', guestAddr: '10.0.2.100', guestPort: 1234, target: { kind: 'cmd', command: 'cat' } };
    const { guest } = await guestWith(cleanups, { guestfwd: [rule] });
    await guest.dhcp();
    await guest.arp(FWD);
    expect(Array.from(guest.arpReplies.get(FWD)!)).toEqual([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
    const s = guest.connect(FWD, 1234);
    await s.until(() => s.established || s.closedReason !== null, 'connected to the command');
    expect(s.closedReason).toBeNull();
    s.write(new TextEncoder().encode('hello guestfwd\n'));
    s.end();
    await s.until(() => s.peerFin, 'the command exits after EOF');
    expect(text(s.data())).toBe('hello guestfwd\n');
    expect(guest.badChecksums).toEqual([]);
  });

  it('connects the guest to a host address (127.0.0.1:port) through 10.0.2.100:5678', async () => {
    const echo = await echoServer(cleanups);
    const rule: GuestFwdRule = { proto: 'tcp', guestAddr: '10.0.2.100', guestPort: 5678, target: { kind: 'inet', addr: '127.0.0.1', port: echo.port } };
    const { guest } = await guestWith(cleanups, { guestfwd: [rule] });
    await guest.dhcp();
    await guest.arp(GW);
    await guest.arp(FWD);
    const s = guest.connect(FWD, 5678);
    await s.until(() => s.established, 'connected');
    s.write(new TextEncoder().encode('ping through guestfwd'));
    await s.until(() => s.received >= 21, 'echo');
    expect(text(s.data())).toBe('ping through guestfwd');
    s.end();
    await s.until(() => s.peerFin, 'FIN');
  });

  it('does not answer ARP for an address that is neither the gateway, DNS nor a guestfwd', async () => {
    const { guest, backend } = await guestWith(cleanups, { guestfwd: [{ proto: 'tcp', guestAddr: '10.0.2.100', guestPort: 1, target: { kind: 'cmd', command: 'true' } }] });
    await guest.dhcp();
    await expect(guest.arp(parseIpv4Addr('10.0.2.101')!, 300).then(() => 'answered', () => 'silent')).resolves.toBe('silent');
    expect(backend.stats().drops['internal-error']).toBeUndefined();
  });
});
