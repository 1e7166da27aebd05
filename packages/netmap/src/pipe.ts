/**
 * netmap pipes: a point-to-point link made of one port region and no switch.
 *
 * netmap names the two ends of pipe N of a port `X{N` (master) and `X}N` (slave); here `pipe0{1`
 * and `pipe0}1` name the master and slave of pipe 1 of "pipe0". The master opens the region as
 * its 'port' side (it sends on the tx ring, receives on the rx ring); the slave opens the same
 * region as its 'peer' side, so the master's tx ring is the slave's rx ring and vice versa. Both
 * ends are NetmapPortBackends: flow control is the ring's (a full ring answers `queued` and the
 * reader's release kicks the writer), nothing is dropped while the reader drains.
 *
 * Not done: netmap's zero-copy buffer swap between the ends (one copy in, one copy out), pipes
 * hanging off a real interface or a VALE port, virtio-net header conversion (both ends must use
 * the same header length).
 */
import { ErrorCode, GuestnetError } from '@guestnet/core';
import { DEFAULT_GEOMETRY, formatPortRegion, openPortRegion, portRegionBytes, type PortRegion, type RingGeometry } from './ring.ts';
import { portDoorbells } from './doorbell.ts';
import { NetmapPortBackend, type NetmapPortOptions } from './port-backend.ts';

export type PipeEnd = 'master' | 'slave';

export interface PipeName {
  /** The pipe's base name ("pipe0"). */
  name: string;
  /** The pipe id after the brace ("1"). */
  id: string;
  end: PipeEnd;
}

const NAME_RE = /^([A-Za-z0-9_.:-]{1,64})([{}])([A-Za-z0-9_]{1,32})$/;

/** Parse `NAME{ID` / `NAME}ID`; null if the string is not a pipe name. */
export function parsePipeName(s: string): PipeName | null {
  const m = NAME_RE.exec(s);
  if (!m) return null;
  return { name: m[1]!, id: m[3]!, end: m[2] === '{' ? 'master' : 'slave' };
}

/** A pipe's shared region; hand `mem` to another thread and open the other end there. */
export interface PipeRegion {
  readonly mem: SharedArrayBuffer;
  readonly byteOffset: number;
  readonly geometry: RingGeometry;
}

/** Allocate and format the region of a new pipe. */
export function createPipeRegion(geometry: RingGeometry = DEFAULT_GEOMETRY): PipeRegion {
  const mem = new SharedArrayBuffer(portRegionBytes(geometry));
  formatPortRegion(mem, geometry);
  return { mem, byteOffset: 0, geometry: { ...geometry } };
}

/** The view of a pipe region for one end. */
export function openPipeEnd(pipe: { mem: SharedArrayBuffer; byteOffset?: number }, end: PipeEnd): PortRegion {
  return openPortRegion(pipe.mem, pipe.byteOffset ?? 0, end === 'master' ? 'port' : 'peer');
}

/** A NetBackend for one end of a pipe (any thread that holds the region's SharedArrayBuffer). */
export function openPipeBackend(pipe: { mem: SharedArrayBuffer; byteOffset?: number }, end: PipeEnd, opts: NetmapPortOptions = {}): NetmapPortBackend {
  const region = openPipeEnd(pipe, end);
  return new NetmapPortBackend(region, portDoorbells(region), opts);
}

/** Both ends of a new pipe, in this thread: `[master, slave]`. */
export function createPipe(geometry: RingGeometry = DEFAULT_GEOMETRY, opts: NetmapPortOptions = {}): [NetmapPortBackend, NetmapPortBackend] {
  const p = createPipeRegion(geometry);
  return [openPipeBackend(p, 'master', opts), openPipeBackend(p, 'slave', opts)];
}

export function badPipeName(s: string): GuestnetError {
  return new GuestnetError(ErrorCode.BadConfig, `'${s}' is not a netmap pipe name`, { hint: 'a pipe end is NAME{ID (master) or NAME}ID (slave), e.g. pipe0{1' });
}
