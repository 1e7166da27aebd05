/**
 * Where guest traffic may go: the address map (gateway → host loopback, DNS address → upstream
 * resolver, guestfwd addresses → their targets) and the filters (restrict=on, the outbound
 * allow-list, martians). Used by the TCP and UDP NAT when a flow opens.
 *
 * The allow-list applies to outside destinations only: the gateway mapping (loopback=), the DNS
 * relay and guestfwd targets are configured explicitly and are not filtered by it.
 *
 * restrict=on (libslirp's `restrict`) isolates the guest: only the virtual services (DHCP, DNS,
 * TFTP, NDP), guestfwd targets and hostfwd peers are reachable. The gateway's loopback mapping is
 * not a virtual service — it reaches every service on the host's loopback — so with restrict it
 * is dropped too (counted `restrict`), as libslirp drops everything but guestfwd in tcp_input.
 */
import { ipv4InSubnet, ipv4ToString, ipv6Equal, ipv6ToString, parseIpv4Addr, parseIpv6Addr, isIpv6Multicast, isIpv6LinkLocal, isIpv6Loopback, isIpv6Unspecified } from '@guestnet/wire';
import type { GuestFwdRule } from '@guestnet/core';
import type { SlirpConfig } from './config.ts';
import type { TcpTarget } from './tcp-nat.ts';

export interface PolicyHooks {
  drop(reason: string): void;
  /** An upstream resolver for TCP DNS to the virtual DNS address. */
  dnsUpstream(family: 4 | 6): { address: string; port: number; family: 4 | 6 } | null;
}

function prefixMatch(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  const full = bits >>> 3;
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const rem = bits & 7;
  if (rem === 0) return true;
  const m = (0xff << (8 - rem)) & 0xff;
  return (a[full]! & m) === (b[full]! & m);
}

export class Policy {
  private readonly cfg: SlirpConfig;
  private readonly hooks: PolicyHooks;
  private readonly guestfwd4 = new Map<number, GuestFwdRule>();
  /** The guestfwd addresses alone: isOurs4 runs for every guest packet (no iteration there). */
  private readonly guestfwdAddrs4 = new Set<number>();

  constructor(cfg: SlirpConfig, hooks: PolicyHooks) {
    this.cfg = cfg;
    this.hooks = hooks;
    for (const g of cfg.guestfwd) {
      const a = parseIpv4Addr(g.guestAddr);
      if (a !== null) {
        this.guestfwd4.set(a * 65536 + g.guestPort, g);
        this.guestfwdAddrs4.add(a);
      }
    }
  }

  /** Virtual IPv4 addresses that answer ARP and ICMP echo. */
  isOurs4(a: number): boolean {
    return a === this.cfg.host || a === this.cfg.dns || (this.guestfwdAddrs4.size > 0 && this.guestfwdAddrs4.has(a));
  }

  isOurs6(a: Uint8Array): boolean {
    const c = this.cfg;
    return ipv6Equal(a, c.ipv6Host) || ipv6Equal(a, c.ipv6Dns) || ipv6Equal(a, c.ipv6LinkLocal);
  }

  private inNet4(a: number): boolean {
    return ipv4InSubnet(a, this.cfg.net, this.cfg.prefixLen);
  }

  private allowed4(a: number): boolean {
    const list = this.cfg.allow;
    if (list.length === 0) return true;
    for (const e of list) {
      if (e.family !== 4) continue;
      const n = ((e.addr[0]! << 24) | (e.addr[1]! << 16) | (e.addr[2]! << 8) | e.addr[3]!) >>> 0;
      if (ipv4InSubnet(a, n, e.prefixLen)) return true;
    }
    return false;
  }

  private allowed6(a: Uint8Array): boolean {
    const list = this.cfg.allow;
    if (list.length === 0) return true;
    for (const e of list) if (e.family === 6 && prefixMatch(a, e.addr, e.prefixLen)) return true;
    return false;
  }

