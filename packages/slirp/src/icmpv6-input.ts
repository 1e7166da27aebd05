/**
 * ICMPv6 addressed to the virtual router: Neighbor Discovery (RFC 4861), router advertisements
 * for stateless autoconfiguration (RFC 4862) with DNS options (RFC 8106), echo (RFC 4443 §4), and
 * a Destination Unreachable builder (RFC 4443 §3.1) for the rest of the stack.
 *
 * Theory of operation
 * - The lead's IPv6 input has validated the IPv6 header and walked the extension headers; it
 *   calls `handle` for ICMPv6 to our unicast addresses, our solicited-node groups, all-nodes and
 *   all-routers. We verify the ICMPv6 checksum first (drop `icmp6-bad-checksum`).
 * - Our addresses are cfg.ipv6Host (gateway), cfg.ipv6Dns and cfg.ipv6LinkLocal (fe80::2). Only
 *   those are answered for: libslirp-style proxying of the whole prefix is unnecessary, because
 *   the RA's prefix is on-link only for the guest's own addresses in practice and everything
 *   else is routed to us anyway (we are the default router).
 * - NDP validation follows RFC 4861 §6.1.1 / §7.1.1 / §7.1.2: hop limit 255 (so the message was
 *   not forwarded), code 0, minimum length, well-formed options (parseNdp), target not multicast,
 *   no source link-layer option from ::, NS from :: only to a solicited-node group, NA with S=1
 *   not to multicast. Failures are dropped and counted (`ndp-bad-hop-limit`, `ndp-invalid`).
 * - NS for one of our addresses → NA with R, S and O set and the target link-layer option
 *   (cfg.gatewayMac), unicast to the solicitor (MAC from its SLLA option, else the frame's source
 *   MAC). NS from :: is Duplicate Address Detection (RFC 4862 §5.4): for an address of ours it
 *   means the guest tries to use it, a conflict: counted (`ndp-dad-conflict`), logged, and the
 *   address defended with an NA to all-nodes (S=0, RFC 4861 §7.2.4), which makes the guest's DAD
 *   fail as it should. DAD probes for other addresses are never answered.
 * - NS and NA from the guest teach the neighbour table (ctx.learn6) from their link-layer
 *   options. An NA claiming one of our addresses is counted as a conflict too.
 * - RS → RA unicast to the soliciting address (RFC 4861 §6.2.6 allows it when the source is not
 *   ::), or multicast to all-nodes for an RS from ::, at most one multicast RA per
 *   MIN_DELAY_BETWEEN_RAS (3 s). Unsolicited RAs go to all-nodes after `start()`: three initial
 *   ones at most 16 s apart (MAX_INITIAL_RTR_ADVERTISEMENTS / _INTERVAL, §6.2.4), then every
 *   200–600 s, randomised (MinRtrAdvInterval / MaxRtrAdvInterval, libslirp's values).
 * - RA contents (built once; the configuration does not change at run time): cur hop limit 64,
 *   M=0 (no stateful addresses), O=1 (stateless DHCPv6 serves DNS and the search list to clients
 *   that do not read RDNSS/DNSSL), router lifetime 1800 s, reachable/retrans 0 (unspecified);
 *   options SLLA, MTU (cfg.mtu), prefix information (cfg.ipv6Prefix / cfg.ipv6PrefixLen, L and A,
 *   valid 86400 s / preferred 14400 s as libslirp), RDNSS (cfg.ipv6Dns) and DNSSL (cfg.dnssearch,
 *   names dropped from the end until the RA fits the MTU). RDNSS/DNSSL lifetimes are 1800 s,
 *   3 × MaxRtrAdvInterval as RFC 8106 §5.1 recommends (libslirp uses 2×).
 * - Echo Request to one of our addresses → Echo Reply from that address with the same id,
 *   sequence and data, hop limit 64. Echo to all-nodes / all-routers / our solicited-node groups is
 *   answered from fe80::2 (or the gateway address for a global source), as RFC 4443 §4.2 allows.
 *   Echo to other addresses is not ours (the lead counts it as unsupported).
 * - `sendUnreachable6` quotes as much of the offending packet as keeps the error within 1280
 *   octets (RFC 4443 §2.4 (c)), never answers errors, multicast destinations or unspecified /
 *   multicast sources (§2.4 (e)), and is rate limited per stack (§2.4 (f): token bucket, burst 50,
 *   50/s). Port unreachable comes from the address the packet was sent to (as if that host had
 *   answered); other codes from the router (fe80::2 for a link-local source, else cfg.ipv6Host).
 *
 * Not done: Redirect (we are the only router), MLD (the lead does not deliver ff02::16; we never
 * need to know the guest's groups), NUD probes of our own (single guest: the neighbour table
 * falls back to the last seen MAC), route information options (RFC 4191), SEND.
 */
