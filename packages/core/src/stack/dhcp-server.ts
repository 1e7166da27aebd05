/**
 * DHCPv4 server for the virtual link (RFC 2131, options from RFC 2132, 3397), with libslirp's
 * addressing (uip uses it with a pool of one): `cfg.dhcpCount` (16) leases from `cfg.dhcpStart` (.15), gateway/server `cfg.host`.
 *
 * Theory of operation
 * - A fixed table of `dhcpCount` slots, one per address. A slot remembers its client (the key is
 *   the client identifier, option 61, when the client sends one, else chaddr; RFC 2131 §4.2) and
 *   MAC even after release or expiry, so a returning client gets its old address back while it
 *   is still free. Time comes from `ctx.timers.now()`; expiry is evaluated lazily on each packet,
 *   so no timer runs.
 * - DISCOVER: the client's own slot, else the requested address (option 50) if free, else a
 *   never-used slot, else the slot that has been free longest. The offer holds the address for
 *   `OFFER_HOLD_MS`. No address left: no reply, counted `dhcp-no-address`.
 * - REQUEST (RFC 2131 §4.3.2): SELECTING (server id present) → ACK if the requested address is
 *   this client's or free, NAK otherwise; a server id that is not ours means the client chose
 *   another server: its offer is released, nothing is sent (the RFC's rule; see "deviations").
 *   INIT-REBOOT (requested address, no ciaddr) and RENEWING/REBINDING (ciaddr) → ACK when the
 *   address is in the pool and this client's or free (like libslirp, a guest that remembers an
 *   address from a previous boot keeps it), NAK when it is outside the subnet, outside the pool,
 *   or leased to another client.
 * - RELEASE frees the client's lease; DECLINE (another host answered ARP for it) makes the
 *   address unusable for `DECLINE_HOLD_MS`; INFORM gets an ACK with configuration only.
 * - Every ACK with a lease calls `ctx.learn4(ip, mac)` so the stack knows the guest's address.
 * - Options sent (the standard set, whether requested or not; RFC 2132 §2 allows it): message
 *   type, server id, lease time / T1 (50%) / T2 (87.5%) (not for INFORM), subnet mask, router,
 *   DNS, broadcast address, host name (12), domain name (15), domain search (119), interface MTU
 *   (26, only when not 1500), TFTP server name (66), bootfile (67, also in the BOOTP `file`
 *   field), and siaddr = cfg.host when TFTP is enabled. The options a client lists in its
 *   parameter request list (55) come first, in its order, after 53 and 54: some firmware
 *   clients read only the first options of a reply.
 * - Reply destination (RFC 2131 §4.1, giaddr 0): NAK → broadcast; ciaddr set → unicast to
 *   ciaddr; broadcast flag → 255.255.255.255 to ff:ff:ff:ff:ff:ff; else unicast to yiaddr at the
 *   chaddr MAC (the guest cannot answer ARP for an address it does not have yet).
 *
 * Limits: the pool size is the config's (at most 16, libslirp's NB_BOOTP_CLIENTS); replies are
 * sized for the 576-octet minimum a client must accept, except that a long domain-search list
 * may exceed it. Malformed requests (shorter than the BOOTP header, no magic cookie, an option
 * running past its area, no message type, not a BOOTREQUEST, not Ethernet chaddr) are dropped as
 * `dhcp-malformed`.
 *
 * Deviations from the brief / libslirp: a REQUEST naming another server id is answered with
 * silence (RFC 2131 §4.3.2), not a NAK; libslirp ignores the server id entirely.
 *
 * Not done: relay agents (giaddr is ignored: there is no relay on a virtual link), BOOTP
 * clients without the DHCP cookie, option overload in replies, static host reservations,
 * persisting leases across restarts, DHCPv6 (see the DHCPv6 module).
 */
