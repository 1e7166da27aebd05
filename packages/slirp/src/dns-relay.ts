/**
 * DNS relay: the guest's UDP queries to the virtual DNS address (cfg.dns:53, cfg.ipv6Dns:53)
 * forwarded to real resolvers on the host, answers relayed back (RFC 1035 §4.2.1; the spoofing
 * defences of RFC 5452).
 *
 * Theory of operation
 * - Upstreams: `cfg.dnsUpstream` when set, else `io.systemResolvers()` (/etc/resolv.conf), read
 *   once, by `start()` or on the first query. A resolver on the host's loopback (127.0.0.53 of
 *   systemd-resolved, ::1) is used as is: the relay runs on the host, so it is reachable.
 * - One host UDP socket per upstream address family, opened on first use and shared by every
 *   query (not a socket per query as libslirp's UDP NAT does).
 * - Each forwarded query gets a fresh random 16-bit id (crypto.getRandomValues), unique among the
 *   pending ones; the pending table maps it back to the guest's id, address, port and MAC. The
 *   table is bounded (`maxPending`, 1024; queries over 4 KiB are dropped as `dns-oversize`);
 *   excess queries are dropped as `dns-pending-full`. At most 3 upstreams are tried per query.
 * - An answer is accepted only if it parses as a DNS response, comes from an upstream this query
 *   was sent to (address and port), carries a pending id, and echoes the query's question
 *   (compared case-insensitively). It is relayed with the guest's id from the address the guest
 *   asked. Anything else is dropped: `dns-bad-response` (not DNS / not a response) or
 *   `dns-unexpected-response` (wrong source, unknown id, different question).
 * - Timeout (`timeoutMs`, default 2 s): the query goes to the next upstream; after the last one
 *   the guest gets SERVFAIL (libslirp stays silent, leaving the guest to its own, longer, timeout).
 *   With no upstream at all, SERVFAIL at once.
 * - An answer that would not fit the IPv6 path MTU (IPv6 is not fragmented by the stack) is
 *   replaced by a header-and-question reply with TC set, so the guest retries over TCP
 *   (RFC 1035 §4.2.1, RFC 7766). Over IPv4 the output fragments large answers.
 *
 * Not done here: DNS over TCP (the TCP NAT connects guest TCP to cfg.dns:53 to an upstream;
 * `pickUpstream` tells it which), caching, rewriting answers, DNSSEC, the libslirp
 * "hostname resolves to the host" special names.
 */
import { DnsFlag, DnsRcode, DnsView, emitDnsResponse, readDnsQuery } from '@guestnet/wire';
import { ip4, ip6 } from './config.ts';
import type { StackContext } from './context.ts';
import type { HostAddr, HostUdp } from '@guestnet/core';
import { TimerEntry } from '@guestnet/core';

export const DNS_RELAY_DEFAULT_TIMEOUT_MS = 2000;
export const DNS_RELAY_MAX_PENDING = 1024;
/**
 * Largest guest query relayed. Real queries are a few hundred octets (a question plus EDNS
 * options); the cap keeps the pending table's memory at maxPending × 4 KiB.
 */
export const DNS_RELAY_MAX_QUERY = 4096;
/** resolv.conf honours at most 3 nameservers; more would only lengthen a failing query. */
const MAX_TRIES = 3;

export interface DnsRelayOptions {
  /** Per-upstream timeout before trying the next one. Default 2000 ms. */
  timeoutMs?: number;
  /** Bound on queries in flight. Default 1024. */
  maxPending?: number;
}

interface Pending {
  id: number;
  guestId: number;
  family: 4 | 6;
  /** Guest address (v4 number or v6 bytes) and port, and the address it queried (our source). */
  guest4: number;
  guest6: Uint8Array | null;
  guestPort: number;
  server4: number;
  server6: Uint8Array | null;
  mac: Uint8Array;
  /** The query as forwarded (with our id). */
  query: Uint8Array;
  /** Index into the upstream list of the current try; every index up to it was tried. */
  tryIdx: number;
  timer: TimerEntry;
}

