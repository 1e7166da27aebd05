/**
 * uip's options: kvmtool's `-n mode=user` names and defaults (guest_ip, host_ip, guest_mac,
 * host_mac), plus what guestnet adds to every user-mode backend: hostfwd, a safe DNS override,
 * an outbound allow-list and resource limits. The schema drives validation and `guestnet help uip`.
 */
import type { OptionSpec } from '@guestnet/core';

export const uipOptions: readonly OptionSpec[] = [
  { name: 'guest_ip', type: 'ipv4', default: '192.168.33.15', doc: 'the address DHCP hands the guest (kvmtool default); the link is a /24 around host_ip' },
  { name: 'host_ip', type: 'ipv4', default: '192.168.33.1', doc: 'the gateway address: answers ARP and ping, serves DHCP, and maps to host loopback (127.0.0.1)' },
  { name: 'guest_mac', type: 'mac', default: '02:15:15:15:15:15', doc: 'the guest NIC\'s MAC, used until the guest\'s own source MAC has been seen (kvmtool default)' },
  { name: 'host_mac', type: 'mac', default: '02:01:01:01:01:01', doc: 'the gateway\'s Ethernet address (kvmtool default)' },
  { name: 'hostfwd', type: 'hostfwd', repeatable: true, default: [], doc: 'forward a host port into the guest: [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport (empty hostaddr = 127.0.0.1)' },
  { name: 'dns-upstream', type: 'list', default: [], doc: 'resolvers to hand the guest instead of /etc/resolv.conf\'s, ";"-separated (addr or addr#port); a loopback one or one on a port other than 53 is offered as host_ip and reached through it' },
  { name: 'allow', type: 'list', default: [], doc: 'outbound allow-list of IPv4 CIDRs (";"-separated) the proxy may connect/send to (after host_ip → 127.0.0.1); empty = everything' },
  { name: 'mtu', type: 'int', min: 576, max: 1500, default: 1500, doc: 'IP MTU of the guest link (segments are at most mtu - 40 bytes of TCP payload)' },
  { name: 'max-tcp-flows', type: 'int', min: 1, max: 1_000_000, default: 1024, doc: 'concurrent TCP connections; further SYNs are refused with RST and counted' },
  { name: 'max-udp-flows', type: 'int', min: 1, max: 1_000_000, default: 256, doc: 'concurrent UDP flows (host sockets); further datagrams are dropped and counted' },
  { name: 'max-flow-buffer', type: 'int', min: 4096, max: 64 * 1024 * 1024, default: 256 * 1024, doc: 'bytes buffered per TCP flow and direction before the host socket is paused / the guest window closes' },
  { name: 'udp-timeout', type: 'int', min: 1, max: 86400, default: 60, doc: 'seconds an idle UDP flow keeps its host socket' },
];
