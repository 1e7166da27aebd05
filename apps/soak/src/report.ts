/**
 * The soak's arithmetic and its report: least-squares slopes (with their standard error) of
 * memory and fd counts over time, the pass/fail verdict, and the markdown page (docs/soak.md).
 * Pure functions, unit-tested in report.test.ts; main.ts gathers the numbers.
 */

/** One sample of the attach process (every 10 s; the minute marks are shown in the table). */
export interface Sample {
  /** Seconds since traffic started. */
  t: number;
  /** VmRSS, MiB. */
  rssMiB: number;
  /** Open file descriptors (/proc/PID/fd). */
  fds: number;
  /** Of which sockets (host sockets of slirp's flows, listeners, the DNS relay's). */
  sockets: number;
  /** utime + stime, seconds. */
  cpuS: number;
}

/** Cumulative counts of one traffic kind. */
export interface KindTotals {
  /** Operations that succeeded (connections, datagrams echoed, lookups, pings, transfers). */
  ok: number;
  /** Errors counted against the run. */
  errors: number;
  /** Bytes moved, where meaningful. */
  bytes?: number;
  /** Anything else worth showing (lost-within-tolerance, retransmits, …). */
  note?: string;
  /** The last error seen, for diagnosis. */
  lastError?: string;
}

export interface MinuteRow {
  minute: number;
  sample: Sample;
  /** Cumulative ok counts per kind at that minute. */
  ok: Record<string, number>;
  /** Cumulative errors (all kinds) at that minute. */
  errors: number;
}

export interface Fit {
  /** Units per hour. */
  slopePerHour: number;
  /** Standard error of the slope, units per hour. */
  stderrPerHour: number;
  /** Samples used. */
  n: number;
}

/**
 * Least-squares line through (t seconds, y); the slope in y units per hour. Fewer than three
 * points or no spread in t give a zero slope with an infinite error (nothing can be said).
 */
export function fitPerHour(points: readonly { t: number; y: number }[]): Fit {
  const n = points.length;
  if (n < 3) return { slopePerHour: 0, stderrPerHour: Infinity, n };
  let mt = 0;
  let my = 0;
  for (const p of points) {
    mt += p.t;
    my += p.y;
  }
  mt /= n;
  my /= n;
  let stt = 0;
  let sty = 0;
  for (const p of points) {
    stt += (p.t - mt) ** 2;
    sty += (p.t - mt) * (p.y - my);
  }
  if (stt === 0) return { slopePerHour: 0, stderrPerHour: Infinity, n };
  const slope = sty / stt;
  let sse = 0;
  for (const p of points) sse += (p.y - my - slope * (p.t - mt)) ** 2;
  const se = Math.sqrt(sse / (n - 2) / stt);
  return { slopePerHour: slope * 3600, stderrPerHour: se * 3600, n };
}

/** Limits the verdict applies; see docs/soak.md ("How to read this") for why these values. */
export interface Limits {
  /** Maximum RSS slope after warm-up, MiB per hour. */
  rssSlopeMiBPerHour: number;
  /** Maximum fd slope after warm-up, fds per hour. */
  fdSlopePerHour: number;
  /** Slopes are judged only with at least this many minutes of post-warm-up samples. */
  minJudgedMinutes: number;
  /** Warm-up excluded from the fits, seconds. */
  warmupS: number;
}

export const DEFAULT_LIMITS: Limits = { rssSlopeMiBPerHour: 10, fdSlopePerHour: 5, minJudgedMinutes: 20, warmupS: 60 };

export interface Verdict {
  rss: Fit;
  fds: Fit;
  /** Whether the run was long enough to judge the slopes. */
  judged: boolean;
  pass: boolean;
  reasons: string[];
}