import {
  Icmpv6Type,
  Icmpv6View,
  Icmpv6DstUnreachableCode,
  ICMPV6_ERROR_MAX_INVOKING,
  IPV6_ALL_NODES,
  IPV6_ALL_ROUTERS,
  IpProto,
  Ipv6ExtInfo,
  Ipv6View,
  dnsNameWireLen,
  emitNdp,
  isIpv6LinkLocal,
  isIpv6Multicast,
  isIpv6SolicitedNode,
  isIpv6Unspecified,
  ndpFindOption,
  ndpLen,
  ndpOptionLen,
  parseNdp,
  walkIpv6Headers,
  type NdpOption,
  type NdpRepr,
} from '@guestnet/wire';
import type { SlirpConfig } from './config.ts';
import type { StackContext } from './context.ts';
import { TimerEntry } from '@guestnet/core';

/** libslirp's router advertisement constants (ip6_icmp.h), in the units RFC 4861 uses. */
export const RaParams = {
  MIN_INTERVAL_MS: 200_000,
  MAX_INTERVAL_MS: 600_000,
  /** RFC 4861 §10: MAX_INITIAL_RTR_ADVERT_INTERVAL, MAX_INITIAL_RTR_ADVERTISEMENTS. */
  INITIAL_INTERVAL_MS: 16_000,
  INITIAL_COUNT: 3,
  /** RFC 4861 §10: MIN_DELAY_BETWEEN_RAS. */
  MIN_DELAY_BETWEEN_RAS_MS: 3_000,
  CUR_HOP_LIMIT: 64,
  ROUTER_LIFETIME_S: 1800,
  VALID_LIFETIME_S: 86400,
  PREFERRED_LIFETIME_S: 14400,
  DNS_LIFETIME_S: 1800,
} as const;

/** 33:33:00:00:00:01, the Ethernet group of ff02::1. Never written to. */
const ALL_NODES_MAC = Uint8Array.of(0x33, 0x33, 0, 0, 0, 1);

/** The longest DNSSL option: its length field counts 8-octet units in one octet. */
const MAX_DNSSL_LEN = 255 * 8;

/** Echo Reply hop limit (a fresh packet from us, not an NDP message). */
const ECHO_HOP_LIMIT = 64;

/** One of our virtual IPv6 addresses if `a[off..+16)` is one, else null. */
export function ourIpv6Address(cfg: SlirpConfig, a: Uint8Array, off: number): Uint8Array | null {
  if (same16(cfg.ipv6Host, a, off)) return cfg.ipv6Host;
  if (same16(cfg.ipv6Dns, a, off)) return cfg.ipv6Dns;
  if (same16(cfg.ipv6LinkLocal, a, off)) return cfg.ipv6LinkLocal;
  return null;
}

function same16(ours: Uint8Array, b: Uint8Array, off: number): boolean {
  if (b.length < off + 16) return false;
  for (let i = 0; i < 16; i++) if (ours[i] !== b[off + i]) return false;
  return true;
}

/** True when `a` is the solicited-node group of one of our addresses. */
function ourSolicitedNode(cfg: SlirpConfig, a: Uint8Array, off: number): boolean {
  if (!isIpv6SolicitedNode(a, off)) return false;
  const low = (x: Uint8Array): boolean => x[13] === a[off + 13] && x[14] === a[off + 14] && x[15] === a[off + 15];
  return low(cfg.ipv6Host) || low(cfg.ipv6Dns) || low(cfg.ipv6LinkLocal);
}

export interface Icmpv6HandlerOptions {
  /** Uniform [0, 1) source for the RA interval (tests pass a fixed one). Default Math.random. */
  random?: () => number;
}

