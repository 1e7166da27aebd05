/**
 * Turning benchmark samples into the published results: per-metric medians with min/max, ratios
 * to slirp4netns from the same round (each round's value divided by slirp4netns' value in that
 * round, then the median, min and max of those ratios), the issue-8 target checks, a markdown
 * table, and a hand-written SVG chart (log-scale bars of the median ratio per metric and peer,
 * min–max whiskers, 1× baseline). Pure functions over the JSON the harness writes, so that a
 * results file can be re-rendered without re-running anything.
 */

export type Better = 'higher' | 'lower';

export interface MetricDef {
  key: string;
  label: string;
  unit: string;
  better: Better;
  /** Scale from the stored value to the displayed unit. */
  scale: number;
  /** Issue 8's target, as a ratio to slirp4netns or an absolute bound in the display unit. */
  target?: { kind: 'ratio' | 'absolute'; op: '>=' | '<='; value: number };
}

export const METRICS: readonly MetricDef[] = [
  { key: 'tcp_up_1500', label: 'TCP guest→host, MTU 1500', unit: 'Gbit/s', better: 'higher', scale: 1e-9, target: { kind: 'ratio', op: '>=', value: 1.0 } },
  { key: 'tcp_down_1500', label: 'TCP host→guest, MTU 1500', unit: 'Gbit/s', better: 'higher', scale: 1e-9, target: { kind: 'ratio', op: '>=', value: 1.0 } },
  { key: 'tcp_up_65520', label: 'TCP guest→host, MTU 65520', unit: 'Gbit/s', better: 'higher', scale: 1e-9, target: { kind: 'ratio', op: '>=', value: 1.0 } },
  { key: 'tcp_down_65520', label: 'TCP host→guest, MTU 65520', unit: 'Gbit/s', better: 'higher', scale: 1e-9, target: { kind: 'ratio', op: '>=', value: 1.0 } },
  { key: 'rr_p50', label: 'TCP 1-byte request/response p50', unit: 'µs', better: 'lower', scale: 1, target: { kind: 'ratio', op: '<=', value: 1.5 } },
  { key: 'rr_p99', label: 'TCP 1-byte request/response p99', unit: 'µs', better: 'lower', scale: 1 },
  { key: 'conn_rate', label: 'TCP connection rate', unit: 'conn/s', better: 'higher', scale: 1, target: { kind: 'ratio', op: '>=', value: 1.0 } },
  { key: 'udp64_pps', label: 'UDP guest→host, 64-byte datagrams', unit: 'kpkt/s', better: 'higher', scale: 1e-3 },
  { key: 'udp1472_pps', label: 'UDP guest→host, 1472-byte datagrams', unit: 'kpkt/s', better: 'higher', scale: 1e-3 },
  { key: 'cpu_per_gb', label: 'backend CPU-seconds per GB (TCP runs)', unit: 's/GB', better: 'lower', scale: 1, target: { kind: 'ratio', op: '<=', value: 2.0 } },
  { key: 'peak_rss', label: 'backend peak RSS (VmHWM, whole run)', unit: 'MB', better: 'lower', scale: 1e-6 },
  { key: 'peak_rss_idle1000', label: 'backend peak RSS with 1,000 idle connections', unit: 'MB', better: 'lower', scale: 1e-6, target: { kind: 'absolute', op: '<=', value: 150 } },
  { key: 'rss_idle1000', label: 'backend RSS while 1,000 idle connections are held', unit: 'MB', better: 'lower', scale: 1e-6 },
];

/** One measurement: a value, or why there is none. `stalled` keeps the value but flags it. */
export interface Sample {
  value?: number;
  error?: string;
  stalled?: string;
  detail?: Record<string, unknown>;
}

export interface RoundRecord {
  round: number;
  peer: string;
  startedAt: string;
  metrics: Record<string, Sample>;
  notes: string[];
}

export interface PeerInfo {
  name: string;
  version: string;
  unavailable: string | null;
}

export interface Results {
  date: string;
  machine: { nproc: number; model: string; kernel: string; node: string; sharedMachine: string };
  options: { runs: number; quick: boolean; seconds: number; shortSeconds: number; idleConnections: number };
  peers: PeerInfo[];
  rounds: RoundRecord[];
}

