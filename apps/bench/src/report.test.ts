import { describe, expect, it } from 'vitest';
import { markdown, METRICS, ratios, summarize, svg, targetCheck, type Results } from './report.ts';

const up = METRICS.find((m) => m.key === 'tcp_up_1500')!;
const rssIdle = METRICS.find((m) => m.key === 'peak_rss_idle1000')!;

function results(): Results {
  const rec = (round: number, peer: string, up1500: number | null, extra: Record<string, unknown> = {}) => ({
    round,
    peer,
    startedAt: '2026-01-01T00:00:00Z',
    metrics: { tcp_up_1500: up1500 === null ? { error: 'boom' } : { value: up1500, ...extra }, peak_rss_idle1000: { value: 120e6 } },
    notes: [],
  });
  return {
    date: '2026-01-01',
    machine: { nproc: 2, model: 'Test CPU', kernel: '6.1', node: 'v20', sharedMachine: '' },
    options: { runs: 3, quick: false, seconds: 5, shortSeconds: 3, idleConnections: 1000 },
    peers: [
      { name: 'guestnet-slirp', version: 'x', unavailable: null },
      { name: 'guestnet-uip', version: 'x', unavailable: 'not built' },
      { name: 'slirp4netns', version: 'y', unavailable: null },
      { name: 'pasta', version: 'z', unavailable: null },
    ],
    rounds: [
      rec(1, 'slirp4netns', 1e9), rec(1, 'guestnet-slirp', 2e9), rec(1, 'pasta', 1e6, { stalled: 'iperf3 guest→host stalled: 0.6 MB in 5.0 s' }),
      rec(2, 'slirp4netns', 2e9), rec(2, 'guestnet-slirp', 3e9), rec(2, 'pasta', null),
      rec(3, 'slirp4netns', 1e9), rec(3, 'guestnet-slirp', 4e9), rec(3, 'pasta', 2e6),
    ],
  };
}

describe('bench report', () => {
  it('summarizes with the median of an even count as the mean of the middle two, ignoring NaN', () => {
    expect(summarize([4, 1, 3, 2, Number.NaN])).toEqual({ median: 2.5, min: 1, max: 4, n: 4 });
    expect(summarize([])).toBeNull();
  });

  it('divides each round by the baseline of the same round, not by the baseline median', () => {
    // Rounds: 2/1, 3/2, 4/1 → 2, 1.5, 4.
    expect(ratios(results(), 'guestnet-slirp', up)).toEqual({ median: 2, min: 1.5, max: 4, n: 3 });
  });

  it('judges ratio targets on the median ratio and absolute targets in the display unit', () => {
    expect(targetCheck(results(), 'guestnet-slirp', up)).toEqual({ holds: true, text: 'holds (2.00× ≥ 1×)' });
    expect(targetCheck(results(), 'guestnet-slirp', rssIdle).text).toBe('holds (120 MB ≤ 150 MB)');
  });

  it('shows stalls and errors in the table with their reasons, and unavailable peers as n/a', () => {
    const md = markdown(results(), 'chart.svg');
    expect(md).toMatch(/\| TCP guest→host, MTU 1500 \| higher \| ≥ 1× \| 2\.00× \(1\.50–4\.00\) \| n\/a \[\^\d+\] \| \*\*stalled\*\* /);
    expect(md).toContain('stalled in 1 of 3 round(s): 0.6 MB in 5.0 s');
    expect(md).toContain('pasta: boom');
    expect(md).toContain('guestnet-uip: not built');
    expect(md).toContain('![ratios to slirp4netns](chart.svg)');
  });

  it('draws a well-formed SVG with one bar per available peer and metric with data', () => {
    const s = svg(results());
    expect(s.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(s.trim().endsWith('</svg>')).toBe(true);
    expect(s).toContain('guestnet-slirp TCP guest→host, MTU 1500: 2.000×');
    expect(s).toContain('STALLED');
    expect(s).toContain('not available: guestnet-uip');
  });
});