export class Icmpv6Handler {
  private readonly ctx: StackContext;
  private readonly random: () => number;
  private readonly view = new Icmpv6View();
  private readonly raTimer: TimerEntry;
  private raBody: Uint8Array | null = null;
  private initialLeft = 0;
  private lastMulticastRa = -Infinity;
  private closed = false;
  /** The guest's address copied out of its frame (the frame may be reused after handle()). */
  private readonly peer = new Uint8Array(16);
  private readonly peerMac = new Uint8Array(6);
  private scratch = new Uint8Array(1500);

  constructor(ctx: StackContext, opts: Icmpv6HandlerOptions = {}) {
    this.ctx = ctx;
    this.random = opts.random ?? Math.random;
    this.raTimer = new TimerEntry((now) => this.onRaTimer(now));
  }

  /** Begin unsolicited router advertisements: the first on the next timer tick. */
  start(): void {
    if (this.closed || !this.ctx.cfg.ipv6) return;
    this.initialLeft = RaParams.INITIAL_COUNT;
    this.ctx.timers.schedule(this.raTimer, this.ctx.timers.now());
  }

  /** Stop advertising; idempotent. `handle` ignores everything afterwards. */
  close(): void {
    this.closed = true;
    this.ctx.timers.cancel(this.raTimer);
  }

  /**
   * One ICMPv6 message for us: the IPv6 header at frame[ipOff], the ICMPv6 message at
   * frame[l4Off, l4Off+l4Len), `srcMac` the Ethernet source. The frame is not kept.
   */
  handle(frame: Uint8Array, ipOff: number, l4Off: number, l4Len: number, srcMac: Uint8Array): void {
    if (this.closed) return;
    const v = this.view;
    if (ipOff < 0 || frame.length < ipOff + 40 || !v.reset(frame, l4Off, l4Len)) {
      this.ctx.drop('icmp6-short');
      return;
    }
    if (!v.verifyChecksum(frame, ipOff)) {
      this.ctx.drop('icmp6-bad-checksum');
      return;
    }
    switch (v.type) {
      case Icmpv6Type.ECHO_REQUEST:
        this.echo(frame, ipOff, l4Off, l4Len, srcMac);
        return;
      case Icmpv6Type.ROUTER_SOLICIT:
      case Icmpv6Type.NEIGHBOR_SOLICIT:
      case Icmpv6Type.NEIGHBOR_ADVERT:
        this.ndp(frame, ipOff, srcMac);
        return;
      case Icmpv6Type.ROUTER_ADVERT:
        // Another router on a link that has only us and one guest: never believe it.
        this.ctx.count('ndp-ra-from-guest');
        return;
      default:
        // Echo replies, errors about our own packets, MLD, Redirect: nothing for us to do.
        this.ctx.count('icmp6-ignored');
    }
  }

  /** Multicast one router advertisement to all-nodes now (also used by the periodic timer). */
  advertise(): void {
    if (this.closed) return;
    this.lastMulticastRa = this.ctx.timers.now();
    this.sendRa(IPV6_ALL_NODES, ALL_NODES_MAC);
  }

  // ---- echo ----------------------------------------------------------------------------------

  private echo(frame: Uint8Array, ipOff: number, l4Off: number, l4Len: number, srcMac: Uint8Array): void {
    const cfg = this.ctx.cfg;
    const srcOff = ipOff + 8;
    const dstOff = ipOff + 24;
    if (frame[l4Off + 1] !== 0) {
      this.ctx.drop('icmp6-bad-code');
      return;
    }
    if (isIpv6Unspecified(frame, srcOff) || isIpv6Multicast(frame, srcOff)) {
      this.ctx.drop('icmp6-bad-source');
      return;
    }
    let from = ourIpv6Address(cfg, frame, dstOff);
    if (from === null) {
      if (same16(IPV6_ALL_NODES, frame, dstOff) || same16(IPV6_ALL_ROUTERS, frame, dstOff) || ourSolicitedNode(cfg, frame, dstOff)) {
        from = isIpv6LinkLocal(frame, srcOff) ? cfg.ipv6LinkLocal : cfg.ipv6Host;
      } else {
        this.ctx.drop('icmp6-echo-not-ours');
        return;
      }
    }
    if (this.scratch.length < l4Len) this.scratch = new Uint8Array(l4Len);
    const body = this.scratch.subarray(0, l4Len);
    body.set(frame.subarray(l4Off, l4Off + l4Len));
    body[0] = Icmpv6Type.ECHO_REPLY;
    body[2] = 0;
    body[3] = 0;
    this.peer.set(frame.subarray(srcOff, srcOff + 16));
    this.peerMac.set(srcMac.subarray(0, 6));
    this.ctx.count('icmp6-echo-reply');
    this.ctx.out.sendIcmp6(from, this.peer, body, ECHO_HOP_LIMIT, this.peerMac);
  }

