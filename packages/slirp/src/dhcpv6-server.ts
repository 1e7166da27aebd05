/**
 * Stateless DHCPv6 server (RFC 8415 §6.1, formerly RFC 3736) for the virtual link: hands out the
 * DNS server (cfg.ipv6Dns) and the domain search list (cfg.dnssearch, RFC 3646) to clients that
 * follow the router advertisement's O flag instead of, or besides, reading RDNSS/DNSSL.
 *
 * Theory of operation
 * - Addresses come from SLAAC (the RA's prefix with the A flag, M=0), so there is no lease state
 *   at all: every reply is a function of the request and the configuration.
 * - Information-Request (§18.3.6) → Reply with our Server Identifier (DUID-LL of
 *   cfg.gatewayMac, §11.4: stable for the life of the configuration, no clock needed), the client's
 *   Client Identifier echoed when present, DNS Recursive Name Server, Domain Search List (when
 *   cfg.dnssearch is set) and Information Refresh Time (1 day; the configuration is fixed).
 *   Discarded per §16.12: a Server Identifier that is not ours, or an IA option.
 * - Solicit (§18.3.1) → Advertise with a top-level Status Code NoAddrsAvail, the same
 *   configuration options, and SOL_MAX_RT = 3600 s (§21.24). Why answer at all: a client that
 *   was started in stateful mode (dhclient -6 without -S, udhcpc6, some NetworkManager paths)
 *   otherwise retransmits Solicit for ever at up to 120 s (RFC 3315 clients) with nothing in its
 *   logs; with the Advertise it reports "no addresses available", RFC 8415 §18.2.9 makes it
 *   ignore the Advertise but honour SOL_MAX_RT (fewer retransmissions), and it keeps SLAAC.
 *   Clients that follow the O flag (systemd-networkd, NetworkManager's internal client,
 *   dhclient -S, odhcp6c) send Information-Request, which is the supported path.
 *   Discarded per §16.2: no Client Identifier, or a Server Identifier present.
 * - Request, Renew, Rebind, Confirm, Release, Decline: we never advertised an address, so no
 *   binding exists; they are counted (`dhcpv6-unsupported`) and not answered (for Confirm,
 *   §18.3.3 says not to reply when the server cannot tell). Rapid Commit does not apply.
 * - Messages are accepted at ff02::1:2, ff05::1:3 or one of our unicast addresses; replies go
 *   from cfg.ipv6LinkLocal port 547 (or from our unicast address the client wrote to) to the
 *   client's source address, port 546 (§7.2), to the Ethernet source of the request.
 * - Malformed messages (short header, bad option lengths: parseDhcpv6 returns null), relay
 *   messages and server-to-client types are dropped and counted (`dhcpv6-malformed`,
 *   `dhcpv6-relay`, `dhcpv6-unexpected`).
 *
 * Not done: stateful addresses (IA_NA/IA_TA) and prefix delegation, relay agents, Reconfigure,
 * authentication, per-client rate limiting (each request gets at most one reply, and the guest
 * controls both ends of that exchange).
 */
import {
  DHCPV6_ALL_SERVERS_AND_RELAYS,
  DHCPV6_CLIENT_PORT,
  DHCPV6_SERVER_PORT,
  Dhcpv6MsgType,
  Dhcpv6StatusCode,
  Dhcpv6View,
  dhcpv6DuidLl,
  dhcpv6Len,
  emitDhcpv6,
  isIpv6Multicast,
  isIpv6Unspecified,
  parseDhcpv6,
  type Dhcpv6Options,
  type Dhcpv6Repr,
} from '@guestnet/wire';
import type { StackContext } from './context.ts';

/** Information Refresh Time we hand out (§21.23): the configuration never changes under a client. */
export const DHCPV6_INFO_REFRESH_S = 86400;
/** SOL_MAX_RT option code and the value we send with NoAddrsAvail (§21.24, §7.6). */
export const DHCPV6_OPTION_SOL_MAX_RT = 82;
export const DHCPV6_SOL_MAX_RT_S = 3600;

/** ff05::1:3, All_DHCP_Servers (site scope, §7.1). */
const ALL_SERVERS_SITE = Uint8Array.of(0xff, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 3);

