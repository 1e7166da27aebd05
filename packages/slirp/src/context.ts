/**
 * What the stack's modules share: configuration, host I/O, the timer queue, frame output,
 * counters and neighbour learning. Each module (DHCP, DNS relay, TFTP, NDP, UDP/TCP NAT) gets a
 * StackContext and nothing else, so it can be tested with a fake one.
 */
import type { SlirpConfig } from './config.ts';
import type { HostIo } from '@guestnet/core';
import type { FrameOut } from '@guestnet/core';
import type { TimerQueue } from '@guestnet/core';

export interface StackContext {
  readonly cfg: SlirpConfig;
  readonly io: HostIo;
  readonly timers: TimerQueue;
  readonly out: FrameOut;
  /** Count a dropped packet by reason (shows in stats().drops). */
  drop(reason: string, n?: number): void;
  /** Count an event (shows in stats().extra). */
  count(name: string, n?: number): void;
  /** Remember that `ip` is at `mac` (DHCP lease, ARP, IP source). */
  learn4(ip: number, mac: Uint8Array): void;
  learn6(ip: Uint8Array, mac: Uint8Array): void;
  /** The guest's IPv4 address: the last DHCP lease, or the last source address seen; 0 if none. */
  guestIp4(): number;
  /** Log a line (control-path events: upstream failures, refused flows). */
  log(level: 'debug' | 'info' | 'warn', msg: string): void;
}