  // ---- neighbor discovery --------------------------------------------------------------------

  private ndp(frame: Uint8Array, ipOff: number, srcMac: Uint8Array): void {
    const ctx = this.ctx;
    // RFC 4861 §6.1.1, §7.1.1, §7.1.2: a hop limit below 255 means the packet crossed a router.
    if (frame[ipOff + 7] !== 255) {
      ctx.drop('ndp-bad-hop-limit');
      return;
    }
    const r = parseNdp(this.view);
    if (r === null) {
      ctx.drop('ndp-invalid');
      return;
    }
    const srcOff = ipOff + 8;
    const dstOff = ipOff + 24;
    const srcUnspecified = isIpv6Unspecified(frame, srcOff);
    const slla = ndpFindOption(r.options, 'sourceLinkAddr');
    if (srcUnspecified && slla !== undefined) {
      ctx.drop('ndp-invalid');
      return;
    }
    this.peer.set(frame.subarray(srcOff, srcOff + 16));
    this.peerMac.set(slla !== undefined && slla.addr.length === 6 ? slla.addr : srcMac.subarray(0, 6));
    switch (r.kind) {
      case 'routerSolicit':
        if (!srcUnspecified && slla !== undefined) ctx.learn6(this.peer, this.peerMac);
        if (!srcUnspecified) {
          ctx.count('ndp-ra-solicited');
          this.sendRa(this.peer, this.peerMac);
        } else if (ctx.timers.now() - this.lastMulticastRa >= RaParams.MIN_DELAY_BETWEEN_RAS_MS) {
          ctx.count('ndp-ra-solicited');
          this.advertise();
        } else {
          ctx.count('ndp-rs-ratelimited');
        }
        return;
      case 'neighborSolicit':
        this.neighborSolicit(r, frame, dstOff, srcUnspecified);
        return;
      case 'neighborAdvert':
        this.neighborAdvert(r, frame, srcOff, dstOff, srcMac);
        return;
      default:
        ctx.count('icmp6-ignored');
    }
  }

  private neighborSolicit(r: Extract<NdpRepr, { kind: 'neighborSolicit' }>, frame: Uint8Array, dstOff: number, dad: boolean): void {
    const ctx = this.ctx;
    // §7.1.1: an NS from :: (DAD) must go to the target's solicited-node group.
    if (dad && !isIpv6SolicitedNode(frame, dstOff)) {
      ctx.drop('ndp-invalid');
      return;
    }
    if (!dad) ctx.learn6(this.peer, this.peerMac);
    const ours = ourIpv6Address(ctx.cfg, r.target, 0);
    if (ours === null) {
      // DAD for the guest's own address, or resolution of a neighbour that does not exist.
      ctx.count('ndp-ns-not-ours');
      return;
    }
    if (dad) {
      ctx.count('ndp-dad-conflict');
      ctx.log('warn', 'guest probed one of the router\'s IPv6 addresses for duplicate address detection; defending it');
      this.sendNa(ours, IPV6_ALL_NODES, ALL_NODES_MAC, false);
      return;
    }
    ctx.count('ndp-na-sent');
    this.sendNa(ours, this.peer, this.peerMac, true);
  }

