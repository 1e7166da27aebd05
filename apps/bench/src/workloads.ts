/**
 * The benchmark workloads, each run from inside the guest namespace against servers on the host:
 * iperf3 TCP each way (`-O 1`, fixed duration), iperf3 UDP at a fixed datagram size with no rate
 * limit (what arrives is counted, from the server's report), and the Node guest client
 * (apps/bench/guest/client.mjs) for 1-byte TCP ping-pong latency, the connection rate (connect,
 * 1 byte each way, close) and 1,000 held idle connections. The host side of the Node workloads is
 * one echo server in the harness process.
 *
 * An iperf3 run that does not finish in time, or moves less than {@link STALL_BPS}, is reported
 * as stalled with what it did move: pasta's guest→host upload on this kernel does that, and the
 * point is to show it, not to drop it.
 */
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Daemon, run, sleep, type RunResult } from './proc.ts';

const CLIENT = fileURLToPath(new URL('../guest/client.mjs', import.meta.url));
/** Below 100 Mbit/s a TCP transfer over loopback-backed NAT has stalled, not merely slowed. */
export const STALL_BPS = 100e6;

export interface TcpResult {
  bitsPerSecond: number;
  bytes: number;
  seconds: number;
  retransmits: number;
  /** Set when the transfer stalled: what happened. */
  stalled?: string;
}

export interface UdpResult {
  /** Datagrams that arrived at the server, per second. */
  packetsPerSecond: number;
  sent: number;
  lost: number;
  seconds: number;
}

/** An iperf3 server bound to `bind` on a fresh port, for one peer instance. */
export async function startIperfServer(bind: string): Promise<{ port: number; d: Daemon }> {
  const port = await freePort(bind);
  const d = new Daemon('iperf3', ['-s', '-B', bind, '-p', String(port), '--forceflush']);
  await d.waitFor(/Server listening/, 10_000);
  return { port, d };
}

export async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function inNs(ns: string, cmd: string, args: readonly string[], timeoutMs: number): Promise<RunResult> {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], timeoutMs);
}

interface IperfJson {
  error?: string;
  end?: {
    sum?: { packets?: number; lost_packets?: number; seconds: number; bytes: number };
    sum_sent?: { bytes: number; seconds: number; bits_per_second: number; retransmits?: number };
    sum_received?: { bytes: number; seconds: number; bits_per_second: number };
  };
  intervals?: { sum: { bytes: number } }[];
}

function parseIperf(r: RunResult, what: string): IperfJson {
  try {
    return JSON.parse(r.stdout) as IperfJson;
  } catch {
    throw new Error(`${what}: iperf3 exit ${r.code ?? r.signal}, no JSON: ${(r.stderr || r.stdout).trim().slice(-300)}`);
  }
}

/** TCP for `seconds` (after a 1 s omitted warm-up) guest→host, or host→guest with `reverse`. */
export async function iperfTcp(ns: string, target: string, port: number, seconds: number, reverse: boolean): Promise<TcpResult> {
  const args = ['-c', target, '-p', String(port), '-t', String(seconds), '-O', '1', '-J', '--connect-timeout', '3000'];
  if (reverse) args.push('-R');
  const limit = (seconds + 1) * 1000 + 15_000;
  const r = await inNs(ns, 'iperf3', args, limit);
  const what = `iperf3 ${reverse ? 'host→guest' : 'guest→host'}`;
  if (r.signal === 'SIGKILL') {
    return { bitsPerSecond: 0, bytes: 0, seconds, retransmits: 0, stalled: `${what} did not finish within ${limit / 1000} s (killed)` };
  }
  const j = parseIperf(r, what);
  if (j.error || !j.end?.sum_received || !j.end.sum_sent) throw new Error(`${what}: ${j.error ?? 'no summary'}`);
  const rcv = j.end.sum_received;
  const res: TcpResult = { bitsPerSecond: rcv.bits_per_second, bytes: rcv.bytes, seconds: rcv.seconds, retransmits: j.end.sum_sent.retransmits ?? 0 };
  if (res.bitsPerSecond < STALL_BPS) {
    res.stalled = `${what} stalled: ${(rcv.bytes / 1e6).toFixed(1)} MB in ${rcv.seconds.toFixed(1)} s (${(rcv.bits_per_second / 1e6).toFixed(1)} Mbit/s, ${res.retransmits} retransmits)`;
  }
  return res;
}

/** UDP datagrams of `size` payload bytes guest→host as fast as iperf3 sends; counts what arrived. */
export async function iperfUdp(ns: string, target: string, port: number, seconds: number, size: number): Promise<UdpResult> {
  const args = ['-c', target, '-p', String(port), '-u', '-b', '0', '-l', String(size), '-t', String(seconds), '-J', '--connect-timeout', '3000'];
  const r = await inNs(ns, 'iperf3', args, seconds * 1000 + 15_000);
  const what = `iperf3 -u -l ${size}`;
  if (r.signal === 'SIGKILL') throw new Error(`${what} did not finish (killed after ${seconds + 15} s)`);
  const j = parseIperf(r, what);
  const s = j.end?.sum;
  if (j.error || !s || s.packets === undefined) throw new Error(`${what}: ${j.error ?? 'no summary'}`);
  const lost = Math.max(0, s.lost_packets ?? 0);
  return { packetsPerSecond: (s.packets - lost) / s.seconds, sent: s.packets, lost, seconds: s.seconds };
}

/** One echo server (every chunk is written back; the connection ends when the client's does). */
export async function startEchoServer(bind: string): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  const socks = new Set<net.Socket>();
  const srv = net.createServer({ noDelay: true }, (s) => {
    socks.add(s);
    s.on('data', (d) => s.write(d));
    s.on('error', () => {});
    s.on('close', () => socks.delete(s));
  });
  srv.maxConnections = 5000;
  const port = await new Promise<number>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ port: 0, host: bind, backlog: 4096 }, () => resolve((srv.address() as net.AddressInfo).port));
  });
  return {
    port,
    connections: () => socks.size,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        srv.close(() => r());
      }),
  };
}

async function client<T>(ns: string, args: string[], timeoutMs: number): Promise<T> {
  const r = await inNs(ns, process.execPath, [CLIENT, ...args], timeoutMs);
  if (r.code !== 0) throw new Error(`guest client ${args[0]}: exit ${r.code ?? r.signal}: ${r.stderr.trim().slice(-300)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

export function pingPong(ns: string, target: string, port: number, seconds: number): Promise<{ roundTrips: number; p50us: number; p99us: number; meanUs: number }> {
  return client(ns, ['rr', target, String(port), String(seconds)], seconds * 1000 + 20_000);
}

export function connectionRate(ns: string, target: string, port: number, seconds: number, concurrency = 4): Promise<{ connections: number; perSecond: number; errors: number; lastError: string }> {
  return client(ns, ['conn', target, String(port), String(seconds), String(concurrency)], seconds * 1000 + 30_000);
}

/**
 * Open `n` connections from the guest, prove each live (1 byte each way), then call `measure`
 * while they are held; the client is stopped afterwards.
 */
export async function holdIdle<T>(ns: string, target: string, port: number, n: number, measure: () => Promise<T> | T): Promise<T> {
  const d = new Daemon('ip', ['netns', 'exec', ns, process.execPath, CLIENT, 'idle', target, String(port), String(n)], { stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    await d.waitFor(/"held":\d+/, 60_000);
    await sleep(500); // let the backend settle (buffers shrink, timers run) before reading RSS
    return await measure();
  } finally {
    d.child.stdin?.end();
    await d.stop('SIGTERM', 2000);
  }
}
