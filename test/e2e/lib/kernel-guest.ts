/**
 * The Linux kernel in a network namespace as a guest: DHCP with busybox udhcpc (the lease applied
 * by a small script with `ip`, inside the namespace only), SLAAC waiting, iperf3 runs with their
 * JSON parsed. Used by the `guestnet attach` e2e tests and the benchmarks.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Netns } from './netns.ts';
import { Daemon } from './proc.ts';

/**
 * Write the udhcpc script to `dir`. It applies a lease with `ip` (address, default route, MTU
 * option 26 if offered) and records udhcpc's variables in `dir/lease.env` for assertions.
 */
export function writeUdhcpcScript(dir: string): { script: string; leaseFile: string } {
  const leaseFile = join(dir, 'lease.env');
  const script = join(dir, 'udhcpc.sh');
  writeFileSync(
    script,
    `#!/bin/sh
# busybox udhcpc hook: $1 is deconfig|bound|renew|leasefail|nak; the lease is in the environment.
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    { echo "ip=$ip"; echo "mask=$mask"; echo "subnet=$subnet"; echo "router=$router"; echo "dns=$dns"; echo "lease=$lease"; echo "mtu=$mtu"; } > "${leaseFile}"
    ;;
esac
exit 0
`,
  );
  chmodSync(script, 0o755);
  return { script, leaseFile };
}

/** Parse `key=value` lines. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/**
 * The usable (non-tentative, not link-local) IPv6 addresses of `dev` in the namespace, from
 * `ip -j`. Scope is not filtered: the kernel gives SLAAC addresses in fec0::/10 (slirp's default
 * prefix, the deprecated site-local range) scope "site", not "global".
 */
export async function slaacIpv6(ns: Netns, dev: string): Promise<string[]> {
  const r = await ns.ip(['-j', '-6', 'addr', 'show', 'dev', dev]);
  const j = JSON.parse(r.stdout || '[]') as { addr_info?: { local: string; scope: string; tentative?: boolean; dadfailed?: boolean }[] }[];
  return j
    .flatMap((l) => l.addr_info ?? [])
    .filter((a) => a.scope !== 'link' && a.scope !== 'host' && !a.tentative && !a.dadfailed)
    .map((a) => a.local);
}

/** An iperf3 server on 127.0.0.1 (serves one test after another). */
export async function startIperfServer(port: number): Promise<Daemon> {
  const d = new Daemon('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(port), '--forceflush']);
  await d.waitFor(/Server listening/);
  return d;
}

export interface IperfResult {
  /** Payload bytes the sender sent (what -n asked for). */
  sentBytes: number;
  /**
   * Payload bytes the receiver counted. iperf3 closes the receiver's tally when the test ends on
   * the control connection, so a few MB still in flight may be missing from it.
   */
  bytes: number;
  seconds: number;
  /** Receiver-side throughput, bits/s. */
  bitsPerSecond: number;
  retransmits: number;
}

/**
 * `iperf3 -c SERVER -p PORT -n BYTES [-R] -J` inside the namespace. Throws with iperf3's error
 * (from the JSON) or its output when it fails.
 */
export async function runIperf(ns: Netns, server: string, port: number, bytes: string, reverse: boolean, timeoutMs: number): Promise<IperfResult> {
  const args = ['-c', server, '-p', String(port), '-n', bytes, '-J', '--connect-timeout', '5000'];
  if (reverse) args.push('-R');
  const r = await ns.exec('iperf3', args, { timeoutMs });
  let j: {
    error?: string;
    end?: { sum_sent?: { bytes: number; seconds: number; bits_per_second: number; retransmits?: number }; sum_received?: { bytes: number; seconds: number; bits_per_second: number } };
  };
  try {
    j = JSON.parse(r.stdout);
  } catch {
    throw new Error(`iperf3 ${args.join(' ')}: exit ${r.code ?? r.signal}, no JSON\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
  }
  if (j.error || r.code !== 0 || !j.end?.sum_received || !j.end.sum_sent) {
    throw new Error(`iperf3 ${args.join(' ')} failed (exit ${r.code ?? r.signal}): ${j.error ?? 'no summary'}\n${r.stderr.slice(-1000)}`);
  }
  const rcv = j.end.sum_received;
  return { sentBytes: j.end.sum_sent.bytes, bytes: rcv.bytes, seconds: rcv.seconds, bitsPerSecond: rcv.bits_per_second, retransmits: j.end.sum_sent.retransmits ?? 0 };
}

export const gbps = (bps: number): string => `${(bps / 1e9).toFixed(2)} Gbit/s`;