import {
  DHCPV4_CLIENT_PORT,
  DHCPV4_FLAG_BROADCAST,
  DHCPV4_SERVER_PORT,
  Dhcpv4MessageType,
  Dhcpv4Op,
  Dhcpv4OptionCode,
  Dhcpv4View,
  MAC_BROADCAST,
  dhcpv4Len,
  emitDhcpv4,
  parseDhcpv4,
} from '@guestnet/wire';
import type { Dhcpv4Options, Dhcpv4Repr } from '@guestnet/wire';
import type { FrameOut } from './frame-out.ts';
import type { TimerQueue } from './timers.ts';

/**
 * The addressing a DHCP server hands out; IPv4 addresses as u32. slirp's config satisfies it as
 * is; uip configures a pool of one (`dhcpStart` = guest_ip, `dhcpCount` = 1).
 */
export interface DhcpServerConfig {
  /** Server identifier, router and (with TFTP) siaddr. */
  readonly host: number;
  readonly net: number;
  readonly mask: number;
  readonly broadcast: number;
  readonly dhcpStart: number;
  readonly dhcpCount: number;
  /** The DNS server option, unless `dnsServers` is given. */
  readonly dns: number;
  /** Several DNS servers (option 6 in this order); overrides `dns` when non-empty. */
  readonly dnsServers?: readonly number[];
  readonly hostname: string;
  readonly domainname: string;
  readonly dnssearch: readonly string[];
  readonly mtu: number;
  readonly tftpRoot: string;
  readonly tftpServerName: string;
  readonly bootfile: string;
}

/** What the DHCP server needs from its stack (a subset of slirp's StackContext). */
export interface DhcpServerContext {
  readonly cfg: DhcpServerConfig;
  readonly timers: TimerQueue;
  readonly out: FrameOut;
  drop(reason: string, n?: number): void;
  count(name: string, n?: number): void;
  learn4(ip: number, mac: Uint8Array): void;
  log(level: 'debug' | 'info' | 'warn', msg: string): void;
}

/** Lease time, as libslirp (LEASE_TIME = 24 h). */
export const DHCP_LEASE_SECONDS = 24 * 3600;
/** How long an offered address stays reserved for the client that was offered it. */
export const OFFER_HOLD_MS = 60_000;
/** How long a declined address stays out of the pool (RFC 2131 §4.3.3 leaves it to the server). */
export const DECLINE_HOLD_MS = 10 * 60_000;

const SlotState = { FREE: 0, OFFERED: 1, BOUND: 2, DECLINED: 3 } as const;
type SlotState = (typeof SlotState)[keyof typeof SlotState];

interface Slot {
  readonly ip: number;
  state: SlotState;
  /** Client key ('' when never used) and MAC of the last holder. */
  key: string;
  mac: Uint8Array;
  /** When an offer/lease/decline ends; for FREE, when it became free (oldest reused first). */
  until: number;
}

export interface DhcpLease {
  ip: number;
  mac: Uint8Array;
  /** Absolute time (ctx.timers.now() scale, ms) at which the lease ends. */
  expires: number;
}

const BROADCAST_IP = 0xffffffff;

function hex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += (b[i]! < 16 ? '0' : '') + b[i]!.toString(16);
  return s;
}

export class DhcpServer {
  private readonly ctx: DhcpServerContext;
  private readonly slots: Slot[] = [];
  private readonly view = new Dhcpv4View();
  private closed = false;

  constructor(ctx: DhcpServerContext) {
    this.ctx = ctx;
    const { dhcpStart, dhcpCount } = ctx.cfg;
    for (let i = 0; i < dhcpCount; i++) {
      this.slots.push({ ip: (dhcpStart + i) >>> 0, state: SlotState.FREE, key: '', mac: new Uint8Array(6), until: 0 });
    }
  }

