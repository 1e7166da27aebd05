/**
 * Turns validated uip options into numbers: addresses as u32, MACs as bytes, limits in bytes and
 * ms. The link is the /24 around host_ip (kvmtool hands out 255.255.255.0); guest_ip must be in
 * it. The DHCP fields (`DhcpServerConfig`) describe a pool of exactly one address, guest_ip.
 */
import { ErrorCode, GuestnetError, parseAllow, parseUpstream, type AllowCidr, type DhcpServerConfig, type HostFwdRule, type UpstreamAddr } from '@guestnet/core';
import { ipv4ToString, parseIpv4Addr, parseMac } from '@guestnet/wire';

export interface UipConfig extends DhcpServerConfig {
  readonly guestIp: number;
  readonly hostIp: number;
  readonly guestMac: Uint8Array;
  readonly hostMac: Uint8Array;
  /** Filled at init from dns-upstream or the host's resolvers (see uip.ts). */
  dnsServers: number[];
  readonly hostfwd: HostFwdRule[];
  readonly dnsUpstream: UpstreamAddr[];
  readonly allow: AllowCidr[];
  readonly maxTcpFlows: number;
  readonly maxUdpFlows: number;
  readonly maxFlowBuffer: number;
  readonly udpTimeoutMs: number;
}

function bad(message: string, hint: string): GuestnetError {
  return new GuestnetError(ErrorCode.BadConfig, message, { hint });
}

function addr(o: Record<string, unknown>, key: string, dflt: string): number {
  const v = String(o[key] ?? dflt);
  const a = parseIpv4Addr(v);
  if (a === null) throw bad(`${key}=${v} is not an IPv4 address`, `write it like ${dflt}`);
  return a;
}

function mac(o: Record<string, unknown>, key: string, dflt: string): Uint8Array {
  const v = String(o[key] || dflt);
  const m = parseMac(v);
  if (!m) throw bad(`${key}=${v} is not a MAC address`, `write it like ${dflt}`);
  return m;
}

export function resolveUipConfig(o: Record<string, unknown>): UipConfig {
  const hostIp = addr(o, 'host_ip', '192.168.33.1');
  const guestIp = addr(o, 'guest_ip', '192.168.33.15');
  const mask = 0xffffff00;
  const net = (hostIp & mask) >>> 0;
  const broadcast = (net | 0xff) >>> 0;
  if (((guestIp & mask) >>> 0) !== net || guestIp === hostIp || guestIp === net || guestIp === broadcast) {
    throw bad(`guest_ip=${ipv4ToString(guestIp)} is not a usable address in ${ipv4ToString(net)}/24 beside host_ip=${ipv4ToString(hostIp)}`, 'pick both in one /24, e.g. guest_ip=192.168.33.15,host_ip=192.168.33.1');
  }
  if (hostIp === net || hostIp === broadcast) throw bad(`host_ip=${ipv4ToString(hostIp)} is the network or broadcast address`, 'use e.g. 192.168.33.1');
  return {
    guestIp,
    hostIp,
    guestMac: mac(o, 'guest_mac', '02:15:15:15:15:15'),
    hostMac: mac(o, 'host_mac', '02:01:01:01:01:01'),
    host: hostIp,
    net,
    mask,
    broadcast,
    dhcpStart: guestIp,
    dhcpCount: 1,
    dns: hostIp,
    dnsServers: [],
    hostname: '',
    domainname: '',
    dnssearch: [],
    mtu: Number(o.mtu ?? 1500),
    tftpRoot: '',
    tftpServerName: '',
    bootfile: '',
    hostfwd: (o.hostfwd as HostFwdRule[] | undefined) ?? [],
    dnsUpstream: ((o['dns-upstream'] as string[] | undefined) ?? []).filter(Boolean).map(parseUpstream),
    allow: ((o.allow as string[] | undefined) ?? []).filter(Boolean).map(parseAllow),
    maxTcpFlows: Number(o['max-tcp-flows'] ?? 1024),
    maxUdpFlows: Number(o['max-udp-flows'] ?? 256),
    maxFlowBuffer: Number(o['max-flow-buffer'] ?? 256 * 1024),
    udpTimeoutMs: Number(o['udp-timeout'] ?? 60) * 1000,
  };
}