export const BASELINE = 'slirp4netns';

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function summarize(values: readonly number[]): Summary | null {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

function samples(r: Results, peer: string, key: string): Sample[] {
  return r.rounds.filter((x) => x.peer === peer).map((x) => x.metrics[key] ?? { error: 'not measured' });
}

/** Median/min/max of a peer's values for a metric (display unit). */
export function absolute(r: Results, peer: string, m: MetricDef): Summary | null {
  return summarize(samples(r, peer, m.key).map((s) => (s.value === undefined ? Number.NaN : s.value * m.scale)));
}

/** Ratios peer/baseline, round by round (only rounds where both have a value). */
export function ratios(r: Results, peer: string, m: MetricDef): Summary | null {
  const out: number[] = [];
  for (const rec of r.rounds) {
    if (rec.peer !== peer) continue;
    const base = r.rounds.find((x) => x.round === rec.round && x.peer === BASELINE)?.metrics[m.key];
    const v = rec.metrics[m.key];
    if (v?.value !== undefined && base?.value !== undefined && base.value > 0) out.push(v.value / base.value);
  }
  return summarize(out);
}

/** The distinct errors of a peer for a metric, and one line about its stalls if it had any. */
export function problems(r: Results, peer: string, key: string): { errors: string[]; stalls: string | null } {
  const errors = new Set<string>();
  const stalls: string[] = [];
  const all = samples(r, peer, key);
  for (const s of all) {
    if (s.error) errors.add(s.error);
    if (s.stalled) stalls.push(s.stalled.replace(/^.*stalled: /, ''));
  }
  const stallText = stalls.length ? `stalled in ${stalls.length} of ${all.length} round(s): ${stalls.join('; ')}` : null;
  return { errors: [...errors], stalls: stallText };
}

const fmt = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3));

/** Whether a target holds for `peer`, with the number it was judged on. */
export function targetCheck(r: Results, peer: string, m: MetricDef): { holds: boolean | null; text: string } {
  if (!m.target) return { holds: null, text: '' };
  const t = m.target;
  const s = t.kind === 'ratio' ? ratios(r, peer, m) : absolute(r, peer, m);
  if (!s) return { holds: null, text: 'no data' };
  const holds = t.op === '>=' ? s.median >= t.value : s.median <= t.value;
  const shown = t.kind === 'ratio' ? `${fmt(s.median)}×` : `${fmt(s.median)} ${m.unit}`;
  return { holds, text: `${holds ? 'holds' : 'misses'} (${shown} ${t.op === '>=' ? '≥' : '≤'} ${t.value}${t.kind === 'ratio' ? '×' : ` ${m.unit}`})` };
}

function targetText(m: MetricDef): string {
  if (!m.target) return '—';
  const op = m.target.op === '>=' ? '≥' : '≤';
  return m.target.kind === 'ratio' ? `${op} ${m.target.value}×` : `${op} ${m.target.value} ${m.unit}`;
}