  /**
   * A UDP datagram from the guest to port 67. `payload` and `srcMac` are borrowed for the call.
   * Never throws; bad input is dropped and counted.
   */
  handle(srcIp: number, srcPort: number, dstIp: number, dstPort: number, payload: Uint8Array, srcMac: Uint8Array): void {
    void srcPort;
    void dstIp;
    if (this.closed || dstPort !== DHCPV4_SERVER_PORT) return;
    const v = this.view;
    if (!v.reset(payload, 0, payload.length)) {
      this.ctx.drop('dhcp-malformed');
      return;
    }
    const req = parseDhcpv4(v);
    if (req === null || req.op !== Dhcpv4Op.BOOTREQUEST || req.htype !== 1 || req.hlen !== 6 || req.options.messageType === undefined) {
      this.ctx.drop('dhcp-malformed');
      return;
    }
    const mac = req.chaddr.slice(0, 6);
    const key = req.options.clientId !== undefined && req.options.clientId.length > 0 ? `id:${hex(req.options.clientId)}` : `mac:${hex(mac)}`;
    const now = this.ctx.timers.now();
    switch (req.options.messageType) {
      case Dhcpv4MessageType.DISCOVER:
        this.discover(req, key, mac, now);
        break;
      case Dhcpv4MessageType.REQUEST:
        this.request(req, key, mac, now);
        break;
      case Dhcpv4MessageType.RELEASE:
        this.release(req, key, now);
        break;
      case Dhcpv4MessageType.DECLINE:
        this.decline(req, key, now);
        break;
      case Dhcpv4MessageType.INFORM:
        this.inform(req, srcIp, srcMac);
        break;
      default:
        this.ctx.drop('dhcp-unsupported-type');
    }
  }

  /** Bound, unexpired leases. */
  leases(): DhcpLease[] {
    const now = this.ctx.timers.now();
    const out: DhcpLease[] = [];
    for (const s of this.slots) if (s.state === SlotState.BOUND && s.until > now) out.push({ ip: s.ip, mac: s.mac.slice(), expires: s.until });
    return out;
  }

  /** The address leased to `mac` (bound and unexpired), or 0 when none. */
  guestAddress(mac: Uint8Array): number {
    const now = this.ctx.timers.now();
    for (const s of this.slots) {
      if (s.state === SlotState.BOUND && s.until > now && sameMac(s.mac, mac)) return s.ip;
    }
    return 0;
  }

  close(): void {
    // No sockets or timers: expiry is lazy. Further packets are ignored.
    this.closed = true;
  }

  // ---- pool -----------------------------------------------------------------------------------

  private slotOf(ip: number): Slot | null {
    const i = (ip - this.ctx.cfg.dhcpStart) >>> 0;
    return i < this.slots.length ? this.slots[i]! : null;
  }

  /** Whether `s` can go to the client `key` now. */
  private usableBy(s: Slot, key: string, now: number): boolean {
    if (s.state === SlotState.FREE) return true;
    if (s.state === SlotState.DECLINED) return s.until <= now;
    return s.key === key || s.until <= now;
  }

  private findByKey(key: string, now: number): Slot | null {
    for (const s of this.slots) if (s.key === key && s.state !== SlotState.DECLINED && this.usableBy(s, key, now)) return s;
    return null;
  }

  private allocate(key: string, requested: number | undefined, now: number): Slot | null {
    const own = this.findByKey(key, now);
    if (own) return own;
    if (requested !== undefined) {
      const r = this.slotOf(requested);
      if (r && this.usableBy(r, key, now)) return r;
    }
    let best: Slot | null = null;
    for (const s of this.slots) {
      if (!this.usableBy(s, key, now)) continue;
      if (s.key === '') return s; // never used: no client will come back for it
      if (best === null || s.until < best.until) best = s;
    }
    return best;
  }

  private take(s: Slot, key: string, mac: Uint8Array, state: SlotState, until: number): void {
    // The address changes hands: forget whatever other slot this client held.
    for (const o of this.slots) {
      if (o !== s && o.key === key && o.state !== SlotState.DECLINED) {
        o.state = SlotState.FREE;
        o.until = 0;
      }
    }
    s.state = state;
    s.key = key;
    s.mac.set(mac);
    s.until = until;
  }

