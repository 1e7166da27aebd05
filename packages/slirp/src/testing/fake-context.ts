/**
 * A fake StackContext for the service-module tests (DHCP, DHCPv6, DNS relay, TFTP, ICMPv6/NDP):
 * the configuration resolved from slirp options, a manual clock driving a real TimerQueue, and a
 * real FrameOut whose frames are copied into an array, with drops, counts and learned neighbours
 * recorded for assertions. Output caps are set as SlirpBackend sets them before negotiation (no
 * vnet header, MTU from the config), so frames are fully checksummed.
 *
 * It does not: run a stack (no ARP/NDP tables, no NAT), or give host I/O unless the test passes
 * one (the default is an empty object, so a module that reaches for the host fails loudly).
 */
import { ipv6ToString, macToString } from '@guestnet/wire';
import { resolveSlirpConfig } from '../config.ts';
import type { SlirpConfig } from '../config.ts';
import type { StackContext } from '../context.ts';
import type { HostIo } from '@guestnet/core';
import { FrameOut } from '@guestnet/core';
import { ManualClock, TimerQueue } from '@guestnet/core';

/** The guest MAC most tests use (52:54:00:12:34:56, QEMU's default). */
export const FAKE_GUEST_MAC = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56);

export interface FakeContextOptions {
  /** Host I/O for modules that open sockets or read files; default `{}` (none). */
  io?: HostIo;
  /** What the neighbour lookups (FrameOut's macFor4/macFor6) answer; default FAKE_GUEST_MAC. */
  guestMac?: Uint8Array;
  /** What ctx.guestIp4() answers; default 0 (no lease seen). */
  guestIp4?: number;
  /** The manual clock's start time in ms; default ManualClock's own. */
  start?: number;
}

export interface FakeContext {
  cfg: SlirpConfig;
  ctx: StackContext;
  out: FrameOut;
  /** Every frame delivered to the guest, copied (FrameOut's view is only valid during delivery). */
  frames: Uint8Array[];
  /** Drops by reason, from ctx.drop and from FrameOut. */
  drops: Map<string, number>;
  /** ctx.count events by name. */
  counts: Map<string, number>;
  /** ctx.learn4 calls, MAC copied. */
  learned4: Array<{ ip: number; mac: Uint8Array }>;
  /** ctx.learn6 calls as `"<address> <mac>"` strings, which read well in a failed assertion. */
  learned6: string[];
  clock: ManualClock;
  timers: TimerQueue;
}

/** A fresh fake context; `options` are slirp options as resolveSlirpConfig takes them. */
export function fakeContext(options: Record<string, unknown> = {}, fake: FakeContextOptions = {}): FakeContext {
  const cfg = resolveSlirpConfig(options);
  const guestMac = fake.guestMac ?? FAKE_GUEST_MAC;
  const guestIp4 = fake.guestIp4 ?? 0;
  const frames: Uint8Array[] = [];
  const drops = new Map<string, number>();
  const counts = new Map<string, number>();
  const learned4: FakeContext['learned4'] = [];
  const learned6: string[] = [];
  const clock = fake.start === undefined ? new ManualClock() : new ManualClock(fake.start);
  const timers = new TimerQueue(clock);
  const out = new FrameOut({
    deliver: (f) => frames.push(f.slice()),
    drop: (r) => drops.set(r, (drops.get(r) ?? 0) + 1),
    gatewayMac: cfg.gatewayMac,
    macFor4: () => guestMac,
    macFor6: () => guestMac,
  });
  out.setCaps({ vnetHdrLen: 0, csum: false, tso4: false, tso6: false, mtu: cfg.mtu });
  const ctx: StackContext = {
    cfg,
    io: fake.io ?? ({} as HostIo),
    timers,
    out,
    drop: (r, n = 1) => drops.set(r, (drops.get(r) ?? 0) + n),
    count: (r, n = 1) => counts.set(r, (counts.get(r) ?? 0) + n),
    learn4: (ip, mac) => learned4.push({ ip, mac: mac.slice() }),
    learn6: (ip, mac) => learned6.push(`${ipv6ToString(ip)} ${macToString(mac)}`),
    guestIp4: () => guestIp4,
    log: () => {},
  };
  return { cfg, ctx, out, frames, drops, counts, learned4, learned6, clock, timers };
}
