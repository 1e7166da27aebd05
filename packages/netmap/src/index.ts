/**
 * @guestnet/netmap — netmap-style shared-memory rings and a VALE-style learning switch.
 * `backend=vale0:1` (also `netmap:vale0:1`, `pipe0{1`, `pipe0}1`).
 *
 * In one thread a config string is enough: the switch is created on demand. Between worker
 * threads use the explicit API (createLocalSwitch → createPortRegion → postMessage → openPortBackend).
 * Between processes a switch served by `guestnet switch NAME` is joined through its unix socket.
 */
import type { BackendDescriptor } from '@guestnet/core';
import { netmapOptions } from './options.ts';
import { NetmapBackend } from './netmap-backend.ts';

export {
  NS_MOREFRAG,
  MAX_FRAME_LEN,
  DEFAULT_GEOMETRY,
  RING_MAGIC,
  RING_VERSION,
  RegionOffset,
  RingOffset,
  RegionState,
  NetmapRing,
  portRegionBytes,
  formatPortRegion,
  openPortRegion,
  copyBytes,
  type RingGeometry,
  type PortRegion,
  type RegionSide,
  type RingErrors,
} from './ring.ts';
export { atomicsDoorbell, portDoorbells, switchDoorbells, type Doorbell } from './doorbell.ts';
export {
  ValeSwitch,
  MAX_PORTS,
  DEFAULT_AGING_MS,
  DEFAULT_STALL_MS,
  type ValeSwitchOptions,
  type PortHandle,
  type SwitchStats,
  type SwitchPortStats,
} from './switch.ts';
export { NetmapPortBackend, type NetmapPortOptions } from './port-backend.ts';
export { createPipe, createPipeRegion, openPipeBackend, openPipeEnd, parsePipeName, type PipeEnd, type PipeName, type PipeRegion } from './pipe.ts';
export {
  LocalSwitch,
  createLocalSwitch,
  getLocalSwitch,
  joinLocalSwitch,
  localSwitchNames,
  openPortBackend,
  openLocalPipeEnd,
  parseValePortName,
  type PortRegionHandle,
  type ValePortName,
} from './local.ts';
export { NetmapBackend } from './netmap-backend.ts';
export { netmapOptions } from './options.ts';

export const descriptor: BackendDescriptor = {
  name: 'netmap',
  aliases: ['vale'],
  summary: 'netmap-style shared-memory port on a VALE learning switch (vale0:1) or a netmap pipe (pipe0{1); across threads and processes',
  options: netmapOptions,
  create: (options) => new NetmapBackend(options),
};