/** The markdown report: machine, peers, the ratio table, the absolute table, problems, targets. */
export function markdown(r: Results, svgName: string): string {
  const others = r.peers.filter((p) => p.name !== BASELINE);
  const notes: string[] = [];
  const note = (text: string): string => {
    let i = notes.indexOf(text);
    if (i < 0) i = notes.push(text) - 1;
    return `[^${i + 1}]`;
  };
  const cell = (p: PeerInfo, m: MetricDef, s: Summary | null, ratio: boolean): string => {
    if (p.unavailable) return `n/a ${note(`${p.name}: ${p.unavailable}`)}`;
    const probs = problems(r, p.name, m.key);
    const marks = [...probs.errors.map((x) => note(`${p.name}: ${x}`)), ...(probs.stalls ? [note(`${p.name}, ${m.label}: ${probs.stalls}`)] : [])].join('');
    const stalled = probs.stalls ? '**stalled** ' : '';
    if (!s) return `${probs.errors.length && !probs.errors.every((x) => x.startsWith('n/a')) ? 'failed' : 'n/a'} ${marks}`.trim();
    const v = ratio ? `${fmt(s.median)}× (${fmt(s.min)}–${fmt(s.max)})` : `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
    return `${stalled}${v}${s.n < r.options.runs ? ` n=${s.n}` : ''} ${marks}`.trim();
  };
  const base = r.peers.find((p) => p.name === BASELINE)!;
  const lines: string[] = [];
  lines.push(`### Results of ${r.date}`, '');
  lines.push(
    `Machine: ${r.machine.nproc} × ${r.machine.model}; kernel ${r.machine.kernel}; node ${r.machine.node}. ` +
      `${r.options.runs} interleaved round(s)${r.options.quick ? ' (--quick)' : ''}, iperf3 ${r.options.seconds} s after a 1 s omitted warm-up, ` +
      `other workloads ${r.options.shortSeconds} s, ${r.options.idleConnections} idle connections. ${r.machine.sharedMachine}`,
    '',
  );
  lines.push('Peers:', '');
  for (const p of r.peers) lines.push(`- **${p.name}**: ${p.version}${p.unavailable ? ` — not available: ${p.unavailable}` : ''}`);
  lines.push('', `#### Ratios to ${BASELINE} in the same round (median, min–max over rounds)`, '');
  lines.push(`| metric | better | target | ${others.map((p) => p.name).join(' | ')} |`);
  lines.push(`|---|---|---|${others.map(() => '---').join('|')}|`);
  for (const m of METRICS) {
    if (m.target?.kind === 'absolute') continue;
    lines.push(`| ${m.label} | ${m.better} | ${m.target?.kind === 'ratio' ? targetText(m) : '—'} | ${others.map((p) => cell(p, m, ratios(r, p.name, m), true)).join(' | ')} |`);
  }
  lines.push('', '#### Absolute values (median, min–max over rounds)', '');
  lines.push(`| metric | unit | ${[base, ...others].map((p) => p.name).join(' | ')} |`);
  lines.push(`|---|---|${[base, ...others].map(() => '---').join('|')}|`);
  for (const m of METRICS) {
    lines.push(`| ${m.label} | ${m.unit} | ${[base, ...others].map((p) => cell(p, m, absolute(r, p.name, m), false)).join(' | ')} |`);
  }
  lines.push('', `![ratios to ${BASELINE}](${svgName})`, '');
  lines.push('#### Issue 8 targets for guestnet-slirp', '');
  lines.push('| metric | target | result |', '|---|---|---|');
  for (const m of METRICS) {
    if (!m.target) continue;
    lines.push(`| ${m.label} | ${targetText(m)} | ${targetCheck(r, 'guestnet-slirp', m).text} |`);
  }
  if (notes.length) {
    lines.push('');
    notes.forEach((n, i) => lines.push(`[^${i + 1}]: ${n.replace(/\s+/g, ' ')}`));
  }
  return `${lines.join('\n')}\n`;
}

const COLORS: Record<string, string> = { 'guestnet-slirp': '#2b6cb0', 'guestnet-uip': '#38a169', pasta: '#d69e2e', veth: '#718096' };
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A bar chart of median ratios to slirp4netns, log2 scale from 1/16× to 16×, with min–max whiskers. */
export function svg(r: Results): string {
  const peers = r.peers.filter((p) => p.name !== BASELINE && !p.unavailable);
  const metrics = METRICS.filter((m) => m.target?.kind !== 'absolute');
  const W = 1080;
  const left = 390;
  const rowH = 14 * Math.max(1, peers.length) + 12;
  const top = 50;
  const H = top + rowH * metrics.length + 50;
  const span = W - left - 30;
  const LIM = 4; // log2: 1/16 … 16
  const x = (ratio: number): number => left + ((Math.max(-LIM, Math.min(LIM, Math.log2(ratio))) + LIM) / (2 * LIM)) * span;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">guestnet benchmark ${esc(r.date)}: median ratio to ${BASELINE} in the same round (log scale, whiskers min–max)</text>`);
  for (let e = -LIM; e <= LIM; e++) {
    const gx = x(2 ** e);
    out.push(`<line x1="${gx}" y1="${top - 8}" x2="${gx}" y2="${H - 40}" stroke="${e === 0 ? '#000' : '#ddd'}" stroke-width="${e === 0 ? 1.5 : 1}"/>`);
    out.push(`<text x="${gx}" y="${top - 12}" text-anchor="middle" fill="#444">${e >= 0 ? 2 ** e : `1/${2 ** -e}`}×</text>`);
  }
  metrics.forEach((m, i) => {
    const y0 = top + i * rowH;
    out.push(`<text x="${left - 8}" y="${y0 + rowH / 2 + 4}" text-anchor="end">${esc(m.label)} (${m.better === 'higher' ? '↑' : '↓'} better)</text>`);
    peers.forEach((p, j) => {
      const s = ratios(r, p.name, m);
      const y = y0 + 6 + j * 14;
      if (!s) {
        out.push(`<text x="${x(1) + 4}" y="${y + 9}" fill="#c53030">${esc(p.name)}: no data</text>`);
        return;
      }
      const a = x(1);
      const b = x(s.median);
      const stalled = r.rounds.some((rec) => rec.peer === p.name && rec.metrics[m.key]?.stalled);
      out.push(`<rect x="${Math.min(a, b)}" y="${y}" width="${Math.max(1, Math.abs(b - a))}" height="11" fill="${COLORS[p.name] ?? '#805ad5'}"${stalled ? ' fill-opacity="0.45" stroke="#c53030"' : ''}><title>${esc(p.name)} ${esc(m.label)}: ${s.median.toFixed(3)}× (${s.min.toFixed(3)}–${s.max.toFixed(3)})${stalled ? ' STALLED' : ''}</title></rect>`);
      out.push(`<line x1="${x(s.min)}" y1="${y + 5.5}" x2="${x(s.max)}" y2="${y + 5.5}" stroke="#000" stroke-width="1"/>`);
      const tx = s.median >= 1 ? Math.max(b, x(s.max)) + 4 : Math.max(b, x(s.max)) + 4;
      out.push(`<text x="${Math.min(tx, W - 60)}" y="${y + 9}" fill="#222">${s.median.toFixed(2)}×${stalled ? ' stalled' : ''}</text>`);
    });
    out.push(`<line x1="20" y1="${y0 + rowH}" x2="${W - 10}" y2="${y0 + rowH}" stroke="#eee"/>`);
  });
  peers.forEach((p, j) => {
    const lx = left + j * 150;
    out.push(`<rect x="${lx}" y="${H - 28}" width="12" height="12" fill="${COLORS[p.name] ?? '#805ad5'}"/><text x="${lx + 16}" y="${H - 18}">${esc(p.name)}</text>`);
  });
  const missing = r.peers.filter((p) => p.unavailable).map((p) => p.name);
  if (missing.length) out.push(`<text x="20" y="${H - 18}" fill="#c53030">not available: ${esc(missing.join(', '))}</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
