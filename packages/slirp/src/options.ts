/**
 * slirp's options: libslirp/QEMU `-netdev user` names and defaults, plus guestnet's safety and
 * resource-limit options. The schema drives validation, `guestnet help slirp` and the README.
 */
import type { OptionSpec } from '@guestnet/core';

export const slirpOptions: readonly OptionSpec[] = [
  { name: 'net', type: 'ipv4-cidr', default: '10.0.2.0/24', doc: 'guest IPv4 network (addr/prefix)', aliases: ['ipv4-net'] },
  { name: 'host', type: 'ipv4-or-host', default: '.2', doc: 'gateway address inside net (".2" or a full address); maps to host loopback unless loopback=off' },
  { name: 'dns', type: 'ipv4-or-host', default: '.3', doc: 'virtual DNS server address; queries are forwarded to dns-upstream' },
  { name: 'dhcpstart', type: 'ipv4-or-host', default: '.15', doc: 'first address handed out by DHCP (16 leases)' },
  { name: 'ipv4', type: 'bool', default: true, doc: 'enable IPv4' },
  { name: 'ipv6', type: 'bool', default: true, doc: 'enable IPv6 (NDP, router advertisements with SLAAC + RDNSS, stateless DHCPv6)' },
  { name: 'ipv6-net', type: 'ipv6-cidr', default: 'fec0::/64', doc: 'guest IPv6 prefix advertised for SLAAC', aliases: ['ipv6-prefix'] },
  { name: 'ipv6-host', type: 'ipv6', default: '', doc: 'IPv6 gateway address (default: ::2 in ipv6-net)' },
  { name: 'ipv6-dns', type: 'ipv6', default: '', doc: 'IPv6 virtual DNS server address (default: ::3 in ipv6-net)' },
  { name: 'restrict', type: 'bool', default: false, doc: 'isolate the guest: only virtual services (DHCP, DNS, TFTP, NDP) and hostfwd/guestfwd peers are reachable; everything else, the gateway\'s host-loopback mapping included, is dropped and counted (as libslirp)' },
  { name: 'loopback', type: 'bool', default: true, doc: 'map the gateway address to host loopback (127.0.0.1 / ::1); off drops traffic to the gateway that no service answers' },
  { name: 'hostname', type: 'string', default: '', doc: 'hostname handed to the guest by DHCP (option 12)' },
  { name: 'domainname', type: 'string', default: '', doc: 'domain name handed to the guest by DHCP (option 15)' },
  { name: 'dnssearch', type: 'string', repeatable: true, default: [], doc: 'DNS search domain (DHCP option 119, DHCPv6 option 24); repeat for several' },
  { name: 'tftp', type: 'path', default: '', doc: 'serve this directory read-only over TFTP at the gateway address' },
  { name: 'tftp-server-name', type: 'string', default: '', doc: 'TFTP server name in DHCP option 66' },
  { name: 'bootfile', type: 'string', default: '', doc: 'boot file name in DHCP (BOOTP file field and option 67)' },
  { name: 'hostfwd', type: 'hostfwd', repeatable: true, default: [], doc: 'forward a host port into the guest: [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport (empty hostaddr = 127.0.0.1, not QEMU\'s any-address)' },
  { name: 'guestfwd', type: 'guestfwd', repeatable: true, default: [], doc: 'forward guest connections to a virtual address: tcp:addr:port-cmd:COMMAND or tcp:addr:port-HOST:PORT' },
  { name: 'mtu', type: 'int', min: 68, max: 65521, default: 1500, doc: 'IP MTU of the guest link' },
  { name: 'mac', type: 'mac', default: '52:55:0a:00:02:02', doc: 'the gateway\'s Ethernet address' },
  { name: 'dns-upstream', type: 'list', default: [], doc: 'resolvers to forward DNS to, ";"-separated (addr or addr#port); default: nameservers from /etc/resolv.conf' },
  { name: 'allow', type: 'list', default: [], doc: 'outbound allow-list of CIDRs (";"-separated) the NAT may reach; empty = everything (unless restrict=on)' },
  { name: 'max-tcp-flows', type: 'int', min: 1, max: 1_000_000, default: 4096, doc: 'concurrent TCP connections; further SYNs are refused with RST and counted' },
  { name: 'max-udp-flows', type: 'int', min: 1, max: 1_000_000, default: 1024, doc: 'concurrent UDP flows (host sockets); further datagrams are dropped and counted' },
  { name: 'max-flow-buffer', type: 'int', min: 4096, max: 64 * 1024 * 1024, default: 1024 * 1024, doc: 'bytes buffered per TCP flow and direction' },
  { name: 'max-total-buffer', type: 'int', min: 65536, max: 4 * 1024 * 1024 * 1024, default: 256 * 1024 * 1024, doc: 'bytes buffered by all flows together' },
  { name: 'max-reassembly', type: 'int', min: 0, max: 64 * 1024 * 1024, default: 1024 * 1024, doc: 'bytes held for IPv4/IPv6 fragment reassembly (0 disables reassembly)' },
  { name: 'udp-timeout', type: 'int', min: 1, max: 86400, default: 60, doc: 'seconds an idle UDP flow keeps its host socket' },
];
