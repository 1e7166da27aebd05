/**
 * The tap backend's options, as the config-string parser validates them and `guestnet help tap`
 * prints them. Names follow QEMU's `-netdev tap` where QEMU has the option.
 */
import type { OptionSpec } from '@guestnet/core';

export const MAX_QUEUES = 16;

export const tapOptions: readonly OptionSpec[] = [
  {
    name: 'ifname',
    type: 'string',
    positional: true,
    doc: 'TAP device name (bhyve: `tap0`). Attached if it exists (a persistent tap owned by your user works without root), created otherwise; empty: the kernel picks tapN',
  },
  { name: 'fd', type: 'int', min: 0, doc: 'an already-open TAP fd (as QEMU accepts); guestnet owns it from then on and closes it' },
  {
    name: 'vnet_hdr',
    type: 'bool',
    default: false,
    doc: 'open with IFF_VNET_HDR: the guest may negotiate a 10/12-byte virtio-net header and csum/tso4/tso6/ecn offloads (TUNSETVNETHDRSZ + TUNSETOFFLOAD)',
  },
  { name: 'queues', type: 'int', min: 1, max: MAX_QUEUES, default: 1, doc: 'IFF_MULTI_QUEUE: open N queues (N fds, each polled); tx is spread by flow hash' },
  { name: 'mac', type: 'mac', doc: 'set the host-side interface MAC address (needs CAP_NET_ADMIN)' },
  { name: 'mtu', type: 'int', min: 68, max: 65535, doc: 'set the interface MTU (needs CAP_NET_ADMIN); default: leave it (1500 for a new tap)' },
  { name: 'script', type: 'path', doc: 'run `script IFNAME` after the device is opened (QEMU ifup script); `no` or empty: none' },
  { name: 'downscript', type: 'path', doc: 'run `downscript IFNAME` before the device is closed; `no` or empty: none' },
  {
    name: 'netns',
    type: 'string',
    doc: 'create/attach the device inside this network namespace (a path like /run/netns/NAME, a name under /run/netns, or a PID); the fd is used from ours',
  },
  { name: 'up', type: 'bool', doc: 'bring the link up; default: up when permitted (a persistent tap without CAP_NET_ADMIN is left as it is)' },
];
