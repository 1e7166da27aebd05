/**
 * What uip's proxies share: configuration, host I/O, the timer queue, frame output, counters,
 * and the one routing decision of this backend — where a guest destination goes on the host.
 */
import type { FrameOut, HostAddr, HostIo, TimerQueue } from '@guestnet/core';
import type { UipConfig } from './config.ts';

export interface UipContext {
  readonly cfg: UipConfig;
  readonly io: HostIo;
  readonly timers: TimerQueue;
  readonly out: FrameOut;
  drop(reason: string, n?: number): void;
  count(name: string, n?: number): void;
  log(level: 'debug' | 'info' | 'warn', msg: string): void;
  /**
   * The host endpoint for a guest destination: host_ip → 127.0.0.1 (host_ip:53 → the DNS
   * upstream when one is redirected there), anything else as is. Null (counted) when the
   * allow-list refuses it or the address cannot be a unicast peer.
   */
  target(dst: number, dport: number): HostAddr | null;
  /** True while the guest asked us to stop delivering (pauseRecv). */
  readonly rxPaused: boolean;
}