  // ---- messages -------------------------------------------------------------------------------

  private discover(req: Dhcpv4Repr, key: string, mac: Uint8Array, now: number): void {
    const s = this.allocate(key, req.options.requestedIp, now);
    if (!s) {
      this.ctx.drop('dhcp-no-address');
      this.ctx.log('warn', `dhcp: no address left for ${hex(mac)}`);
      return;
    }
    // A bound lease stays bound (the client may be re-discovering after a reboot).
    if (s.state !== SlotState.BOUND || s.key !== key || s.until <= now) this.take(s, key, mac, SlotState.OFFERED, now + OFFER_HOLD_MS);
    this.ctx.count('dhcp-offer');
    this.reply(req, Dhcpv4MessageType.OFFER, s.ip, mac, true);
  }

  private request(req: Dhcpv4Repr, key: string, mac: Uint8Array, now: number): void {
    const cfg = this.ctx.cfg;
    const o = req.options;
    let want: number;
    if (o.serverId !== undefined) {
      // SELECTING.
      if (o.serverId !== cfg.host) {
        const own = this.findByKey(key, now);
        if (own && own.state === SlotState.OFFERED) {
          own.state = SlotState.FREE;
          own.until = now;
        }
        this.ctx.drop('dhcp-other-server');
        return;
      }
      if (o.requestedIp === undefined) {
        this.ctx.drop('dhcp-malformed');
        return;
      }
      want = o.requestedIp;
    } else if (o.requestedIp !== undefined && req.ciaddr === 0) {
      want = o.requestedIp; // INIT-REBOOT
    } else if (req.ciaddr !== 0) {
      want = req.ciaddr; // RENEWING / REBINDING
    } else {
      this.ctx.drop('dhcp-malformed');
      return;
    }
    const s = ((want & cfg.mask) >>> 0) === cfg.net ? this.slotOf(want) : null;
    if (!s || !this.usableBy(s, key, now)) {
      this.ctx.count('dhcp-nak');
      this.reply(req, Dhcpv4MessageType.NAK, 0, mac, false);
      return;
    }
    this.take(s, key, mac, SlotState.BOUND, now + DHCP_LEASE_SECONDS * 1000);
    this.ctx.learn4(s.ip, mac);
    this.ctx.count('dhcp-ack');
    this.reply(req, Dhcpv4MessageType.ACK, s.ip, mac, true);
  }

  private release(req: Dhcpv4Repr, key: string, now: number): void {
    const s = this.slotOf(req.ciaddr);
    if (!s || s.key !== key || s.state === SlotState.DECLINED) {
      this.ctx.drop('dhcp-release-unknown');
      return;
    }
    s.state = SlotState.FREE;
    s.until = now;
    this.ctx.count('dhcp-release');
  }

  private decline(req: Dhcpv4Repr, key: string, now: number): void {
    const ip = req.options.requestedIp;
    const s = ip === undefined ? null : this.slotOf(ip);
    if (!s || s.key !== key) {
      this.ctx.drop('dhcp-decline-unknown');
      return;
    }
    // Someone else answers for this address: keep it out of the pool for a while, and let the
    // client get a different one on its next DISCOVER.
    s.state = SlotState.DECLINED;
    s.key = '';
    s.until = now + DECLINE_HOLD_MS;
    this.ctx.count('dhcp-decline');
    this.ctx.log('warn', `dhcp: address declined by ${hex(s.mac)}`);
  }

  private inform(req: Dhcpv4Repr, srcIp: number, srcMac: Uint8Array): void {
    // RFC 2131 §4.3.5: configuration only, to ciaddr; no lease, no yiaddr.
    if (req.ciaddr === 0 && srcIp === 0) {
      this.ctx.drop('dhcp-malformed');
      return;
    }
    // Some clients leave ciaddr 0 although they have an address: answer the IP source.
    if (req.ciaddr === 0) req.ciaddr = srcIp;
    this.ctx.count('dhcp-inform');
    this.reply(req, Dhcpv4MessageType.ACK, 0, srcMac, false, true);
  }

