/**
 * `pnpm bench` (issue 8): guestnet's user-mode networking against slirp4netns, pasta and a
 * kernel veth pair (the ceiling), on one topology: a guest network namespace with a TAP device
 * (veth for the ceiling) whose gateway 10.0.2.2 leads to servers on host 127.0.0.1. Rounds are
 * interleaved (A B C D, A B C D, …) so that drift on a shared machine hits every peer alike; each
 * peer instance is started fresh per round and MTU. See docs/performance.md.
 *
 *   pnpm bench -- [--runs N] [--quick] [--seconds S] [--peers a,b] [--note TEXT] [--no-install]
 *   pnpm bench -- --render bench/results/DATE.json     (rewrite the docs from stored samples)
 *
 * Installs missing peers with apt-get (slirp4netns, passt, iperf3). Writes all samples to
 * bench/results/<date>.json, and the markdown tables + docs/perf-<date>.svg into
 * docs/performance.md between its `bench:begin`/`bench:end` markers (a --quick run writes
 * bench/results/<date>-quick.{json,md,svg} and leaves docs/ alone).
 *
 * Needs root, /dev/net/tun, iproute2, node. Network safety: traffic only on loopback and inside
 * the namespaces created here (`gn-bench-*-<pid>`, deleted afterwards, also on failure).
 */
import dgram from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { guestnetPeer, pastaPeer, setRoot, slirp4netnsPeer, vethPeer, type Peer, type RunningPeer } from './peers.ts';
import { cpuSeconds, killAll, memory, run } from './proc.ts';
import { BASELINE, markdown, METRICS, svg, type PeerInfo, type Results, type RoundRecord, type Sample } from './report.ts';
import { connectionRate, holdIdle, iperfTcp, iperfUdp, pingPong, startEchoServer, startIperfServer } from './workloads.ts';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

interface Options {
  runs: number;
  quick: boolean;
  seconds: number;
  shortSeconds: number;
  idle: number;
  peers: string[] | null;
  note: string;
  install: boolean;
  /** Re-render the docs from this results file instead of measuring. */
  render: string | null;
}

const USAGE = 'usage: pnpm bench -- [--runs N] [--quick] [--seconds S] [--peers guestnet-slirp,slirp4netns,…] [--note TEXT] [--no-install] | --render bench/results/DATE.json';

function parseArgs(argv: string[]): Options {
  const o: Options = { runs: 5, quick: false, seconds: 5, shortSeconds: 3, idle: 1000, peers: null, note: '', install: true, render: null };
  let runsGiven = false;
  let secondsGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === '--') continue;
    else if (a === '--runs') (o.runs = Number(val())), (runsGiven = true);
    else if (a === '--quick') o.quick = true;
    else if (a === '--seconds') (o.seconds = Number(val())), (secondsGiven = true);
    else if (a === '--peers') o.peers = val().split(',');
    else if (a === '--note') o.note = val();
    else if (a === '--no-install') o.install = false;
    else if (a === '--render') o.render = val();
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  if (o.quick) {
    if (!runsGiven) o.runs = 1;
    if (!secondsGiven) o.seconds = 2;
    o.shortSeconds = 1;
  }
  if (!Number.isInteger(o.runs) || o.runs < 1) throw new Error(`--runs takes a positive integer\n${USAGE}`);
  if (!(o.seconds >= 1)) throw new Error(`--seconds takes a number ≥ 1\n${USAGE}`);
  return o;
}

async function ensurePackages(): Promise<void> {
  const need: string[] = [];
  const has = async (t: string): Promise<boolean> => (await run('sh', ['-c', `command -v ${t}`])).code === 0;
  if (!(await has('slirp4netns'))) need.push('slirp4netns');
  if (!(await has('pasta'))) need.push('passt');
  if (!(await has('iperf3'))) need.push('iperf3');
  if (!need.length) return;
  console.log(`installing ${need.join(' ')} with apt-get`);
  const env = 'DEBIAN_FRONTEND=noninteractive';
  let r = await run('sh', ['-c', `${env} apt-get install -y ${need.join(' ')}`], 600_000);
  if (r.code !== 0) {
    await run('sh', ['-c', `${env} apt-get update`], 600_000);
    r = await run('sh', ['-c', `${env} apt-get install -y ${need.join(' ')}`], 600_000);
  }
  if (r.code !== 0) console.warn(`apt-get install ${need.join(' ')} failed (the peers will be reported as not available): ${r.stderr.trim().slice(-400)}`);
}