export function verdict(samples: readonly Sample[], totalErrors: number, fdLeak: number, limits: Limits = DEFAULT_LIMITS): Verdict {
  const after = samples.filter((s) => s.t >= limits.warmupS);
  const rss = fitPerHour(after.map((s) => ({ t: s.t, y: s.rssMiB })));
  const fds = fitPerHour(after.map((s) => ({ t: s.t, y: s.fds })));
  const span = after.length ? (after[after.length - 1]!.t - after[0]!.t) / 60 : 0;
  const judged = span >= limits.minJudgedMinutes;
  const reasons: string[] = [];
  if (totalErrors > 0) reasons.push(`${totalErrors} error(s)`);
  if (fdLeak > 0) reasons.push(`${fdLeak} fd(s) still open after traffic stopped (above the idle baseline)`);
  if (judged && rss.slopePerHour > limits.rssSlopeMiBPerHour) {
    reasons.push(`RSS grows ${rss.slopePerHour.toFixed(1)} MiB/h > ${limits.rssSlopeMiBPerHour} MiB/h`);
  }
  if (judged && fds.slopePerHour > limits.fdSlopePerHour) {
    reasons.push(`fds grow ${fds.slopePerHour.toFixed(1)}/h > ${limits.fdSlopePerHour}/h`);
  }
  return { rss, fds, judged, pass: reasons.length === 0, reasons };
}

export interface SoakResults {
  date: string;
  minutes: number;
  /** Actual wall time of the traffic phase, seconds. */
  elapsedS: number;
  interrupted: boolean;
  host: { kernel: string; cpus: number; node: string; loadavgStart: number[]; loadavgEnd: number[] };
  attach: { command: string; line: string; pid: number };
  traffic: { description: string[]; httpPerSec: number; udpPerSec: number; udpPerSocket: number; dnsPerSec: number };
  limits: Limits;
  samples: Sample[];
  rows: MinuteRow[];
  totals: Record<string, KindTotals>;
  errors: number;
  fdsIdleBaseline: number;
  fdsAfter: { fds: number; waitedS: number; /** Descriptions of the fds beyond the baseline. */ extra?: string[] };
  verdict: Verdict;
}

const f1 = (n: number): string => n.toFixed(1);
const fmtFit = (f: Fit, unit: string): string =>
  Number.isFinite(f.stderrPerHour) ? `${f.slopePerHour >= 0 ? '+' : ''}${f1(f.slopePerHour)} ± ${f1(f.stderrPerHour)} ${unit}/h (${f.n} samples)` : `n/a (${f.n} samples)`;
const bytesH = (b: number): string => (b >= 1024 ** 3 ? `${(b / 1024 ** 3).toFixed(2)} GiB` : `${(b / 1024 ** 2).toFixed(1)} MiB`);

