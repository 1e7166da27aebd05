/**
 * `pnpm soak --minutes N [--out docs/soak.md] [--json FILE] [--rate 100M]` (issue 9): N minutes
 * of mixed traffic through slirp from the Linux kernel in a network namespace, with the backend's
 * memory and file descriptors sampled throughout, to show that nothing grows and nothing fails.
 *
 * Set-up: `guestnet attach --configure` (apps/cli/bin/guestnet.js, spawned as its own process so
 * that the RSS and fds measured are the backend's alone) gives the namespace `gn-soak-<pid>` a TAP
 * connected to `backend=slirp,dns-upstream=127.0.0.1#PORT,allow=127.0.0.0/8`: DNS goes to a
 * resolver this command runs on 127.0.0.1, never the host's, and NAT reaches only loopback.
 *
 * Traffic, all concurrently for the whole run (servers on host 127.0.0.1, reached as 10.0.2.2):
 * - bulk TCP: iperf3 capped at --rate (default 100 Mbit/s, to leave CPU to others), 45 s each
 *   minute, alternating guest → host and host → guest;
 * - bulk TCP verified: each minute 16 MiB host → guest (`busybox wget -O - | sha256sum`) and
 *   16 MiB guest → host (a node client to a hashing sink), both checked by sha256;
 * - short connections, UDP echo and DNS lookups through 10.0.2.3: guest/driver.mjs, a node
 *   process in the namespace (10 HTTP connections, 20 UDP datagrams, 5 lookups a second);
 * - ICMP: each minute 100 pings of the gateway.
 * Every 10 s (the minute marks go into the table): the attach process's VmRSS, fd and socket
 * counts, CPU time. `guestnet attach` has no control socket, so slirp's flow counts are not
 * available; the socket fds stand for them (each NAT flow holds one host socket).
 *
 * At the end: least-squares slopes of RSS and fds after the first minute (report.ts), totals per
 * traffic kind, errors, and the fd count once traffic has stopped and idle UDP flows expired. The
 * report goes to --out (markdown) and --json. Exit 0 if the run passed, 1 if not, 2 when it
 * cannot run (not root, a tool missing) or on a usage error.
 */
import dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, release } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNetns, deleteAllNetns, type Netns } from '../../../test/e2e/lib/netns.ts';
import { Daemon, killAll, run } from '../../../test/e2e/lib/proc.ts';
import { freePort, startDnsServer, startHttpServer } from '../../../test/e2e/lib/servers.ts';
import { startIperfServer } from '../../../test/e2e/lib/kernel-guest.ts';
import { expectedSha256, parseUpload, startHashServers, UPLOAD_CLIENT } from '../../../test/e2e/lib/hash-stream.ts';
import { DEFAULT_LIMITS, markdown, verdict, type KindTotals, type MinuteRow, type Sample, type SoakResults } from './report.ts';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const CLI = join(ROOT, 'apps/cli/bin/guestnet.js');
const DRIVER = join(ROOT, 'apps/soak/guest/driver.mjs');
const USAGE = 'usage: pnpm soak [--minutes N] [--out FILE.md] [--json FILE.json] [--rate BITRATE]\n  defaults: --minutes 60 --out docs/soak.md --json bench/results/soak-DATE.json --rate 100M';

const HTTP_PER_SEC = 10;
const UDP_PER_SEC = 20;
const UDP_PER_SOCKET = 20;
const DNS_PER_SEC = 5;
const SAMPLE_EVERY_MS = 10_000;
const BULK_SECONDS = 45;
const HASH_BYTES = 16 * 1024 * 1024;
const PINGS = 100;
/** UDP replies missing up to this fraction of those sent are tolerated (see docs/soak.md). */
const UDP_LOSS_TOLERANCE = 0.001;
const DOWN_SEED = '00112233445566778899aabbccddeeff';
const UP_SEED = 'ffeeddccbbaa99887766554433221100';
const BODY = 'soak: hello from host 127.0.0.1\n';

const KINDS = ['bulk TCP (iperf3)', 'bulk TCP (sha256)', 'short TCP (HTTP)', 'UDP echo', 'DNS', 'ICMP'] as const;
type Kind = (typeof KINDS)[number];