/**
 * The upstream a DNS-over-TCP connection should go to: the first one of `family`, else the
 * first of any family, else null.
 */
export function pickUpstream(upstreams: readonly HostAddr[], family: 4 | 6): HostAddr | null {
  for (const u of upstreams) if (u.family === family) return u;
  return upstreams[0] ?? null;
}

/** A canonical text form of an address, so '::1' and '0::1' compare equal. */
function canonical(address: string): string {
  const v4 = ip4(address);
  if (v4 !== null) return String(v4);
  const v6 = ip6(address.replace(/%.*$/, ''));
  if (v6 === null) return address;
  // An IPv4-mapped source (dual-stack socket) is the IPv4 address.
  if (v6.subarray(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff) {
    return String(((v6[12]! << 24) | (v6[13]! << 16) | (v6[14]! << 8) | v6[15]!) >>> 0);
  }
  return Array.from(v6).join(',');
}

function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 32 : c;
}

export class DnsRelay {
  private readonly ctx: StackContext;
  private readonly timeoutMs: number;
  private readonly maxPending: number;
  private readonly pending = new Map<number, Pending>();
  private upstreamList: HostAddr[] | null = null;
  private upstreamKeys: string[] = [];
  private loading: Promise<HostAddr[]> | null = null;
  private readonly sockets = new Map<4 | 6, Promise<HostUdp | null>>();
  private readonly openSockets: HostUdp[] = [];
  private readonly view = new DnsView();
  /** Index of the upstream that answered last: the TCP path prefers a resolver known to work. */
  private lastGood = -1;
  private closed = false;
  /** Answers from upstream that were dropped; the 1st and every 1000th are logged (bounded log). */
  private badAnswers = 0;

  constructor(ctx: StackContext, opts: DnsRelayOptions = {}) {
    this.ctx = ctx;
    this.timeoutMs = opts.timeoutMs ?? DNS_RELAY_DEFAULT_TIMEOUT_MS;
    this.maxPending = opts.maxPending ?? DNS_RELAY_MAX_PENDING;
  }

  /** Queries in flight. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Load the upstream list now (the backend's init awaits this) so `pickUpstream` answers from
   * the first TCP connection on. Never rejects; without it the list loads on the first query.
   */
  async start(): Promise<void> {
    await this.upstreams();
  }

  /** The upstream list, loading it on first use. */
  upstreams(): Promise<HostAddr[]> {
    if (this.upstreamList) return Promise.resolve(this.upstreamList);
    this.loading ??= this.load();
    return this.loading;
  }

  /**
   * Synchronous pick for DNS over TCP: the upstream that answered last if it is of `family`, else
   * the first of `family`, else any; null before the list is loaded (loading starts) or when
   * there is none.
   */
  pickUpstream(family: 4 | 6): HostAddr | null {
    const list = this.upstreamList;
    if (!list) {
      void this.upstreams();
      return null;
    }
    const good = this.lastGood >= 0 ? list[this.lastGood] : undefined;
    if (good && good.family === family) return good;
    return pickUpstream(list, family);
  }

  private async load(): Promise<HostAddr[]> {
    const cfg = this.ctx.cfg.dnsUpstream;
    let list: HostAddr[];
    if (cfg.length > 0) list = cfg.map((u) => ({ address: u.address, port: u.port, family: u.family }));
    else {
      try {
        list = await this.ctx.io.systemResolvers();
      } catch {
        list = [];
      }
      if (list.length === 0) this.ctx.log('warn', 'dns: no upstream resolver configured on the host; queries get SERVFAIL');
    }
    this.upstreamList = list;
    this.upstreamKeys = list.map((u) => `${canonical(u.address)}#${u.port}`);
    return list;
  }

