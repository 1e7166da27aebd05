/**
 * @guestnet/uip — the kvmtool-style minimal user-mode backend. `backend=uip`.
 */
import type { BackendDescriptor } from '@guestnet/core';
import { uipOptions } from './options.ts';
import { UipBackend } from './uip.ts';

export { UipBackend, type UipRuntime } from './uip.ts';
export { uipOptions } from './options.ts';
export { resolveUipConfig, type UipConfig } from './config.ts';

export const descriptor: BackendDescriptor = {
  name: 'uip',
  aliases: [],
  summary: 'kvmtool-style minimal user-mode proxy: DHCP of one fixed address, ARP/ping of the gateway, TCP/UDP proxied to host sockets, hostfwd — no root',
  options: uipOptions,
  create: (options) => new UipBackend(options),
};