interface Args {
  minutes: number;
  out: string;
  json: string;
  rate: string;
}

function parseArgs(argv: readonly string[]): Args {
  // Relative paths are the caller's: pnpm runs this in apps/soak but records where it was invoked.
  const base = process.env.INIT_CWD ?? process.cwd();
  const date = new Date().toISOString().slice(0, 10);
  const a: Args = { minutes: 60, out: join(ROOT, 'docs/soak.md'), json: join(ROOT, `bench/results/soak-${date}.json`), rate: '100M' };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.includes('=') ? argv[i]!.split(/=(.*)/s) : [argv[i]!, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--minutes': {
        const v = value();
        if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 7 * 24 * 60) throw new Error(`--minutes takes a whole number of minutes, 1 or more, not '${v}'`);
        a.minutes = Number(v);
        break;
      }
      case '--out':
        a.out = resolve(base, value());
        break;
      case '--json':
        a.json = resolve(base, value());
        break;
      case '--rate': {
        const v = value();
        if (!/^\d+(\.\d+)?[KMG]?$/i.test(v)) throw new Error(`--rate takes an iperf3 bitrate such as 100M, not '${v}'`);
        a.rate = v;
        break;
      }
      case '--':
        break;
      default:
        throw new Error(`unknown argument ${flag}`);
    }
  }
  if (!isAbsolute(a.out) || !isAbsolute(a.json)) throw new Error('internal: paths must be absolute');
  return a;
}

function which(tool: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => existsSync(`${d}/${tool}`));
}