  private neighborAdvert(r: Extract<NdpRepr, { kind: 'neighborAdvert' }>, frame: Uint8Array, srcOff: number, dstOff: number, srcMac: Uint8Array): void {
    const ctx = this.ctx;
    // §7.1.2: a solicited advertisement is never multicast.
    if (r.solicited && isIpv6Multicast(frame, dstOff)) {
      ctx.drop('ndp-invalid');
      return;
    }
    if (ourIpv6Address(ctx.cfg, r.target, 0) !== null) {
      ctx.count('ndp-dad-conflict');
      ctx.log('warn', 'guest advertised one of the router\'s IPv6 addresses as its own');
      return;
    }
    const tlla = ndpFindOption(r.options, 'targetLinkAddr');
    if (tlla !== undefined && tlla.addr.length === 6) ctx.learn6(r.target, tlla.addr);
    else if (same16(r.target, frame, srcOff)) ctx.learn6(r.target, srcMac.subarray(0, 6));
  }

  private sendNa(target: Uint8Array, dst: Uint8Array, dstMac: Uint8Array, solicited: boolean): void {
    const na: NdpRepr = {
      kind: 'neighborAdvert',
      router: true,
      solicited,
      override: true,
      target,
      options: [{ kind: 'targetLinkAddr', addr: this.ctx.cfg.gatewayMac }],
    };
    const body = new Uint8Array(ndpLen(na));
    // The checksum emitNdp writes is replaced by FrameOut's; any IPv6 header will do here.
    emitNdp(na, body, 0, DUMMY_IP6, 0);
    this.ctx.out.sendIcmp6(target, dst, body, 255, dstMac);
  }

  // ---- router advertisements -----------------------------------------------------------------

  private onRaTimer(now: number): void {
    if (this.closed) return;
    this.advertise();
    let next = RaParams.MIN_INTERVAL_MS + Math.floor(this.random() * (RaParams.MAX_INTERVAL_MS - RaParams.MIN_INTERVAL_MS));
    if (this.initialLeft > 0) this.initialLeft--;
    if (this.initialLeft > 0) next = Math.min(next, RaParams.INITIAL_INTERVAL_MS);
    this.ctx.timers.schedule(this.raTimer, now + next);
  }

  private sendRa(dst: Uint8Array, dstMac: Uint8Array): void {
    this.raBody ??= buildRouterAdvert(this.ctx.cfg);
    this.ctx.count('ndp-ra-sent');
    this.ctx.out.sendIcmp6(this.ctx.cfg.ipv6LinkLocal, dst, this.raBody, 255, dstMac);
  }
}

const DUMMY_IP6 = new Uint8Array(40);

/** The router advertisement body (ICMPv6 message) our configuration calls for. */
export function buildRouterAdvert(cfg: SlirpConfig): Uint8Array {
  const prefix = cfg.ipv6Prefix.slice(0, 16);
  // Host bits of the configured prefix are zero on the wire (RFC 4861 §4.6.2: receivers ignore them).
  for (let bit = cfg.ipv6PrefixLen; bit < 128; bit++) prefix[bit >>> 3] = prefix[bit >>> 3]! & ~(0x80 >>> (bit & 7));
  const options: NdpOption[] = [{ kind: 'sourceLinkAddr', addr: cfg.gatewayMac }];
  // RFC 8200 §5: 1280 is the IPv6 minimum; an MTU option below it would be ignored or harmful.
  if (cfg.mtu >= 1280 && cfg.mtu <= 0xffffffff) options.push({ kind: 'mtu', mtu: cfg.mtu });
  options.push({
    kind: 'prefixInfo',
    prefixLen: cfg.ipv6PrefixLen,
    onLink: true,
    autonomous: true,
    validLifetime: RaParams.VALID_LIFETIME_S,
    preferredLifetime: RaParams.PREFERRED_LIFETIME_S,
    prefix,
  });
  options.push({ kind: 'rdnss', lifetime: RaParams.DNS_LIFETIME_S, servers: [cfg.ipv6Dns] });
  const ra: NdpRepr = {
    kind: 'routerAdvert',
    curHopLimit: RaParams.CUR_HOP_LIMIT,
    managed: false,
    other: true,
    preference: 0,
    routerLifetime: RaParams.ROUTER_LIFETIME_S,
    reachableTime: 0,
    retransTimer: 0,
    options,
  };
  const domains = cfg.dnssearch.filter((d) => d !== '' && d !== '.' && dnsNameWireLen(d) > 0);
  if (domains.length > 0) {
    const room = Math.max(1280, cfg.mtu) - 40 - ndpLen(ra);
    const dnssl: NdpOption = { kind: 'dnssl', lifetime: RaParams.DNS_LIFETIME_S, domains };
    // Drop names from the end until the option fits its length field and the RA fits the link.
    while (domains.length > 0 && ndpOptionLen(dnssl) > Math.min(room, MAX_DNSSL_LEN)) domains.pop();
    if (domains.length > 0) options.push(dnssl);
  }
  const body = new Uint8Array(ndpLen(ra));
  emitNdp(ra, body, 0, DUMMY_IP6, 0);
  return body;
}