function machine(note: string): Results['machine'] {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpu)?.[1]?.trim() ?? 'unknown';
  return { nproc: availableParallelism(), model, kernel: release(), node: process.version, sharedMachine: note };
}

// Host-side connection counts of the live echo servers (recorded with the idle-connection RSS).
const echoCounts = new Map<number, () => number>();
function echoCount(port: number): number | null {
  return echoCounts.get(port)?.() ?? null;
}

/** Everything measured on one peer in one round. */
async function measurePeer(peer: Peer, round: number, o: Options, dnsPort: number): Promise<RoundRecord> {
  const rec: RoundRecord = { round, peer: peer.name, startedAt: new Date().toISOString(), metrics: {}, notes: [] };
  const ctx = { root: ROOT, dnsPort };
  const cpu = { seconds: 0, bytes: 0 };
  const hwm: number[] = [];

  const guard = async (inst: RunningPeer, keys: string[], f: () => Promise<void>): Promise<void> => {
    try {
      await f();
    } catch (e) {
      const msg = (e as Error).message.split('\n')[0]!.slice(0, 300);
      for (const k of keys) if (!rec.metrics[k]) rec.metrics[k] = { error: msg };
    }
    if (inst.pid && !existsSync(`/proc/${inst.pid}`)) {
      const m = `backend process exited during the run`;
      if (!rec.notes.includes(m)) rec.notes.push(m);
    }
  };

  const tcp = async (inst: RunningPeer, port: number, key: string, reverse: boolean): Promise<void> => {
    await guard(inst, [key], async () => {
      const c0 = inst.pid ? cpuSeconds(inst.pid) : Number.NaN;
      const r = await iperfTcp(inst.ns, inst.target, port, o.seconds, reverse);
      const c1 = inst.pid ? cpuSeconds(inst.pid) : Number.NaN;
      const s: Sample = { value: r.bitsPerSecond, detail: { bytes: r.bytes, seconds: r.seconds, retransmits: r.retransmits, cpuSeconds: c1 - c0 } };
      if (r.stalled) s.stalled = r.stalled;
      else if (Number.isFinite(c1 - c0)) {
        cpu.seconds += c1 - c0;
        cpu.bytes += r.bytes;
      }
      rec.metrics[key] = s;
    });
  };

  const phase = async (mtu: number, body: (inst: RunningPeer, iperfPort: number, echoPort: number) => Promise<void>, keys: string[]): Promise<void> => {
    let inst: RunningPeer;
    try {
      inst = await peer.start(mtu, ctx);
    } catch (e) {
      const why = (e as Error).message.split('\n')[0]!.slice(0, 300);
      // A backend whose configuration cannot take this MTU is not applicable there, not broken.
      const msg = /maximum mtu/i.test(why) ? `n/a: ${why.replace(/^.*guestnet: /, '')}` : `${peer.name} did not start at MTU ${mtu}: ${why}`;
      for (const k of keys) rec.metrics[k] = { error: msg };
      rec.notes.push(msg);
      return;
    }
    rec.notes.push(`MTU ${mtu}: ${inst.note} (link mtu ${inst.mtu})`);
    let iperf: Awaited<ReturnType<typeof startIperfServer>> | null = null;
    let echo: Awaited<ReturnType<typeof startEchoServer>> | null = null;
    try {
      iperf = await startIperfServer(inst.bind);
      echo = await startEchoServer(inst.bind);
      echoCounts.set(echo.port, echo.connections);
      await body(inst, iperf.port, echo.port);
      if (inst.pid) hwm.push(memory(inst.pid).hwm);
    } catch (e) {
      const msg = (e as Error).message.split('\n')[0]!.slice(0, 300);
      for (const k of keys) if (!rec.metrics[k]) rec.metrics[k] = { error: msg };
    } finally {
      await iperf?.d.stop('SIGKILL');
      if (echo) echoCounts.delete(echo.port);
      await echo?.close();
      await inst.stop();
    }
  };

  const kernel = (keys: string[]): void => {
    for (const k of keys) rec.metrics[k] = { error: 'n/a: kernel datapath, no backend process' };
  };

  await phase(
    1500,
    async (inst, iperfPort, echoPort) => {
      await tcp(inst, iperfPort, 'tcp_up_1500', false);
      await tcp(inst, iperfPort, 'tcp_down_1500', true);
      for (const size of [64, 1472]) {
        const key = `udp${size}_pps`;
        await guard(inst, [key], async () => {
          const u = await iperfUdp(inst.ns, inst.target, iperfPort, o.shortSeconds, size);
          rec.metrics[key] = { value: u.packetsPerSecond, detail: { sent: u.sent, lost: u.lost, seconds: u.seconds } };
        });
      }
      await guard(inst, ['rr_p50', 'rr_p99'], async () => {
        const p = await pingPong(inst.ns, inst.target, echoPort, o.shortSeconds);
        rec.metrics.rr_p50 = { value: p.p50us, detail: { roundTrips: p.roundTrips, meanUs: p.meanUs } };
        rec.metrics.rr_p99 = { value: p.p99us };
      });
      await guard(inst, ['conn_rate'], async () => {
        const c = await connectionRate(inst.ns, inst.target, echoPort, o.shortSeconds);
        if (c.connections === 0) throw new Error(`no connection completed (${c.errors} failed, last: ${c.lastError})`);
        rec.metrics.conn_rate = { value: c.perSecond, detail: { connections: c.connections, errors: c.errors, lastError: c.lastError } };
      });
      if (!inst.pid) return kernel(['rss_idle1000', 'peak_rss_idle1000']);
      await guard(inst, ['rss_idle1000', 'peak_rss_idle1000'], async () => {
        const m = await holdIdle(inst.ns, inst.target, echoPort, o.idle, () => memory(inst.pid));
        rec.metrics.rss_idle1000 = { value: m.rss, detail: { hostSideConnections: echoCount(echoPort) } };
        rec.metrics.peak_rss_idle1000 = { value: m.hwm };
      });
    },
    ['tcp_up_1500', 'tcp_down_1500', 'udp64_pps', 'udp1472_pps', 'rr_p50', 'rr_p99', 'conn_rate', 'rss_idle1000', 'peak_rss_idle1000'],
  );
  await phase(
    65520,
    async (inst, iperfPort) => {
      await tcp(inst, iperfPort, 'tcp_up_65520', false);
      await tcp(inst, iperfPort, 'tcp_down_65520', true);
    },
    ['tcp_up_65520', 'tcp_down_65520'],
  );
  if (peer.name === 'veth') kernel(['cpu_per_gb', 'peak_rss']);
  else {
    rec.metrics.cpu_per_gb = cpu.bytes > 0 ? { value: cpu.seconds / (cpu.bytes / 1e9), detail: cpu } : { error: 'no completed TCP transfer to divide by' };
    rec.metrics.peak_rss = hwm.length ? { value: Math.max(...hwm) } : { error: 'backend did not run' };
  }
  return rec;
}