/** Why the soak cannot run here, or null. */
function prerequisites(): string | null {
  if (process.platform !== 'linux') return `the soak needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'the soak needs root: it creates a network namespace and a TAP device in it (run it as root, e.g. sudo -E pnpm soak)';
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing (modprobe tun)';
  const tools: Record<string, string> = { ip: 'iproute2', nsenter: 'util-linux', iperf3: 'iperf3', busybox: 'busybox-static', ping: 'iputils-ping', sha256sum: 'coreutils', bash: 'bash' };
  const missing = Object.keys(tools).filter((t) => !which(t));
  if (missing.length) return `missing tools: ${missing.join(', ')} (apt-get install ${[...new Set(missing.map((t) => tools[t]))].join(' ')})`;
  return null;
}

// ---- sampling the attach process ----------------------------------------------------------

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function fdCounts(pid: number): { fds: number; sockets: number } {
  const dir = `/proc/${pid}/fd`;
  let fds = 0;
  let sockets = 0;
  for (const fd of readdirSync(dir)) {
    try {
      const target = readlinkSync(`${dir}/${fd}`);
      fds++;
      if (target.startsWith('socket:')) sockets++;
    } catch {
      // closed between readdir and readlink
    }
  }
  return { fds, sockets };
}

/** The fds' targets (`socket:[INODE]`, paths, `anon_inode:…`), for naming what outlived the traffic. */
function fdTargets(pid: number): string[] {
  const dir = `/proc/${pid}/fd`;
  const out: string[] = [];
  for (const fd of readdirSync(dir)) {
    try {
      out.push(readlinkSync(`${dir}/${fd}`));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** `socket:[INODE]` → "udp 0.0.0.0:43586 → 0.0.0.0:0 (state 07)" from /proc/PID/net (IPv4 decoded). */
function describeSocket(pid: number, target: string): string {
  const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
  if (!inode) return target;
  const addr = (hex: string): string => {
    const [ip, port] = hex.split(':');
    if (ip!.length !== 8) return hex;
    const n = parseInt(ip!, 16);
    return `${n & 255}.${(n >>> 8) & 255}.${(n >>> 16) & 255}.${n >>> 24}:${parseInt(port!, 16)}`;
  };
  for (const proto of ['tcp', 'tcp6', 'udp', 'udp6']) {
    try {
      for (const line of readFileSync(`/proc/${pid}/net/${proto}`, 'utf8').split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f[9] === inode) return `${target} ${proto} ${addr(f[1]!)} → ${addr(f[2]!)} (state ${f[3]})`;
      }
    } catch {
      // no such table
    }
  }
  return `${target} (not tcp/udp)`;
}

/** Targets in `now` beyond those in `base` (a multiset difference). */
function extraTargets(base: readonly string[], now: readonly string[]): string[] {
  const left = new Map<string, number>();
  for (const t of base) left.set(t, (left.get(t) ?? 0) + 1);
  const extra: string[] = [];
  for (const t of now) {
    const n = left.get(t) ?? 0;
    if (n > 0) left.set(t, n - 1);
    else extra.push(t);
  }
  return extra;
}

function sample(pid: number, t: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "comm" (which may contain spaces): state is field 3, utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuS = (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  return { t: Math.round(t * 10) / 10, rssMiB: Math.round((rssKb / 1024) * 10) / 10, ...fdCounts(pid), cpuS: Math.round(cpuS * 10) / 10 };
}

// ---- the workloads that run each minute ----------------------------------------------------

interface Totals {
  ok: Record<Kind, number>;
  errors: Record<Kind, number>;
  bytes: Record<Kind, number>;
  lastError: Partial<Record<Kind, string>>;
  retransmits: number;
  udpLostTolerated: number;
}

function newTotals(): Totals {
  const zero = (): Record<Kind, number> => Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>;
  return { ok: zero(), errors: zero(), bytes: zero(), lastError: {}, retransmits: 0, udpLostTolerated: 0 };
}

function fail(t: Totals, kind: Kind, why: string): void {
  t.errors[kind]++;
  t.lastError[kind] = `${new Date().toISOString()} ${why.trim().split('\n').slice(0, 3).join(' / ').slice(0, 300)}`;
  console.log(`soak: ERROR ${kind}: ${t.lastError[kind]}`);
}

async function bulkIperf(ns: Netns, port: number, rate: string, reverse: boolean, t: Totals): Promise<void> {
  const args = ['-c', '10.0.2.2', '-p', String(port), '-t', String(BULK_SECONDS), '-b', rate, '-J', '--connect-timeout', '5000'];
  if (reverse) args.push('-R');
  const r = await ns.exec('iperf3', args, { timeoutMs: (BULK_SECONDS + 25) * 1000 });
  try {
    const j = JSON.parse(r.stdout) as { error?: string; end?: { sum_sent?: { bytes: number; retransmits?: number }; sum_received?: { bytes: number } } };
    if (j.error || r.code !== 0 || !j.end?.sum_received) throw new Error(j.error ?? `exit ${r.code ?? r.signal}`);
    t.ok['bulk TCP (iperf3)']++;
    t.bytes['bulk TCP (iperf3)'] += j.end.sum_received.bytes;
    t.retransmits += j.end.sum_sent?.retransmits ?? 0;
  } catch (e) {
    fail(t, 'bulk TCP (iperf3)', `iperf3 ${reverse ? '-R ' : ''}: ${(e as Error).message} ${r.stderr}`);
  }
}

async function bulkHash(ns: Netns, streamPort: number, sinkPort: number, want: { down: string; up: string }, t: Totals): Promise<void> {
  const k = 'bulk TCP (sha256)';
  const url = `http://10.0.2.2:${streamPort}/stream/${HASH_BYTES}/${DOWN_SEED}`;
  const d = await ns.exec('bash', ['-c', `set -o pipefail; busybox wget -q -O - '${url}' | sha256sum`], { timeoutMs: 60_000 });
  const got = d.stdout.split(/\s/)[0];
  if (d.code !== 0) fail(t, k, `download: exit ${d.code ?? d.signal} ${d.stderr}`);
  else if (got !== want.down) fail(t, k, `download: sha256 ${got}, want ${want.down}`);
  else {
    t.ok[k]++;
    t.bytes[k] += HASH_BYTES;
  }
  const u = await ns.exec(process.execPath, ['-e', UPLOAD_CLIENT, '10.0.2.2', String(sinkPort), String(HASH_BYTES), UP_SEED], { timeoutMs: 60_000 });
  const r = parseUpload(u.stdout);
  if (u.code !== 0 || !r) fail(t, k, `upload: exit ${u.code ?? u.signal} ${u.stderr}`);
  else if (r.sha256 !== want.up || r.reply !== `${want.up} ${HASH_BYTES}`) fail(t, k, `upload: sent sha256 ${r.sha256}, host got ${r.reply}, want ${want.up}`);
  else {
    t.ok[k]++;
    t.bytes[k] += HASH_BYTES;
  }
}

