/**
 * The netmap backend's options. The schema drives config validation and `guestnet help netmap`.
 *
 * The port is the bhyve positional word: `vale0:1` / `netmap:vale0:1` (a VALE switch port) or
 * `pipe0{1` / `pipe0}1` (the master / slave end of a netmap pipe); in key form `port=vale0:1`.
 */
import type { OptionSpec } from '@guestnet/core';

export const netmapOptions: readonly OptionSpec[] = [
  {
    name: 'port',
    type: 'string',
    positional: true,
    doc: 'valeNAME:PORT (port 0..253 or a name; the switch is created on demand) or a pipe end NAME{ID (master) / NAME}ID (slave)',
  },
  { name: 'slots', type: 'int', min: 2, max: 65536, default: 1024, doc: 'slots per ring (each direction has one ring; one slot stays reserved)' },
  { name: 'bufsize', type: 'int', min: 64, max: 65528, default: 2048, doc: 'bytes per ring buffer, a multiple of 8; larger frames span several slots (NS_MOREFRAG)' },
  { name: 'mtu', type: 'int', min: 68, max: 65535, default: 1500, doc: 'IP MTU announced to the guest (frames up to 65535 + headers pass either way)' },
  {
    name: 'switch',
    type: 'path',
    doc: 'unix socket of a switch served by `guestnet switch NAME` (default: ${XDG_RUNTIME_DIR:-/tmp}/guestnet-vale/NAME.sock if it exists)',
  },
  {
    name: 'attach',
    type: 'enum',
    values: ['auto', 'local', 'remote'],
    default: 'auto',
    doc: 'auto: join a served switch of that name if one is running, else the in-process one; local: in-process only; remote: a served switch or fail',
  },
];