  private socket(family: 4 | 6): Promise<HostUdp | null> {
    let p = this.sockets.get(family);
    if (!p) {
      p = this.ctx.io
        .openUdp(family, {
          onMessage: (data, from) => this.onUpstream(data, from),
          onError: (e) => this.ctx.log('debug', `dns: upstream socket error ${e.code}: ${e.message}`),
        })
        .then(
          (s) => {
            if (this.closed) {
              s.close();
              return null;
            }
            this.openSockets.push(s);
            return s;
          },
          (e: unknown) => {
            this.ctx.log('warn', `dns: cannot open an IPv${family} socket: ${String(e)}`);
            // Forget the failure so a later query tries again.
            this.sockets.delete(family);
            return null;
          },
        );
      this.sockets.set(family, p);
    }
    return p;
  }

  /** A UDP query from the guest to cfg.dns:53. `payload`/`srcMac` are borrowed for the call. */
  handle(srcIp: number, srcPort: number, dstIp: number, dstPort: number, payload: Uint8Array, srcMac: Uint8Array): void {
    void dstPort;
    this.accept(4, srcIp, null, srcPort, dstIp, null, payload, srcMac);
  }

  /** A UDP query from the guest to cfg.ipv6Dns:53. Addresses are borrowed too. */
  handle6(srcIp: Uint8Array, srcPort: number, dstIp: Uint8Array, dstPort: number, payload: Uint8Array, srcMac: Uint8Array): void {
    void dstPort;
    this.accept(6, 0, srcIp.slice(0, 16), srcPort, 0, dstIp.slice(0, 16), payload, srcMac);
  }

  private accept(family: 4 | 6, src4: number, src6: Uint8Array | null, srcPort: number, dst4: number, dst6: Uint8Array | null, payload: Uint8Array, srcMac: Uint8Array): void {
    if (this.closed) return;
    const v = this.view;
    if (payload.length > DNS_RELAY_MAX_QUERY) {
      this.ctx.drop('dns-oversize');
      return;
    }
    if (!v.reset(payload, 0, payload.length) || v.qr || v.qdcount === 0 || readDnsQuery(payload, 0, payload.length) === null) {
      this.ctx.drop('dns-malformed');
      return;
    }
    if (this.pending.size >= this.maxPending) {
      this.ctx.drop('dns-pending-full');
      return;
    }
    const id = this.freshId();
    if (id < 0) {
      this.ctx.drop('dns-pending-full');
      return;
    }
    const query = payload.slice();
    const guestId = v.id;
    query[0] = id >>> 8;
    query[1] = id & 0xff;
    const p: Pending = {
      id,
      guestId,
      family,
      guest4: src4,
      guest6: src6,
      guestPort: srcPort,
      server4: dst4,
      server6: dst6,
      mac: srcMac.slice(0, 6),
      query,
      tryIdx: 0,
      timer: new TimerEntry(() => this.onTimeout(p)),
    };
    this.pending.set(id, p);
    this.ctx.count('dns-query');
    if (this.upstreamList) this.forward(p);
    else
      void this.upstreams().then(() => {
        if (this.pending.get(p.id) === p) this.forward(p);
      });
  }

  private freshId(): number {
    const r = new Uint16Array(8);
    crypto.getRandomValues(r);
    for (const id of r) if (!this.pending.has(id)) return id;
    return -1;
  }

  /** Send `p` to upstream `p.tryIdx`, or answer SERVFAIL when there is none left. */
  private forward(p: Pending): void {
    const list = this.upstreamList ?? [];
    if (p.tryIdx >= list.length || p.tryIdx >= MAX_TRIES) {
      if (list.length === 0) this.ctx.drop('dns-no-upstream');
      else this.ctx.drop('dns-timeout');
      this.finish(p);
      this.servfail(p);
      return;
    }
    const up = list[p.tryIdx]!;
    this.ctx.timers.schedule(p.timer, this.ctx.timers.now() + this.timeoutMs);
    void this.socket(up.family).then((s) => {
      if (this.pending.get(p.id) !== p || list[p.tryIdx] !== up) return;
      if (!s) {
        // This family is unusable on the host: move on at once.
        this.ctx.timers.cancel(p.timer);
        p.tryIdx++;
        this.forward(p);
        return;
      }
      // The HostIo owns sent bytes; the query is retransmitted as is to the next upstream, so
      // hand over a copy.
      s.send(p.query.slice(), up.port, up.address);
    });
  }

