/**
 * @guestnet/tap — the Linux TAP backend (`backend=tap,ifname=tap0`, bhyve `tap0`, alias `vmnet`)
 * and link helpers for `guestnet attach`. Importing this module never loads the native addon;
 * creating a backend does (and fails with a coded GuestnetError if it cannot).
 */
import type { BackendDescriptor } from '@guestnet/core';
import { tapOptions } from './options.ts';
import { TapBackend } from './tap-backend.ts';

export {
  TapBackend,
  resolveNetnsPath,
  parseMac,
  runScript,
  RX_SLOT_SIZE,
  RX_BATCH,
  TX_QUEUE_FRAMES,
  type TapConfig,
  type TapInternals,
} from './tap-backend.ts';
export { tapOptions, MAX_QUEUES } from './options.ts';
export { mapTapError, EPERM_HINT, type TapErrorContext } from './errors.ts';
export { flowHash } from './flow-hash.ts';
export { configureLink, getLink, type LinkConfig, type LinkOptions, type LinkInfo } from './link.ts';
export {
  loadAddon,
  DEFAULT_ADDON_PATH,
  type NativeTap,
  type NativePoller,
  type NativePollerOptions,
  type OpenTapOptions,
  type OnFrames,
} from './addon.ts';

export const descriptor: BackendDescriptor = {
  name: 'tap',
  aliases: ['vmnet'],
  summary: 'Linux TAP device (QEMU -netdev tap, bhyve tapN): vnet_hdr offloads, multi-queue, netns',
  options: tapOptions,
  create: (options) => new TapBackend(options),
};