/** The markdown page; `kinds` are the traffic kinds shown per minute (all of `totals` go in the totals table). */
export function markdown(r: SoakResults, kinds: readonly string[]): string {
  const v = r.verdict;
  const warm = r.limits.warmupS === 60 ? 'the first minute' : `the first ${r.limits.warmupS / 60} minutes`;
  const L: string[] = [];
  L.push('# Soak: mixed traffic through slirp');
  L.push('');
  L.push('<!-- Written by `pnpm soak` (apps/soak); rerun it to refresh this page. -->');
  L.push('');
  L.push(
    `**${v.pass ? 'PASS' : 'FAIL'}** — ${r.minutes} minute run${r.interrupted ? ' (interrupted)' : ''} on ${r.date}: ` +
      `${r.errors} error(s); RSS slope ${fmtFit(v.rss, 'MiB')}, fd slope ${fmtFit(v.fds, 'fds')} ` +
      `(least squares over the 10-second samples after ${warm} of warm-up)` +
      (v.judged ? '.' : `; a run under ${r.limits.minJudgedMinutes} minutes after warm-up is too short to judge the slopes, so they are shown but not judged.`),
  );
  if (v.reasons.length) L.push('', `Failed because: ${v.reasons.join('; ')}.`);
  L.push('');
  L.push('## Set-up');
  L.push('');
  L.push(`- Host: Linux ${r.host.kernel}, ${r.host.cpus} CPUs, Node ${r.host.node}; load average ${r.host.loadavgStart.map(f1).join(' ')} at the start, ${r.host.loadavgEnd.map(f1).join(' ')} at the end.`);
  L.push(`- Backend process (the one measured): \`${r.attach.command}\``);
  L.push(`  - ${r.attach.line}`);
  L.push('- Guest: the Linux kernel in a network namespace, addressing only the gateway 10.0.2.2 (host 127.0.0.1) and the DNS relay 10.0.2.3 (relayed to a resolver the soak runs on 127.0.0.1).');
  L.push('- Traffic, all at once for the whole run:');
  for (const d of r.traffic.description) L.push(`  - ${d}`);
  L.push('');
  L.push('## Totals');
  L.push('');
  L.push('| traffic | ok | errors | bytes | notes |');
  L.push('|---|---:|---:|---:|---|');
  for (const [k, t] of Object.entries(r.totals)) {
    L.push(`| ${k} | ${t.ok} | ${t.errors} | ${t.bytes !== undefined ? bytesH(t.bytes) : ''} | ${t.note ?? ''}${t.lastError ? ` last error: ${t.lastError.replaceAll('|', '/')}` : ''} |`);
  }
  L.push('');
  L.push(
    `File descriptors: ${r.fdsIdleBaseline} with the namespace attached and idle before traffic; ${r.fdsAfter.fds} after traffic stopped ` +
      `(${f1(r.fdsAfter.waitedS)} s later, once slirp's idle UDP flows had expired).`,
  );
  if (r.fdsAfter.extra?.length) L.push('', 'Still open beyond the baseline:', '', ...r.fdsAfter.extra.map((x) => `- \`${x}\``));
  L.push('');
  L.push('## Samples (attach process, each minute)');
  L.push('');
  L.push(`| min | RSS MiB | fds | sockets | CPU s | ${kinds.map((k) => `${k} ok`).join(' | ')} | errors |`);
  L.push(`|---:|---:|---:|---:|---:|${kinds.map(() => '---:').join('|')}|---:|`);
  for (const row of r.rows) {
    const s = row.sample;
    L.push(`| ${row.minute} | ${f1(s.rssMiB)} | ${s.fds} | ${s.sockets} | ${f1(s.cpuS)} | ${kinds.map((k) => String(row.ok[k] ?? 0)).join(' | ')} | ${row.errors} |`);
  }
  L.push('');
  L.push(`RSS, fds and sockets were also sampled every 10 s (${r.samples.length} samples, in the JSON next to the benchmark results); the slopes use those.`);
  L.push('');
  L.push('## How to read this');
  L.push('');
  L.push(`- **Warm-up.** ${warm[0]!.toUpperCase()}${warm.slice(1)} ${r.limits.warmupS === 60 ? 'is' : 'are'} left out of the fits: V8 sizes its heaps, slirp's buffers and the flow tables fill to their working size, and RSS rises for reasons that are not leaks.`);
  L.push(
    `- **RSS slope limit: ${r.limits.rssSlopeMiBPerHour} MiB/h.** A Node process's RSS wanders by a few MiB as the garbage collector runs; fitted over ` +
      'an hour of 10-second samples that noise gives a slope error of about 1 MiB/h. The traffic opens ' +
      `${(r.traffic.httpPerSec * 3600).toLocaleString('en')} TCP connections, ${((r.traffic.udpPerSec / r.traffic.udpPerSocket) * 3600).toLocaleString('en')} UDP flows ` +
      `and ${(r.traffic.dnsPerSec * 3600).toLocaleString('en')} DNS queries an hour, so leaking ${Math.ceil((r.limits.rssSlopeMiBPerHour * 1024 * 1024) / (r.traffic.httpPerSec * 3600 + (r.traffic.udpPerSec / r.traffic.udpPerSocket) * 3600 + r.traffic.dnsPerSec * 3600))} bytes ` +
      'per connection, flow or query would reach the limit.',
  );
  L.push(`- **fd slope limit: ${r.limits.fdSlopePerHour}/h**, and after traffic stops the fd count must return to the idle baseline: every flow's host socket must be closed.`);
  L.push(
    '- **Errors.** A failed, wrong or unanswered HTTP request; a bulk transfer that failed or whose sha256 differs; a DNS answer that is missing or wrong; ' +
      'a lost ping to the gateway (slirp answers it itself); UDP echo replies missing beyond 0.1% of those sent (all of it is loopback and a ' +
      'TAP, but UDP may be dropped by design where a socket buffer overflows, e.g. while bulk TCP fills the TAP queue, and the guest kernel does not retry; ' +
      'a wrong UDP payload is always an error).',
  );
  L.push('');
  return L.join('\n');
}
