/**
 * Stack tier, a bad link: the fault injector (from @guestnet/core) between the guest and the
 * backend drops 5%, duplicates and reorders frames in both directions; TCP through the NAT must
 * still deliver every byte, in order, both ways.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { withFaultInjector } from '@guestnet/core';
import { parseIpv4Addr } from '@guestnet/wire';
import { Cleanups, closeServer, guestWith, listenTcp, sha } from './testing/harness.ts';

const GW = parseIpv4Addr('10.0.2.2')!;

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

describe('slirp stack: lossy link', () => {
  it('moves 10 MB each way through 5% loss, duplication and reordering in both directions, byte-exact', async () => {
    let faults: ReturnType<typeof withFaultInjector> | null = null;
    const { guest, backend } = await guestWith(cleanups, {}, {
      wrap: (b) => (faults = withFaultInjector(b, { seed: 0x5eed, drop: 0.05, duplicate: 0.05, reorder: 0.05, reorderFlushMs: 20 })),
    });
    // DHCP and ARP have no retransmission in the scripted guest: configure statically, as a
    // guest with a fixed address would (the stack learns it from the first packet's source).
    guest.ip = parseIpv4Addr('10.0.2.15')!;
    guest.gatewayMac = backend.cfg.gatewayMac;
    const up = randomBytes(10 * 1024 * 1024);
    const down = randomBytes(10 * 1024 * 1024);
    const got: Buffer[] = [];
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('data', (d) => got.push(d));
      s.on('end', () => s.end(down));
    });
    const port = await listenTcp(server);
    cleanups.add(() => closeServer(server));
    const s = guest.connect(GW, port);
    await s.until(() => s.established, 'established', 20_000);
    s.write(up);
    s.end();
    await s.until(() => s.peerFin, 'all data and FIN from the host', 90_000);
    expect(Buffer.concat(got).length).toBe(up.length);
    expect(sha(Buffer.concat(got))).toBe(sha(up));
    expect(s.received).toBe(down.length);
    expect(sha(s.data())).toBe(sha(down));
    expect(guest.badChecksums).toEqual([]);
    const extra = faults!.stats().extra!;
    expect(extra['fault-dropped']).toBeGreaterThan(100);
    expect(extra['fault-duplicated']).toBeGreaterThan(100);
    expect(extra['fault-reordered']).toBeGreaterThan(100);
    expect(backend.stats().drops['internal-error']).toBeUndefined();
  }, 120_000);
});