  private options(req: Dhcpv4Repr, type: number, withLease: boolean): Dhcpv4Options {
    const cfg = this.ctx.cfg;
    const o: Dhcpv4Options = { messageType: type, serverId: cfg.host };
    if (type === Dhcpv4MessageType.NAK) {
      o.message = 'requested address not available';
      return o;
    }
    if (withLease) {
      o.leaseTime = DHCP_LEASE_SECONDS;
      o.renewalTime = DHCP_LEASE_SECONDS / 2;
      o.rebindingTime = (DHCP_LEASE_SECONDS * 7) / 8;
    }
    o.subnetMask = cfg.mask;
    o.routers = [cfg.host];
    o.dnsServers = cfg.dnsServers && cfg.dnsServers.length > 0 ? cfg.dnsServers.slice() : [cfg.dns];
    o.broadcastAddr = cfg.broadcast;
    if (cfg.hostname) o.hostname = cfg.hostname;
    if (cfg.domainname) o.domainName = cfg.domainname;
    if (cfg.dnssearch.length > 0) o.domainSearch = cfg.dnssearch.slice();
    if (cfg.mtu !== 1500) o.interfaceMtu = cfg.mtu;
    if (cfg.tftpServerName) o.tftpServerName = cfg.tftpServerName;
    if (cfg.bootfile) o.bootfileName = cfg.bootfile;
    const order: number[] = [Dhcpv4OptionCode.MESSAGE_TYPE, Dhcpv4OptionCode.SERVER_ID];
    for (const c of req.options.paramRequestList ?? []) if (!order.includes(c)) order.push(c);
    o.order = order;
    return o;
  }

  /**
   * Send `type` for `req`. `yiaddr` 0 for NAK/INFORM. `lease` false for NAK and INFORM's ACK.
   */
  private reply(req: Dhcpv4Repr, type: number, yiaddr: number, mac: Uint8Array, lease: boolean, inform = false): void {
    const cfg = this.ctx.cfg;
    const nak = type === Dhcpv4MessageType.NAK;
    const tftp = cfg.tftpRoot !== '' || cfg.bootfile !== '';
    const r: Dhcpv4Repr = {
      op: Dhcpv4Op.BOOTREPLY,
      htype: 1,
      hlen: 6,
      hops: 0,
      xid: req.xid,
      secs: 0,
      // RFC 2131 table 3: flags and giaddr are copied from the request.
      flags: req.flags & DHCPV4_FLAG_BROADCAST,
      ciaddr: inform || (type === Dhcpv4MessageType.ACK && req.ciaddr !== 0) ? req.ciaddr : 0,
      yiaddr,
      siaddr: !nak && tftp ? cfg.host : 0,
      giaddr: req.giaddr,
      chaddr: req.chaddr,
      sname: '',
      file: !nak ? cfg.bootfile : '',
      options: this.options(req, type, lease && !inform),
    };
    const buf = new Uint8Array(dhcpv4Len(r));
    const n = emitDhcpv4(r, buf, 0);
    const data = buf.subarray(0, n);
    const out = this.ctx.out;
    const src = cfg.host;
    // RFC 2131 §4.1 (giaddr 0).
    if (nak || req.flags & DHCPV4_FLAG_BROADCAST) {
      out.sendUdp4(src, DHCPV4_SERVER_PORT, BROADCAST_IP, DHCPV4_CLIENT_PORT, data, MAC_BROADCAST);
    } else if (req.ciaddr !== 0) {
      out.sendUdp4(src, DHCPV4_SERVER_PORT, req.ciaddr, DHCPV4_CLIENT_PORT, data, mac);
    } else {
      out.sendUdp4(src, DHCPV4_SERVER_PORT, yiaddr, DHCPV4_CLIENT_PORT, data, mac);
    }
  }
}

function sameMac(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 6; i++) if (a[i] !== b[i]) return false;
  return true;
}
