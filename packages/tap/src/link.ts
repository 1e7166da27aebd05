/**
 * Interface configuration helpers for `guestnet attach` (the reverse direction: a TAP device
 * inside a network namespace, connected to a backend): read a link, set MTU/MAC/up, give it an
 * IPv4 address and a default route. All by ioctl through the addon, inside the namespace when
 * `netns` is given (the calling thread enters it only for those syscalls), so no ip(8) is needed.
 *
 * Errors are GuestnetErrors (GUESTNET_EPERM without CAP_NET_ADMIN/CAP_SYS_ADMIN, GUESTNET_NOT_FOUND
 * for a missing interface or namespace, …). Not here: IPv6 addresses (the kernel configures
 * SLAAC itself once the link is up), DNS (resolv.conf inside the namespace is the caller's).
 */
import { type LinkInfo, type NativeTap, loadAddon } from './addon.ts';
import { mapTapError } from './errors.ts';
import { parseMac, resolveNetnsPath } from './tap-backend.ts';

export type { LinkInfo } from './addon.ts';

export interface LinkConfig {
  ifname: string;
  /** A namespace path, name under /run/netns, or PID; absent: our own namespace. */
  netns?: string | number;
  mtu?: number;
  mac?: string;
  /** Bring the link up (true) or down (false); absent: leave it. */
  up?: boolean;
  /** Primary IPv4 address, e.g. { addr: '10.0.2.100', prefixLen: 24 }. */
  ipv4?: { addr: string; prefixLen: number };
  /** Add a default IPv4 route via this gateway (after `ipv4`; an existing default route is kept). */
  gateway4?: string;
}

export interface LinkOptions {
  addon?: NativeTap;
  addonPath?: string;
}

/** Read an interface's flags, MTU, MAC and index. */
export function getLink(ifname: string, netns?: string | number, opts: LinkOptions = {}): LinkInfo {
  const a = opts.addon ?? loadAddon(opts.addonPath);
  const ns = netns === undefined ? undefined : resolveNetnsPath(netns);
  try {
    return a.getLink(ifname, ns);
  } catch (err) {
    throw mapTapError(err, { ifname, ...(ns !== undefined ? { netns: ns } : {}) });
  }
}

/**
 * Apply `cfg` in this order: MAC, MTU, up, IPv4 address, default route (a route needs the link
 * up and an address on the gateway's subnet).
 */
export function configureLink(cfg: LinkConfig, opts: LinkOptions = {}): void {
  const a = opts.addon ?? loadAddon(opts.addonPath);
  const ns = cfg.netns === undefined ? undefined : resolveNetnsPath(cfg.netns);
  const ctx = { ifname: cfg.ifname, ...(ns !== undefined ? { netns: ns } : {}) };
  try {
    if (cfg.mac !== undefined) a.setMac(cfg.ifname, parseMac(cfg.mac), ns);
    if (cfg.mtu !== undefined) a.setMtu(cfg.ifname, cfg.mtu, ns);
    if (cfg.up !== undefined) a.setLinkUp(cfg.ifname, cfg.up, ns);
    if (cfg.ipv4 !== undefined) a.setIPv4(cfg.ifname, cfg.ipv4.addr, cfg.ipv4.prefixLen, ns);
    if (cfg.gateway4 !== undefined) {
      try {
        a.addDefaultRoute4(cfg.ifname, cfg.gateway4, ns);
      } catch (err) {
        if ((err as { code?: string }).code !== 'EEXIST') throw err;
      }
    }
  } catch (err) {
    throw mapTapError(err, ctx);
  }
}
