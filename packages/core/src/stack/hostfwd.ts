/**
 * Host forwards (QEMU `hostfwd=`): listeners on the host whose connections and datagrams are
 * carried into the guest by the backend's TCP and UDP flows (slirp's NAT, uip's proxy). Rules are added at init (a port in use fails
 * init with GUESTNET_ADDR_IN_USE) or at run time through the NetBackend hostfwd API.
 *
 * An empty host address was already turned into 127.0.0.1 by the config parser: guestnet does not
 * expose a guest service beyond the host unless the user writes 0.0.0.0 or [::].
 */
import type { HostFwdRule } from '../backend.ts';
import { ErrorCode, GuestnetError } from '../errors.ts';
import type { HostIo, HostTcp, TcpHandlers, TcpListener, UdpListener } from './host-io.ts';

/** What the forwards need from their stack (slirp's StackContext satisfies it). */
export interface HostFwdContext {
  readonly io: HostIo;
  count(name: string, n?: number): void;
  log(level: 'debug' | 'info' | 'warn', msg: string): void;
}

/** The TCP side: takes an accepted host connection (paused) for `rule`. */
export interface HostFwdTcpTarget {
  acceptHostfwd(rule: HostFwdRule, attach: (h: TcpHandlers) => HostTcp): void;
}

/** The UDP side: a datagram arrived on a forward's listener; `dropListener` forgets its flows. */
export interface HostFwdUdpTarget {
  fromHostfwd(listener: UdpListener, rule: HostFwdRule, data: Uint8Array, from: { address: string; port: number }): void;
  dropListener(listener: UdpListener): void;
}

interface Active {
  rule: HostFwdRule;
  tcp?: TcpListener;
  udp?: UdpListener;
}

function sameHost(a: HostFwdRule, b: Pick<HostFwdRule, 'proto' | 'host'>): boolean {
  if (a.proto !== b.proto) return false;
  if (a.host.kind === 'unix' || b.host.kind === 'unix') return a.host.kind === b.host.kind && (a.host as { path: string }).path === (b.host as { path: string }).path;
  return a.host.addr === b.host.addr && (a.host.port === b.host.port || b.host.port === 0);
}

export class HostForwards {
  private readonly ctx: HostFwdContext;
  private readonly tcp: HostFwdTcpTarget;
  private readonly udp: HostFwdUdpTarget;
  private readonly active: Active[] = [];

  constructor(ctx: HostFwdContext, tcp: HostFwdTcpTarget, udp: HostFwdUdpTarget) {
    this.ctx = ctx;
    this.tcp = tcp;
    this.udp = udp;
  }

  async add(rule: HostFwdRule): Promise<HostFwdRule> {
    if (this.active.some((a) => sameHost(a.rule, rule) && (rule.host.kind === 'unix' || rule.host.port !== 0))) {
      throw new GuestnetError(ErrorCode.Exists, `a ${rule.proto} forward for that host address already exists`, {
        hint: 'remove it first, or pick another host port',
      });
    }
    if (rule.guestPort < 1 || rule.guestPort > 65535) {
      throw new GuestnetError(ErrorCode.BadConfig, `guest port ${rule.guestPort} is out of range 1..65535`);
    }
    if (rule.proto === 'tcp') {
      let bound: HostFwdRule | null = null;
      const listener = await this.ctx.io.listenTcp(rule.host, (attach) => {
        this.ctx.count('hostfwd-tcp-accepted');
        this.tcp.acceptHostfwd(bound ?? rule, attach);
      });
      bound = rule.host.kind === 'inet' ? { ...rule, host: { ...rule.host, port: listener.port } } : { ...rule };
      this.active.push({ rule: bound, tcp: listener });
      return bound;
    }
    if (rule.host.kind !== 'inet') throw new GuestnetError(ErrorCode.Unsupported, 'UDP forwards cannot use a unix socket host side');
    let listener: UdpListener | null = null;
    let bound: HostFwdRule = rule;
    listener = await this.ctx.io.listenUdp(rule.host.addr, rule.host.port, {
      onMessage: (data, from) => {
        if (listener) this.udp.fromHostfwd(listener, bound, data, from);
      },
      onError: (err) => this.ctx.log('warn', `hostfwd udp: ${err.code}`),
    });
    bound = { ...rule, host: { ...rule.host, port: listener.localPort } };
    this.active.push({ rule: bound, udp: listener });
    return bound;
  }

  async remove(rule: Pick<HostFwdRule, 'proto' | 'host'>): Promise<boolean> {
    const i = this.active.findIndex((a) => sameHost(a.rule, rule));
    if (i < 0) return false;
    const [a] = this.active.splice(i, 1);
    a!.tcp?.close();
    if (a!.udp) {
      this.udp.dropListener(a!.udp);
      a!.udp.close();
    }
    return true;
  }

  list(): HostFwdRule[] {
    return this.active.map((a) => structuredClone(a.rule));
  }

  close(): void {
    for (const a of this.active) {
      a.tcp?.close();
      a.udp?.close();
    }
    this.active.length = 0;
  }
}