function today(): string {
  return new Date().toISOString().slice(0, 10);
}

function writeOutputs(res: Results, o: Options): { json: string; md: string; svgPath: string } {
  const resultsDir = join(ROOT, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  const stem = o.quick ? `${res.date}-quick` : res.date;
  const json = join(resultsDir, `${stem}.json`);
  writeFileSync(json, `${JSON.stringify(res, null, 2)}\n`);
  if (o.quick) {
    const svgPath = join(resultsDir, `${stem}.svg`);
    writeFileSync(svgPath, svg(res));
    const md = join(resultsDir, `${stem}.md`);
    writeFileSync(md, markdown(res, `${stem}.svg`));
    return { json, md, svgPath };
  }
  const svgPath = join(ROOT, 'docs', `perf-${res.date}.svg`);
  writeFileSync(svgPath, svg(res));
  const md = join(ROOT, 'docs/performance.md');
  const table = markdown(res, `perf-${res.date}.svg`);
  const begin = '<!-- bench:begin (generated by pnpm bench; edits here are overwritten) -->';
  const end = '<!-- bench:end -->';
  let doc = existsSync(md) ? readFileSync(md, 'utf8') : `# Performance\n\n${begin}\n${end}\n`;
  const i = doc.indexOf('<!-- bench:begin');
  const j = doc.indexOf(end);
  if (i < 0 || j < 0) doc += `\n${begin}\n${table}${end}\n`;
  else doc = `${doc.slice(0, i)}${begin}\n${table}${doc.slice(j)}`;
  writeFileSync(md, doc);
  writeFileSync(join(resultsDir, `${res.date}.md`), table);
  return { json, md, svgPath };
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  if (o.render) {
    const res = JSON.parse(readFileSync(o.render, 'utf8')) as Results;
    const out = writeOutputs(res, { ...o, quick: res.options.quick });
    console.log(`wrote ${out.json}, ${out.md}, ${out.svgPath}`);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    console.error('pnpm bench needs root (network namespaces, TAP devices, veth pairs)');
    return 2;
  }
  setRoot(ROOT);
  if (o.install) await ensurePackages();

  const all: Peer[] = [guestnetPeer('slirp'), guestnetPeer('uip'), slirp4netnsPeer, pastaPeer, vethPeer];
  const chosen = o.peers ? all.filter((p) => o.peers!.includes(p.name) || p.name === BASELINE) : all;
  const infos: PeerInfo[] = [];
  for (const p of chosen) infos.push({ name: p.name, version: await p.version().catch((e: Error) => `unknown (${e.message})`), unavailable: await p.unavailable() });
  // A start-up probe: a peer that cannot even come up (a backend not installed, a tool that
  // fails here) is reported once as not available, with its error, instead of failing every cell.
  const dnsProbe = dgram.createSocket('udp4');
  await new Promise<void>((r) => dnsProbe.bind(0, '127.0.0.1', r));
  for (const p of chosen) {
    const info = infos.find((i) => i.name === p.name)!;
    if (info.unavailable) continue;
    try {
      const inst = await p.start(1500, { root: ROOT, dnsPort: dnsProbe.address().port });
      await inst.stop();
    } catch (e) {
      info.unavailable = `does not start: ${(e as Error).message.split('\n')[0]!.slice(0, 300)}`;
    }
  }
  dnsProbe.close();
  const runnable = chosen.filter((p) => !infos.find((i) => i.name === p.name)!.unavailable);

  // slirp's DNS relay must point at a resolver on 127.0.0.1: a socket that answers nothing (no DNS is used).
  const dns = dgram.createSocket('udp4');
  await new Promise<void>((r) => dns.bind(0, '127.0.0.1', r));
  const dnsPort = dns.address().port;

  const load0 = loadavg()[0]!.toFixed(2);
  const res: Results = {
    date: today(),
    machine: machine(''),
    options: { runs: o.runs, quick: o.quick, seconds: o.seconds, shortSeconds: o.shortSeconds, idleConnections: o.idle },
    peers: infos,
    rounds: [],
  };
  for (const i of infos) console.log(`${i.name}: ${i.version}${i.unavailable ? ` — NOT AVAILABLE: ${i.unavailable}` : ''}`);
  const stopAll = async (): Promise<void> => {
    await killAll();
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  process.once('SIGTERM', () => void stopAll().then(() => process.exit(143)));
  try {
    for (let round = 1; round <= o.runs; round++) {
      for (const p of runnable) {
        const t0 = Date.now();
        const rec = await measurePeer(p, round, o, dnsPort);
        res.rounds.push(rec);
        const brief = METRICS.filter((m) => rec.metrics[m.key])
          .map((m) => {
            const s = rec.metrics[m.key]!;
            return `${m.key}=${s.value !== undefined ? (s.value * m.scale).toPrecision(3) : 'ERR'}${s.stalled ? '(stalled)' : ''}`;
          })
          .join(' ');
        console.log(`round ${round}/${o.runs} ${p.name} (${((Date.now() - t0) / 1000).toFixed(0)} s): ${brief}`);
        for (const [k, s] of Object.entries(rec.metrics)) if (s.error && !s.error.startsWith('n/a')) console.log(`  ${k}: ${s.error}`);
        for (const s of Object.values(rec.metrics)) if (s.stalled) console.log(`  ${s.stalled}`);
        res.machine.sharedMachine = sharedNote(o.note, load0);
        writeOutputs(res, o); // after every peer: an interrupted run keeps what it measured
      }
    }
  } finally {
    dns.close();
    await stopAll();
  }
  const out = writeOutputs(res, o);
  console.log(`\nwrote ${out.json}\n      ${out.md}\n      ${out.svgPath}\n`);
  console.log(markdown(res, out.svgPath));
  return 0;
}

function sharedNote(note: string, load0: string): string {
  return `1-minute load average ${load0} at the start, ${loadavg()[0]!.toFixed(2)} at the last peer.${note ? ` ${note}` : ''}`;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(e.message);
    void killAll().then(() => process.exit(1));
  },
);
