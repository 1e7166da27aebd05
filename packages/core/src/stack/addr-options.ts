/**
 * Parsing of the address-list options the user-mode backends (slirp, uip) share:
 * `dns-upstream=ADDR[#PORT];…` (resolvers to use instead of /etc/resolv.conf) and
 * `allow=CIDR;…` (the outbound allow-list). Control path: malformed entries throw
 * GUESTNET_BAD_CONFIG with a hint.
 */
import { ipv4InSubnet, parseIpv4Addr, parseIpv6Addr } from '@guestnet/wire';
import { ErrorCode, GuestnetError } from '../errors.ts';

export interface UpstreamAddr {
  address: string;
  port: number;
  family: 4 | 6;
}

export interface AllowCidr {
  family: 4 | 6;
  addr: Uint8Array;
  prefixLen: number;
}

function bad(message: string, hint: string): GuestnetError {
  return new GuestnetError(ErrorCode.BadConfig, message, { hint });
}

/** One `dns-upstream` entry: `127.0.0.1`, `127.0.0.1#5353`, `[::1]:53`. */
export function parseUpstream(s: string): UpstreamAddr {
  const m = /^\[?([^\]#]+?)\]?(?:#(\d+)|\]:(\d+))?$/.exec(s.trim());
  const address = m?.[1] ?? '';
  const port = Number(m?.[2] ?? m?.[3] ?? 53);
  const family = parseIpv4Addr(address) !== null ? 4 : parseIpv6Addr(address) !== null ? 6 : 0;
  if (!family || port < 1 || port > 65535) throw bad(`dns-upstream entry '${s}' is not an address`, 'write 127.0.0.1, 127.0.0.1#5353 or [::1]:53');
  return { address, port, family };
}

/** One `allow` entry: an IPv4 or IPv6 CIDR (a bare address is a /32 or /128). */
export function parseAllow(s: string): AllowCidr {
  const [a, p] = s.trim().split('/');
  const v4 = parseIpv4Addr(a ?? '');
  if (v4 !== null) {
    const prefixLen = p === undefined ? 32 : Number(p);
    if (!(prefixLen >= 0 && prefixLen <= 32)) throw bad(`allow entry '${s}' has a bad prefix length`, 'IPv4 prefix lengths are 0..32');
    return { family: 4, addr: Uint8Array.of(v4 >>> 24, (v4 >>> 16) & 255, (v4 >>> 8) & 255, v4 & 255), prefixLen };
  }
  const v6 = parseIpv6Addr(a ?? '');
  if (v6) {
    const prefixLen = p === undefined ? 128 : Number(p);
    if (!(prefixLen >= 0 && prefixLen <= 128)) throw bad(`allow entry '${s}' has a bad prefix length`, 'IPv6 prefix lengths are 0..128');
    return { family: 6, addr: v6, prefixLen };
  }
  throw bad(`allow entry '${s}' is not a CIDR`, 'write e.g. 127.0.0.0/8;::1/128');
}

/** Whether IPv4 `ip` is inside one of the IPv4 entries of `allow` (an empty list allows all). */
export function allowed4(allow: readonly AllowCidr[], ip: number): boolean {
  if (allow.length === 0) return true;
  for (const c of allow) {
    if (c.family !== 4) continue;
    const net = ((c.addr[0]! << 24) | (c.addr[1]! << 16) | (c.addr[2]! << 8) | c.addr[3]!) >>> 0;
    if (ipv4InSubnet(ip, net, c.prefixLen)) return true;
  }
  return false;
}