async function pings(ns: Netns, t: Totals): Promise<void> {
  const r = await ns.exec('ping', ['-q', '-c', String(PINGS), '-i', '0.2', '-W', '2', '10.0.2.2'], { timeoutMs: PINGS * 200 + 15_000 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  if (!m) {
    fail(t, 'ICMP', `ping: exit ${r.code ?? r.signal} ${r.stdout} ${r.stderr}`);
    return;
  }
  const sent = Number(m[1]);
  const got = Number(m[2]);
  t.ok.ICMP += got;
  if (got < sent) {
    // fail() counts one; a lost ping is one error each.
    t.errors.ICMP += sent - got - 1;
    fail(t, 'ICMP', `${sent - got} of ${sent} pings of 10.0.2.2 lost`);
  }
}

// ---- the guest driver's counters ----------------------------------------------------------

interface DriverCounts {
  http: { ok: number; fail: number; inflight: number; lastError: string };
  udp: { sent: number; received: number; lost: number; bad: number; sockets: number; lastError: string };
  dns: { ok: number; fail: number; lastError: string };
}

function lastCounts(d: Daemon): DriverCounts | null {
  const lines = d.stdout.trimEnd().split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i]!.startsWith('COUNTS ')) return JSON.parse(lines[i]!.slice(7)) as DriverCounts;
  }
  return null;
}

/** Fold the driver's counters into the totals (they are cumulative: assign, do not add). */
function applyDriver(t: Totals, c: DriverCounts | null): void {
  if (!c) return;
  t.ok['short TCP (HTTP)'] = c.http.ok;
  t.errors['short TCP (HTTP)'] = c.http.fail;
  if (c.http.lastError) t.lastError['short TCP (HTTP)'] = c.http.lastError;
  t.ok.DNS = c.dns.ok;
  t.errors.DNS = c.dns.fail;
  if (c.dns.lastError) t.lastError.DNS = c.dns.lastError;
  t.ok['UDP echo'] = c.udp.received;
  // Loss within the tolerance is reported, not counted; judged on the final counts (and on the
  // running ones for the minute log).
  const tolerated = Math.min(c.udp.lost, Math.floor(c.udp.sent * UDP_LOSS_TOLERANCE));
  t.udpLostTolerated = tolerated;
  t.errors['UDP echo'] = c.udp.bad + (c.udp.lost - tolerated);
  if (c.udp.lastError) t.lastError['UDP echo'] = c.udp.lastError;
}

const sum = (r: Record<Kind, number>): number => KINDS.reduce((a, k) => a + r[k], 0);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- main -----------------------------------------------------------------------------------