  private onTimeout(p: Pending): void {
    if (this.pending.get(p.id) !== p) return;
    this.ctx.count('dns-upstream-timeout');
    p.tryIdx++;
    this.forward(p);
  }

  private finish(p: Pending): void {
    this.ctx.timers.cancel(p.timer);
    this.pending.delete(p.id);
  }

  private onUpstream(data: Uint8Array, from: { address: string; port: number }): void {
    if (this.closed) return;
    const v = this.view;
    if (!v.reset(data, 0, data.length) || !v.qr) {
      this.ctx.drop('dns-bad-response');
      this.logBad('not a DNS response', from);
      return;
    }
    const p = this.pending.get(v.id);
    const fromKey = `${canonical(from.address)}#${from.port}`;
    let upIdx = -1;
    if (p) for (let i = 0; i <= p.tryIdx && i < this.upstreamKeys.length; i++) if (this.upstreamKeys[i] === fromKey) upIdx = i;
    if (!p || upIdx < 0 || !this.sameQuestion(p.query, data)) {
      this.ctx.drop('dns-unexpected-response');
      this.logBad(!p ? 'unknown query id' : upIdx < 0 ? 'not from the upstream asked' : 'question differs', from);
      return;
    }
    this.finish(p);
    this.lastGood = upIdx;
    const answer = data.slice();
    answer[0] = p.guestId >>> 8;
    answer[1] = p.guestId & 0xff;
    this.ctx.count('dns-answer');
    this.toGuest(p, answer);
  }

  private logBad(why: string, from: { address: string; port: number }): void {
    // Rate-bounded: a flood of garbage from the host network must not become a flood of log lines.
    if (this.badAnswers++ % 1000 === 0) {
      this.ctx.log('warn', `dns: dropped an answer from ${from.address}#${from.port}: ${why} (${this.badAnswers} so far)`);
    }
  }

  /** Whether the response echoes the query's question section (RFC 5452 §9.1). */
  private sameQuestion(query: Uint8Array, resp: Uint8Array): boolean {
    const q = readDnsQuery(query, 0, query.length);
    if (q === null || resp.length < q.questionEnd) return false;
    // qdcount, then the question octets (names are never compressed in the first question).
    if (resp[4] !== query[4] || resp[5] !== query[5]) return false;
    for (let i = 12; i < q.questionEnd; i++) if (lower(resp[i]!) !== lower(query[i]!)) return false;
    return true;
  }

  private servfail(p: Pending): void {
    const buf = new Uint8Array(Math.max(512, p.query.length + 16));
    const n = emitDnsResponse(p.query, 0, p.query.length, DnsRcode.SERVFAIL, [], buf, 0, { maxLen: buf.length });
    if (n < 0) return;
    buf[0] = p.guestId >>> 8;
    buf[1] = p.guestId & 0xff;
    this.toGuest(p, buf.subarray(0, n));
  }

  private toGuest(p: Pending, msg: Uint8Array): void {
    const out = this.ctx.out;
    if (p.family === 4) {
      out.sendUdp4(p.server4, 53, p.guest4, p.guestPort, msg, p.mac);
      return;
    }
    let data = msg;
    if (40 + 8 + msg.length > out.mtu) {
      // Too big for the IPv6 path: header + question with TC, the guest retries over TCP.
      const q = readDnsQuery(msg, 0, msg.length);
      const qEnd = q === null ? 12 : q.questionEnd;
      data = msg.slice(0, qEnd);
      data[2] = data[2]! | (DnsFlag.TC >>> 8);
      data.fill(0, 6, 12);
      if (q === null) data.fill(0, 4, 6);
      this.ctx.count('dns-truncated');
    }
    out.sendUdp6(p.server6!, 53, p.guest6!, p.guestPort, data, p.mac);
  }

  /** Cancel every pending query and close the upstream sockets. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) this.ctx.timers.cancel(p.timer);
    this.pending.clear();
    for (const s of this.openSockets) s.close();
    this.openSockets.length = 0;
    this.sockets.clear();
  }
}
