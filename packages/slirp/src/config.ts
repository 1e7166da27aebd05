/**
 * Turns validated slirp options into the numbers the stack runs on: addresses as 32-bit integers
 * and 16-byte arrays, host parts (".2") resolved against `net`, limits in bytes and ms.
 * Inconsistent settings (a gateway outside `net`, a DHCP range running past the broadcast address)
 * are control-path errors with a hint.
 */
import { ErrorCode, GuestnetError, parseAllow, parseUpstream, type GuestFwdRule, type HostFwdRule } from '@guestnet/core';
import { ipv4PrefixMask, ipv4ToString, parseIpv4Addr, parseIpv6Addr, parseMac } from '@guestnet/wire';

export interface SlirpConfig {
  ipv4: boolean;
  ipv6: boolean;
  /** Network address, prefix length and mask. */
  net: number;
  prefixLen: number;
  mask: number;
  /** Gateway ("host") and virtual DNS addresses. */
  host: number;
  dns: number;
  dhcpStart: number;
  dhcpCount: number;
  broadcast: number;
  gatewayMac: Uint8Array;
  ipv6Prefix: Uint8Array;
  ipv6PrefixLen: number;
  ipv6Host: Uint8Array;
  ipv6Dns: Uint8Array;
  /** fe80::2 style link-local address the router advertisements come from. */
  ipv6LinkLocal: Uint8Array;
  restrict: boolean;
  loopback: boolean;
  hostname: string;
  domainname: string;
  dnssearch: string[];
  tftpRoot: string;
  tftpServerName: string;
  bootfile: string;
  hostfwd: HostFwdRule[];
  guestfwd: GuestFwdRule[];
  mtu: number;
  dnsUpstream: { address: string; port: number; family: 4 | 6 }[];
  allow: { family: 4 | 6; addr: Uint8Array; prefixLen: number }[];
  maxTcpFlows: number;
  maxUdpFlows: number;
  maxFlowBuffer: number;
  maxTotalBuffer: number;
  maxReassembly: number;
  udpTimeoutMs: number;
}

/** Dotted quad → u32, or null. */
export const ip4 = parseIpv4Addr;
/** u32 → dotted quad. */
export const ip4str = ipv4ToString;
/** IPv6 text → 16 bytes, or null. */
export const ip6 = parseIpv6Addr;

function bad(message: string, hint?: string): GuestnetError {
  return new GuestnetError(ErrorCode.BadConfig, message, hint ? { hint } : {});
}

function cidr4(s: string): { addr: number; prefixLen: number } {
  const [a, p] = s.split('/');
  const addr = ip4(a ?? '');
  const prefixLen = p === undefined ? 24 : Number(p);
  if (addr === null || !Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > 30) {
    throw bad(`net=${s} is not an IPv4 network`, 'write it as 10.0.2.0/24 (prefix length 0..30)');
  }
  return { addr, prefixLen };
}

/** Resolve ".2", "2" or "10.0.2.2" against the network. */
function hostIn(value: string, net: number, prefixLen: number, what: string): number {
  const mask = ipv4PrefixMask(prefixLen);
  let addr: number | null;
  if (/^\.?\d+$/.test(value)) addr = (net | Number(value.replace('.', ''))) >>> 0;
  else addr = ip4(value);
  if (addr === null) throw bad(`${what}=${value} is not an IPv4 address`);
  if (((addr & mask) >>> 0) !== net) throw bad(`${what}=${value} is outside net=${ip4str(net)}/${prefixLen}`, 'pick an address inside the guest network');
  return addr;
}

function mac(s: string): Uint8Array {
  const m = parseMac(s);
  if (!m) throw bad(`mac=${s} is not a MAC address`);
  return m;
}

export function resolveSlirpConfig(o: Record<string, unknown>): SlirpConfig {
  const { addr: netRaw, prefixLen } = cidr4(String(o.net ?? '10.0.2.0/24'));
  const mask = ipv4PrefixMask(prefixLen);
  const net = (netRaw & mask) >>> 0;
  const host = hostIn(String(o.host ?? '.2'), net, prefixLen, 'host');
  const dns = hostIn(String(o.dns ?? '.3'), net, prefixLen, 'dns');
  const dhcpStart = hostIn(String(o.dhcpstart ?? '.15'), net, prefixLen, 'dhcpstart');
  const broadcast = (net | ~mask) >>> 0;
  const dhcpCount = Math.max(0, Math.min(16, broadcast - dhcpStart));
  if (dhcpCount === 0) throw bad('dhcpstart leaves no room for leases before the broadcast address');
  const [p6, l6] = String(o['ipv6-net'] ?? 'fec0::/64').split('/');
  const ipv6Prefix = ip6(p6 ?? '');
  const ipv6PrefixLen = l6 === undefined ? 64 : Number(l6);
  if (!ipv6Prefix || !(ipv6PrefixLen >= 1 && ipv6PrefixLen <= 126)) throw bad(`ipv6-net=${String(o['ipv6-net'])} is not an IPv6 prefix`);
  const in6 = (v: unknown, dflt: number, what: string): Uint8Array => {
    const a = v === undefined || v === '' ? null : ip6(String(v));
    if (v !== undefined && v !== '' && !a) throw bad(`${what}=${String(v)} is not an IPv6 address`);
    if (a) return a;
    const r = ipv6Prefix.slice();
    r[15] = dflt;
    return r;
  };
  const ll = new Uint8Array(16);
  ll[0] = 0xfe;
  ll[1] = 0x80;
  ll[15] = 2;
  const mtu = Number(o.mtu ?? 1500);
  return {
    ipv4: o.ipv4 !== false,
    ipv6: o.ipv6 !== false,
    net,
    prefixLen,
    mask,
    host,
    dns,
    dhcpStart,
    dhcpCount,
    broadcast,
    gatewayMac: mac(String(o.mac ?? '52:55:0a:00:02:02')),
    ipv6Prefix,
    ipv6PrefixLen,
    ipv6Host: in6(o['ipv6-host'], 2, 'ipv6-host'),
    ipv6Dns: in6(o['ipv6-dns'], 3, 'ipv6-dns'),
    ipv6LinkLocal: ll,
    restrict: o.restrict === true,
    loopback: o.loopback !== false,
    hostname: String(o.hostname ?? ''),
    domainname: String(o.domainname ?? ''),
    dnssearch: ((o.dnssearch as string[] | undefined) ?? []).filter(Boolean),
    tftpRoot: String(o.tftp ?? ''),
    tftpServerName: String(o['tftp-server-name'] ?? ''),
    bootfile: String(o.bootfile ?? ''),
    hostfwd: (o.hostfwd as HostFwdRule[] | undefined) ?? [],
    guestfwd: (o.guestfwd as GuestFwdRule[] | undefined) ?? [],
    mtu,
    dnsUpstream: ((o['dns-upstream'] as string[] | undefined) ?? []).filter(Boolean).map(parseUpstream),
    allow: ((o.allow as string[] | undefined) ?? []).filter(Boolean).map(parseAllow),
    maxTcpFlows: Number(o['max-tcp-flows'] ?? 4096),
    maxUdpFlows: Number(o['max-udp-flows'] ?? 1024),
    maxFlowBuffer: Number(o['max-flow-buffer'] ?? 1 << 20),
    maxTotalBuffer: Number(o['max-total-buffer'] ?? 256 << 20),
    maxReassembly: Number(o['max-reassembly'] ?? 1 << 20),
    udpTimeoutMs: Number(o['udp-timeout'] ?? 60) * 1000,
  };
}