function same16(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length < 16 || b.length < 16) return false;
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Dhcpv6Server {
  private readonly ctx: StackContext;
  private readonly view = new Dhcpv6View();
  /** Our DUID-LL (type 3, hardware type 1, cfg.gatewayMac). */
  readonly serverDuid: Uint8Array;
  private readonly peer = new Uint8Array(16);
  private readonly peerMac = new Uint8Array(6);
  private closed = false;

  constructor(ctx: StackContext) {
    this.ctx = ctx;
    this.serverDuid = dhcpv6DuidLl(ctx.cfg.gatewayMac);
  }

  /** Stop answering; idempotent. There is nothing else to release. */
  close(): void {
    this.closed = true;
  }

  /**
   * One UDP datagram from the guest to port 547. `payload` and the addresses are only read
   * during the call.
   */
  handle(srcIp: Uint8Array, srcPort: number, dstIp: Uint8Array, dstPort: number, payload: Uint8Array, srcMac: Uint8Array): void {
    const ctx = this.ctx;
    if (this.closed || !ctx.cfg.ipv6) return;
    void srcPort; // replies always go to the client port (§7.2), whatever the source port was.
    if (dstPort !== DHCPV6_SERVER_PORT) {
      ctx.drop('dhcpv6-not-ours');
      return;
    }
    const from = this.replySource(dstIp);
    if (from === null) {
      ctx.drop('dhcpv6-not-ours');
      return;
    }
    if (srcIp.length < 16 || isIpv6Unspecified(srcIp) || isIpv6Multicast(srcIp)) {
      ctx.drop('dhcpv6-bad-source');
      return;
    }
    if (!this.view.reset(payload, 0, payload.length)) {
      ctx.drop('dhcpv6-malformed');
      return;
    }
    const type = this.view.msgType;
    if (type === Dhcpv6MsgType.RELAY_FORW || type === Dhcpv6MsgType.RELAY_REPL) {
      ctx.drop('dhcpv6-relay');
      return;
    }
    const req = parseDhcpv6(this.view);
    if (req === null) {
      ctx.drop('dhcpv6-malformed');
      return;
    }
    const o = req.options;
    switch (type) {
      case Dhcpv6MsgType.INFORMATION_REQUEST:
        // §16.12: not for another server, and never with an IA (that would be stateful).
        if (o.serverId !== undefined && !sameBytes(o.serverId, this.serverDuid)) {
          ctx.count('dhcpv6-other-server');
          return;
        }
        if (o.iaNa !== undefined || o.raw?.some((r) => r.code === 4 || r.code === 25)) {
          ctx.drop('dhcpv6-malformed');
          return;
        }
        ctx.count('dhcpv6-info-reply');
        this.send(Dhcpv6MsgType.REPLY, req, this.configOptions(o.clientId), from, srcIp, srcMac);
        return;
      case Dhcpv6MsgType.SOLICIT: {
        // §16.2: a Solicit must identify the client and must not name a server.
        if (o.clientId === undefined || o.serverId !== undefined) {
          ctx.drop('dhcpv6-malformed');
          return;
        }
        const opts = this.configOptions(o.clientId);
        opts.status = { code: Dhcpv6StatusCode.NO_ADDRS_AVAIL, message: 'stateless only: use SLAAC from the router advertisement' };
        const solMaxRt = new Uint8Array(4);
        solMaxRt[0] = DHCPV6_SOL_MAX_RT_S >>> 24;
        solMaxRt[1] = (DHCPV6_SOL_MAX_RT_S >>> 16) & 0xff;
        solMaxRt[2] = (DHCPV6_SOL_MAX_RT_S >>> 8) & 0xff;
        solMaxRt[3] = DHCPV6_SOL_MAX_RT_S & 0xff;
        opts.raw = [{ code: DHCPV6_OPTION_SOL_MAX_RT, data: solMaxRt }];
        ctx.count('dhcpv6-advertise-noaddrs');
        this.send(Dhcpv6MsgType.ADVERTISE, req, opts, from, srcIp, srcMac);
        return;
      }
      case Dhcpv6MsgType.REQUEST:
      case Dhcpv6MsgType.CONFIRM:
      case Dhcpv6MsgType.RENEW:
      case Dhcpv6MsgType.REBIND:
      case Dhcpv6MsgType.RELEASE:
      case Dhcpv6MsgType.DECLINE:
        ctx.count('dhcpv6-unsupported');
        return;
      default:
        // Advertise, Reply, Reconfigure (server → client) or an unknown type.
        ctx.drop('dhcpv6-unexpected');
    }
  }

  /** The address to answer from, or null when `dst` is not a DHCPv6 server address of ours. */
  private replySource(dst: Uint8Array): Uint8Array | null {
    const cfg = this.ctx.cfg;
    if (same16(dst, DHCPV6_ALL_SERVERS_AND_RELAYS) || same16(dst, ALL_SERVERS_SITE)) return cfg.ipv6LinkLocal;
    if (same16(dst, cfg.ipv6LinkLocal)) return cfg.ipv6LinkLocal;
    if (same16(dst, cfg.ipv6Host)) return cfg.ipv6Host;
    if (same16(dst, cfg.ipv6Dns)) return cfg.ipv6Dns;
    return null;
  }

  /** Server id, client id, DNS, search list, refresh time. */
  private configOptions(clientId: Uint8Array | undefined): Dhcpv6Options {
    const cfg = this.ctx.cfg;
    const o: Dhcpv6Options = { serverId: this.serverDuid, dnsServers: [cfg.ipv6Dns], informationRefreshTime: DHCPV6_INFO_REFRESH_S };
    if (clientId !== undefined) o.clientId = clientId;
    const domains = cfg.dnssearch.filter((d) => d !== '' && d !== '.');
    if (domains.length > 0) o.domainList = domains;
    // Wire order as RFC 8415 examples show it: identifiers first, then configuration.
    o.order = [1, 2, 13, 23, 24, 32, DHCPV6_OPTION_SOL_MAX_RT];
    return o;
  }

  private send(msgType: number, req: Dhcpv6Repr, options: Dhcpv6Options, from: Uint8Array, to: Uint8Array, toMac: Uint8Array): void {
    const r: Dhcpv6Repr = { msgType, transactionId: req.transactionId, options };
    const data = new Uint8Array(dhcpv6Len(r));
    emitDhcpv6(r, data, 0);
    this.peer.set(to.subarray(0, 16));
    this.peerMac.set(toMac.subarray(0, 6));
    this.ctx.out.sendUdp6(from, DHCPV6_SERVER_PORT, this.peer, DHCPV6_CLIENT_PORT, data, this.peerMac);
  }
}
