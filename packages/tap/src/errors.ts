/**
 * Mapping the addon's errno errors to GuestnetErrors a user can act on.
 *
 * The addon throws Errors shaped like Node's system errors: `code` (EPERM, ENOENT, …), `syscall`
 * (open, TUNSETIFF, setns, SIOCSIFMTU, …) and `path` (the device, namespace or interface). The
 * same errno means different things at different steps: ENOENT from opening the clone device
 * means "no /dev/net/tun" (GUESTNET_ENODEV), from opening a namespace "no such namespace".
 */
import { ErrorCode, GuestnetError, PermissionError } from '@guestnet/core';

export interface TapErrorContext {
  /** The interface concerned, when known. */
  ifname?: string;
  /** The network namespace path, when one was used. */
  netns?: string;
}

interface SysErr {
  code?: string;
  syscall?: string;
  path?: string;
  message?: string;
}

export const EPERM_HINT =
  'run as root (CAP_NET_ADMIN), or create a persistent tap owned by your user once: ' +
  'sudo ip tuntap add dev tap0 mode tap user $USER && sudo ip link set tap0 up — then use ifname=tap0';

/** Turn an error from the addon into a GuestnetError (GuestnetErrors pass through unchanged). */
export function mapTapError(err: unknown, ctx: TapErrorContext = {}): GuestnetError {
  if (err instanceof GuestnetError) return err;
  const e = (err ?? {}) as SysErr;
  const code = e.code ?? '';
  const syscall = e.syscall ?? '';
  const dev = ctx.ifname ? `tap device '${ctx.ifname}'` : 'a tap device';
  const where = ctx.netns ? ` in network namespace ${ctx.netns}` : '';
  const detail = e.message ?? String(err);
  const opts = { cause: err };

  const nsStep = syscall === 'setns' || syscall === 'open netns' || syscall.startsWith('open /proc');
  if (nsStep) {
    if (code === 'EPERM' || code === 'EACCES') {
      return new PermissionError(`cannot enter network namespace ${ctx.netns ?? e.path ?? ''}: ${detail}`, 'entering a network namespace needs CAP_SYS_ADMIN: run as root', err);
    }
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return new GuestnetError(ErrorCode.NotFound, `network namespace ${ctx.netns ?? e.path ?? ''} does not exist`, {
        ...opts,
        hint: 'give a path such as /run/netns/NAME (ip netns add NAME), /proc/PID/ns/net, or a PID',
      });
    }
    return new GuestnetError(ErrorCode.Io, `cannot enter network namespace ${ctx.netns ?? ''}: ${detail}`, opts);
  }

  if (syscall === 'open' && (code === 'ENOENT' || code === 'ENODEV' || code === 'ENXIO' || code === 'ENOTDIR')) {
    return new GuestnetError(ErrorCode.ENODEV, `no TUN/TAP support: ${detail}`, {
      ...opts,
      hint: 'load the tun module (modprobe tun) or create the device node (mknod /dev/net/tun c 10 200); in a container, pass --device /dev/net/tun',
    });
  }
  if (code === 'EPERM' || code === 'EACCES') {
    if (syscall === 'open') {
      return new PermissionError(`cannot open ${e.path ?? '/dev/net/tun'}: ${detail}`, 'make /dev/net/tun readable and writable for your user (mode 0666 is the default), or run as root', err);
    }
    if (syscall === 'TUNSETIFF') return new PermissionError(`not allowed to create or attach ${dev}${where}: ${detail}`, EPERM_HINT, err);
    return new PermissionError(`not allowed to configure ${dev}${where} (${syscall}): ${detail}`, 'configuring an interface needs CAP_NET_ADMIN: run as root, or configure the persistent tap once with ip(8) and leave mac=/mtu=/up= out', err);
  }
  if (syscall === 'TUNSETIFF') {
    if (code === 'EBUSY') {
      return new GuestnetError(ErrorCode.Exists, `${dev} is already open by another process`, {
        ...opts,
        hint: 'close the other user, or pick another ifname; only multi-queue devices (queues=N) can be opened several times',
      });
    }
    if (code === 'EINVAL') {
      return new GuestnetError(ErrorCode.BadConfig, `cannot attach ${dev}${where}: ${detail}`, {
        ...opts,
        hint: 'the name is taken by a device that is not a tap, or the tap was created with other flags (multi_queue must match queues=N>1); ifname must be shorter than 16 characters',
      });
    }
  }
  if (code === 'ENODEV' && syscall.startsWith('SIOC')) {
    return new GuestnetError(ErrorCode.NotFound, `interface '${ctx.ifname ?? e.path ?? ''}' does not exist${where}`, opts);
  }
  if (code === 'EINVAL' && syscall.startsWith('SIOC')) {
    return new GuestnetError(ErrorCode.BadConfig, `the kernel rejected ${syscall} on ${dev}${where}: ${detail}`, opts);
  }
  if (syscall === 'TUNSETOFFLOAD' || syscall === 'TUNSETVNETHDRSZ') {
    return new GuestnetError(ErrorCode.Unsupported, `the kernel rejected ${syscall} on ${dev}: ${detail}`, opts);
  }
  return new GuestnetError(ErrorCode.Io, `${dev}${where}: ${detail}`, opts);
}