async function main(): Promise<number> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`soak: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const why = prerequisites();
  if (why) {
    console.error(`soak: cannot run: ${why}`);
    return 2;
  }

  let interrupted = false;
  const onSignal = (): void => {
    if (!interrupted) console.log('soak: interrupted; finishing the current minute and writing the report');
    interrupted = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const names: { name: string; a?: string }[] = [];
  const records: Record<string, { a: string }> = {};
  for (let i = 0; i < 50; i++) {
    if (i % 10 === 9) {
      names.push({ name: `missing-${i}.soak.guestnet.test` });
    } else {
      const a = `192.0.2.${i + 1}`; // TEST-NET-1: only ever an answer, never contacted
      names.push({ name: `host-${i}.soak.guestnet.test`, a });
      records[`host-${i}.soak.guestnet.test`] = { a };
    }
  }
  const dns = await startDnsServer(records);
  const web = await startHttpServer(BODY);
  const hash = await startHashServers();
  const udpEcho = dgram.createSocket('udp4');
  udpEcho.on('message', (msg, rinfo) => udpEcho.send(msg, rinfo.port, rinfo.address));
  const udpPort = await new Promise<number>((r) => udpEcho.bind(0, '127.0.0.1', () => r(udpEcho.address().port)));
  let iperfPort = await freePort();
  let iperf = await startIperfServer(iperfPort);
  const want = { down: expectedSha256(DOWN_SEED, HASH_BYTES), up: expectedSha256(UP_SEED, HASH_BYTES) };

  const ns = await createNetns('soak');
  const config = `backend=slirp,dns-upstream=127.0.0.1#${dns.port},allow=127.0.0.0/8`;
  const attachArgs = [CLI, 'attach', '--netns', ns.path, '--tap', 'tap0', '--configure', config];
  const attach = new Daemon(process.execPath, attachArgs, { cwd: ROOT });
  let driver: Daemon | null = null;
  let sampler: ReturnType<typeof setInterval> | null = null;
  const cleanup = async (): Promise<void> => {
    if (sampler) clearInterval(sampler);
    await driver?.stop('SIGKILL');
    await attach.stop('SIGTERM', 5000);
    await iperf.stop('SIGKILL');
    await killAll();
    await deleteAllNetns();
    udpEcho.close();
    await Promise.all([dns.close(), web.close(), hash.close()]);
  };

  try {
    const m = await attach.waitFor(/^attached .*$/m, 60_000);
    const attachLine = m[0];
    const pid = attach.child.pid!;
    console.log(`soak: ${attachLine} (pid ${pid})`);
    const first = await ns.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.0.2.2'], { timeoutMs: 15_000 });
    if (first.code !== 0) throw new Error(`the namespace cannot reach the gateway:\n${first.stdout}${first.stderr}`);
    // slirp opens its DNS relay's upstream socket on the first query and keeps it: make that
    // happen before the idle baseline, so that it is not taken for a leak.
    const primed = await ns.exec('busybox', ['nslookup', names[0]!.name, '10.0.2.3'], { timeoutMs: 15_000 });
    if (primed.code !== 0) throw new Error(`DNS through 10.0.2.3 does not work:\n${primed.stdout}${primed.stderr}`);
    await sleep(2000);
    const baseTargets = fdTargets(pid);
    const fdsIdleBaseline = baseTargets.length;

    const totals = newTotals();
    const samples: Sample[] = [];
    const rows: MinuteRow[] = [];
    const loadStart = loadavg();
    const t0 = performance.now();
    const now = (): number => (performance.now() - t0) / 1000;
    samples.push(sample(pid, 0));
    rows.push({ minute: 0, sample: samples[0]!, ok: { ...totals.ok }, errors: 0 });
    sampler = setInterval(() => {
      try {
        samples.push(sample(pid, now()));
      } catch {
        // the process is gone; the minute loop notices
      }
    }, SAMPLE_EVERY_MS);

    driver = ns.spawn(process.execPath, [
      DRIVER,
      JSON.stringify({
        gateway: '10.0.2.2',
        httpPort: web.port,
        body: BODY,
        httpPerSec: HTTP_PER_SEC,
        udpPort,
        udpPerSec: UDP_PER_SEC,
        udpPerSocket: UDP_PER_SOCKET,
        dns: '10.0.2.3',
        dnsPerSec: DNS_PER_SEC,
        names,
        reportMs: 5000,
      }),
    ]);
    console.log(`soak: ${args.minutes} minute(s) of mixed traffic; samples every ${SAMPLE_EVERY_MS / 1000} s; report → ${args.out}`);

    let minutesRun = 0;
    for (let minute = 0; minute < args.minutes && !interrupted; minute++) {
      const minuteEnd = t0 + (minute + 1) * 60_000;
      const iperfErrors = totals.errors['bulk TCP (iperf3)'];
      await Promise.all([
        bulkIperf(ns, iperfPort, args.rate, minute % 2 === 1, totals).then(async () => {
          if (totals.errors['bulk TCP (iperf3)'] > iperfErrors) {
            // An iperf3 server may stay stuck after a failed test: start a fresh one.
            await iperf.stop('SIGKILL');
            iperfPort = await freePort();
            iperf = await startIperfServer(iperfPort);
          }
        }),
        bulkHash(ns, hash.streamPort, hash.sinkPort, want, totals),
        pings(ns, totals),
      ]);
      const wait = minuteEnd - performance.now();
      if (wait > 0) await sleep(wait);
      if (attach.child.exitCode !== null || attach.child.signalCode !== null) {
        throw new Error(`guestnet attach exited during the soak (${attach.child.exitCode ?? attach.child.signalCode}): ${attach.stderr.slice(-2000)}`);
      }
      applyDriver(totals, lastCounts(driver));
      const s = sample(pid, now());
      samples.push(s);
      const errors = sum(totals.errors);
      rows.push({ minute: minute + 1, sample: s, ok: { ...totals.ok }, errors });
      minutesRun = minute + 1;
      console.log(
        `soak: [${minute + 1}/${args.minutes}] rss ${s.rssMiB} MiB, fds ${s.fds} (sockets ${s.sockets}), cpu ${s.cpuS} s | ` +
          KINDS.map((k) => `${k} ${totals.ok[k]}`).join(', ') +
          ` | errors ${errors}`,
      );
    }
    const elapsedS = now();
    clearInterval(sampler);
    sampler = null;

    // Stop the guest's traffic, collect its final counters.
    await driver.stop('SIGTERM', 20_000);
    applyDriver(totals, lastCounts(driver));
    const c = lastCounts(driver);

    // Traffic has stopped: wait for slirp's idle UDP flows (60 s timeout) to expire and the fds to
    // return to the idle baseline. What stays above it is a leak.
    const q0 = performance.now();
    let after = fdCounts(pid);
    while (after.fds > fdsIdleBaseline && performance.now() - q0 < 80_000) {
      await sleep(2000);
      after = fdCounts(pid);
    }
    const leftOver = extraTargets(baseTargets, fdTargets(pid)).map((t) => describeSocket(pid, t));
    const fdsAfter = { fds: after.fds, waitedS: (performance.now() - q0) / 1000, extra: leftOver };
    const fdLeak = Math.max(0, after.fds - fdsIdleBaseline);
    if (leftOver.length) console.log(`soak: fds open after traffic stopped beyond the idle baseline:\n  ${leftOver.join('\n  ')}`);

    const attachExit = await attach.stop('SIGTERM', 10_000);
    const attachClean = attachExit.code === 0 && attachExit.signal === null;
    if (!attachClean) console.log(`soak: ERROR guestnet attach exited ${attachExit.code ?? attachExit.signal} on SIGTERM: ${attach.stderr.slice(-1000)}`);
    if (!c) fail(totals, 'short TCP (HTTP)', `the guest driver reported nothing: ${driver.stderr.slice(-1000)}`);

    const errors = sum(totals.errors) + (attachClean ? 0 : 1);
    const kindTotals: Record<string, KindTotals> = {};
    for (const k of KINDS) kindTotals[k] = { ok: totals.ok[k], errors: totals.errors[k], ...(totals.lastError[k] ? { lastError: totals.lastError[k] } : {}) };
    kindTotals['bulk TCP (iperf3)']!.bytes = totals.bytes['bulk TCP (iperf3)'];
    kindTotals['bulk TCP (iperf3)']!.note = `${totals.ok['bulk TCP (iperf3)']} runs of ${BULK_SECONDS} s at ${args.rate}bit/s, alternating directions; ${totals.retransmits} TCP retransmits by the senders.`;
    kindTotals['bulk TCP (sha256)']!.bytes = totals.bytes['bulk TCP (sha256)'];
    kindTotals['bulk TCP (sha256)']!.note = `16 MiB transfers, each way every minute, sha256 verified.`;
    kindTotals['short TCP (HTTP)']!.note = `one connection per request, ${HTTP_PER_SEC}/s.`;
    kindTotals['UDP echo']!.note = c
      ? `${c.udp.sent} sent, ${c.udp.received} echoed, ${c.udp.lost} lost (${totals.udpLostTolerated} within the 0.1% tolerance), ${c.udp.bad} wrong; ${c.udp.sockets} sockets (flows) of ${UDP_PER_SOCKET} datagrams.`
      : 'no counters from the guest driver';
    kindTotals.DNS!.note = `A lookups through 10.0.2.3, ${DNS_PER_SEC}/s, one in ten for a name that must give NXDOMAIN.`;
    kindTotals.ICMP!.note = `${PINGS} pings of 10.0.2.2 each minute.`;
    kindTotals['backend exit'] = {
      ok: attachClean ? 1 : 0,
      errors: attachClean ? 0 : 1,
      note: `guestnet attach exited ${attachExit.code ?? attachExit.signal} on SIGTERM at the end (0 expected).`,
    };

    const results: SoakResults = {
      date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      minutes: minutesRun,
      elapsedS: Math.round(elapsedS),
      interrupted,
      host: { kernel: release(), cpus: availableParallelism(), node: process.version, loadavgStart: loadStart, loadavgEnd: loadavg() },
      attach: { command: `guestnet attach --netns /run/netns/gn-soak-PID --tap tap0 --configure 'backend=slirp,dns-upstream=127.0.0.1#PORT,allow=127.0.0.0/8'`, line: attachLine, pid },
      traffic: {
        description: [
          `bulk TCP: iperf3 for ${BULK_SECONDS} s each minute at ${args.rate}bit/s, guest → host in even minutes, host → guest (-R) in odd ones`,
          `bulk TCP, verified: each minute 16 MiB host → guest (\`busybox wget -O - | sha256sum\`) and 16 MiB guest → host (node client → hashing sink), sha256 compared`,
          `short TCP connections: ${HTTP_PER_SEC} HTTP GETs a second, each on a new connection (guest/driver.mjs)`,
          `UDP echo: ${UDP_PER_SEC} datagrams a second (16-1400 bytes), a new socket every ${UDP_PER_SOCKET}, replies awaited 3 s`,
          `DNS: ${DNS_PER_SEC} A lookups a second through slirp's relay 10.0.2.3 to the soak's resolver on 127.0.0.1`,
          `ICMP: ${PINGS} pings of the gateway 10.0.2.2 each minute`,
        ],
        httpPerSec: HTTP_PER_SEC,
        udpPerSec: UDP_PER_SEC,
        udpPerSocket: UDP_PER_SOCKET,
        dnsPerSec: DNS_PER_SEC,
      },
      limits: DEFAULT_LIMITS,
      samples,
      rows,
      totals: kindTotals,
      errors,
      fdsIdleBaseline,
      fdsAfter,
      verdict: verdict(samples, errors, fdLeak, DEFAULT_LIMITS),
    };
    mkdirSync(dirname(args.out), { recursive: true });
    mkdirSync(dirname(args.json), { recursive: true });
    writeFileSync(args.out, markdown(results, KINDS));
    writeFileSync(args.json, `${JSON.stringify(results, null, 2)}\n`);
    const rv = results.verdict;
    console.log(
      `soak: ${rv.pass ? 'PASS' : 'FAIL'} after ${minutesRun} min: ${results.errors} error(s); ` +
        `RSS slope ${rv.rss.slopePerHour.toFixed(1)} ± ${rv.rss.stderrPerHour.toFixed(1)} MiB/h, fd slope ${rv.fds.slopePerHour.toFixed(1)} ± ${rv.fds.stderrPerHour.toFixed(1)}/h ` +
        `(after the first minute${rv.judged ? '' : '; too short to judge'}); fds ${fdsIdleBaseline} idle → ${fdsAfter.fds} after` +
        (rv.reasons.length ? `; ${rv.reasons.join('; ')}` : ''),
    );
    for (const k of KINDS) console.log(`soak:   ${k}: ${kindTotals[k]!.ok} ok, ${kindTotals[k]!.errors} errors${kindTotals[k]!.bytes ? `, ${(kindTotals[k]!.bytes! / 1024 ** 3).toFixed(2)} GiB` : ''}`);
    console.log(`soak: wrote ${args.out} and ${args.json}`);
    return rv.pass ? 0 : 1;
  } catch (e) {
    console.error(`soak: failed: ${(e as Error).message}`);
    return 1;
  } finally {
    await cleanup();
  }
}

process.exitCode = await main();