// ---- Destination Unreachable for the rest of the stack -------------------------------------

const errBuf = new Uint8Array(8 + ICMPV6_ERROR_MAX_INVOKING);
const errSrc = new Uint8Array(16);
const errDst = new Uint8Array(16);
const errView = new Ipv6View();
const errExt = new Ipv6ExtInfo();
const ERR_BURST = 50;
const ERR_PER_MS = 50 / 1000;
const errBuckets = new WeakMap<StackContext, { tokens: number; at: number }>();

/**
 * Send an ICMPv6 Destination Unreachable (RFC 4443 §3.1) about the IPv6 packet at
 * frame[ipOff, ipOff+ipLen) to its source. `code` is an `Icmpv6DstUnreachableCode` (4 port
 * unreachable, 1 administratively prohibited, ...). Suppressed (and counted) when RFC 4443
 * §2.4 (e) forbids an error or the per-stack rate limit is exhausted. Never throws.
 */
export function sendUnreachable6(ctx: StackContext, frame: Uint8Array, ipOff: number, ipLen: number, code: number): void {
  if (ipOff < 0 || ipLen < 40 || frame.length < ipOff + ipLen) {
    ctx.drop('icmp6-error-bad-invoking');
    return;
  }
  const srcOff = ipOff + 8;
  const dstOff = ipOff + 24;
  // §2.4 (e): not to multicast destinations, not to sources that do not name one node.
  if (isIpv6Multicast(frame, dstOff) || isIpv6Multicast(frame, srcOff) || isIpv6Unspecified(frame, srcOff)) {
    ctx.count('icmp6-error-suppressed');
    return;
  }
  // §2.4 (e.1): never about an ICMPv6 error message.
  if (errView.reset(frame, ipOff, ipLen) && walkIpv6Headers(errView, errExt)) {
    if (!errExt.isFragment && errExt.proto === IpProto.ICMPv6 && errExt.len > 0 && frame[errExt.offset]! < 128) {
      ctx.count('icmp6-error-suppressed');
      return;
    }
  } else if (frame[ipOff + 6] === IpProto.ICMPv6 && ipLen > 40 && frame[ipOff + 40]! < 128) {
    ctx.count('icmp6-error-suppressed');
    return;
  }
  // §2.4 (f): token bucket per stack.
  const now = ctx.timers.now();
  let b = errBuckets.get(ctx);
  if (b === undefined) {
    b = { tokens: ERR_BURST, at: now };
    errBuckets.set(ctx, b);
  }
  b.tokens = Math.min(ERR_BURST, b.tokens + (now - b.at) * ERR_PER_MS);
  b.at = now;
  if (b.tokens < 1) {
    ctx.drop('icmp6-error-ratelimited');
    return;
  }
  b.tokens -= 1;

  const cfg = ctx.cfg;
  const quoted = Math.min(ipLen, ICMPV6_ERROR_MAX_INVOKING);
  errBuf[0] = Icmpv6Type.DST_UNREACHABLE;
  errBuf[1] = code;
  errBuf.fill(0, 2, 8);
  errBuf.set(frame.subarray(ipOff, ipOff + quoted), 8);
  errDst.set(frame.subarray(srcOff, srcOff + 16));
  if (code === Icmpv6DstUnreachableCode.PORT_UNREACHABLE) {
    // The "host" that has no such port answers: the address the guest sent to.
    errSrc.set(frame.subarray(dstOff, dstOff + 16));
  } else {
    errSrc.set(isIpv6LinkLocal(errDst, 0) ? cfg.ipv6LinkLocal : cfg.ipv6Host);
  }
  ctx.count('icmp6-unreachable-sent');
  ctx.out.sendIcmp6(errSrc, errDst, errBuf.subarray(0, 8 + quoted), 64, null);
}