  /** Route a new TCP flow; null → answer RST, 'drop' → silently dropped (counted here). */
  tcp(family: 4 | 6, dst4: number, dst6: Uint8Array | null, port: number): TcpTarget | null | 'drop' {
    const c = this.cfg;
    if (family === 4) {
      const g = this.guestfwd4.get(dst4 * 65536 + port);
      if (g) {
        const t = g.target;
        if (t.kind === 'cmd') return { kind: 'cmd', command: t.command };
        if (t.kind === 'unix') return { kind: 'unix', path: t.path };
        return { kind: 'inet', address: t.addr, port: t.port, family: t.addr.includes(':') ? 6 : 4 };
      }
      if (dst4 === c.host) {
        if (!c.loopback) return this.refuse('gateway-no-service');
        if (c.restrict) return this.dropped('restrict');
        return { kind: 'inet', address: '127.0.0.1', port, family: 4 };
      }
      if (dst4 === c.dns) {
        if (port !== 53) return this.refuse('dns-address-port');
        const up = this.hooks.dnsUpstream(4) ?? this.hooks.dnsUpstream(6);
        return up ? { kind: 'inet', ...up } : this.refuse('dns-no-upstream');
      }
      const m = this.martian4(dst4);
      if (m) return m;
      if (!this.allowed4(dst4)) return this.refuse('not-allowed');
      return { kind: 'inet', address: ipv4ToString(dst4), port, family: 4 };
    }
    const d = dst6!;
    if (ipv6Equal(d, c.ipv6Host)) {
      if (!c.loopback) return this.refuse('gateway-no-service');
      if (c.restrict) return this.dropped('restrict');
      return { kind: 'inet', address: '::1', port, family: 6 };
    }
    if (ipv6Equal(d, c.ipv6Dns)) {
      if (port !== 53) return this.refuse('dns-address-port');
      const up = this.hooks.dnsUpstream(6) ?? this.hooks.dnsUpstream(4);
      return up ? { kind: 'inet', ...up } : this.refuse('dns-no-upstream');
    }
    const m = this.martian6(d);
    if (m) return m;
    if (!this.allowed6(d)) return this.refuse('not-allowed');
    return { kind: 'inet', address: ipv6ToString(d), port, family: 6 };
  }

  /** Route a UDP datagram to a non-service destination. */
  udp(family: 4 | 6, dst4: number, dst6: Uint8Array | null): { address: string; family: 4 | 6 } | 'drop' {
    const c = this.cfg;
    if (family === 4) {
      if (dst4 === c.host) {
        if (!c.loopback) return this.dropped('gateway-no-service');
        if (c.restrict) return this.dropped('restrict');
        return { address: '127.0.0.1', family: 4 };
      }
      if (dst4 === c.dns) return this.dropped('dns-address-port');
      const m = this.martian4(dst4);
      if (m) return 'drop';
      if (!this.allowed4(dst4)) return this.dropped('not-allowed');
      return { address: ipv4ToString(dst4), family: 4 };
    }
    const d = dst6!;
    if (ipv6Equal(d, c.ipv6Host)) {
      if (!c.loopback) return this.dropped('gateway-no-service');
      if (c.restrict) return this.dropped('restrict');
      return { address: '::1', family: 6 };
    }
    if (ipv6Equal(d, c.ipv6Dns)) return this.dropped('dns-address-port');
    if (this.martian6(d)) return 'drop';
    if (!this.allowed6(d)) return this.dropped('not-allowed');
    return { address: ipv6ToString(d), family: 6 };
  }

  /** What the guest sees as the source of a datagram from a host address. */
  reverse(address: string, family: 4 | 6): { v4: number; v6: Uint8Array | null } {
    if (family === 4) {
      const a = parseIpv4Addr(address) ?? 0;
      return { v4: (a >>> 24) === 127 ? this.cfg.host : a, v6: null };
    }
    const a = parseIpv6Addr(address);
    if (!a || isIpv6Loopback(a)) return { v4: 0, v6: this.cfg.ipv6Host };
    return { v4: 0, v6: a };
  }

  private martian4(a: number): 'drop' | null {
    if (this.inNet4(a)) return this.dropped('no-such-host');
    const top = a >>> 24;
    if (top === 0 || top === 127 || top >= 224) return this.dropped('martian');
    if (this.cfg.restrict) return this.dropped('restrict');
    return null;
  }

  private martian6(a: Uint8Array): 'drop' | null {
    if (prefixMatch(a, this.cfg.ipv6Prefix, this.cfg.ipv6PrefixLen)) return this.dropped('no-such-host');
    if (isIpv6Multicast(a) || isIpv6LinkLocal(a) || isIpv6Loopback(a) || isIpv6Unspecified(a)) return this.dropped('martian');
    if (this.cfg.restrict) return this.dropped('restrict');
    return null;
  }

  private refuse(reason: string): null {
    this.hooks.drop(reason);
    return null;
  }

  private dropped(reason: string): 'drop' {
    this.hooks.drop(reason);
    return 'drop';
  }
}
