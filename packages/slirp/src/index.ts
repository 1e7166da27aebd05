/**
 * @guestnet/slirp — user-mode NAT (libslirp semantics) in TypeScript. `backend=slirp` / `user`.
 */
import type { BackendDescriptor } from '@guestnet/core';
import { slirpOptions } from './options.ts';
import { SlirpBackend } from './slirp.ts';

export { SlirpBackend, type SlirpRuntime } from './slirp.ts';
export { slirpOptions } from './options.ts';
export { resolveSlirpConfig, type SlirpConfig } from './config.ts';
export type { HostIo, HostTcp, HostUdp, TcpHandlers, UdpHandlers, TcpListener, UdpListener, HostAddr } from '@guestnet/core';
export { createNodeHostIo, parseResolvConf } from '@guestnet/core/node';
export { ManualClock, realClock, type Clock } from '@guestnet/core';

export const descriptor: BackendDescriptor = {
  name: 'slirp',
  aliases: ['user'],
  summary: 'user-mode NAT (libslirp semantics): DHCP, DNS, TCP/UDP NAT, hostfwd, IPv6, TFTP — no root',
  options: slirpOptions,
  create: (options) => new SlirpBackend(options),
};
