import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, fitPerHour, markdown, verdict, type Sample, type SoakResults } from './report.ts';

const flat = (minutes: number, f: (t: number) => number): Sample[] =>
  Array.from({ length: minutes * 6 + 1 }, (_, i) => ({ t: i * 10, rssMiB: f(i * 10), fds: 30, sockets: 20, cpuS: i }));

describe('report.ts', () => {
  it('fits a straight line exactly: 1 MiB per minute is 60 MiB/h with no error', () => {
    const f = fitPerHour([0, 60, 120, 180].map((t) => ({ t, y: 100 + t / 60 })));
    expect(f.slopePerHour).toBeCloseTo(60, 9);
    expect(f.stderrPerHour).toBeCloseTo(0, 9);
    expect(f.n).toBe(4);
  });

  it('gives no slope and an infinite error for fewer than three points or no spread in time', () => {
    expect(fitPerHour([{ t: 0, y: 1 }, { t: 60, y: 2 }])).toEqual({ slopePerHour: 0, stderrPerHour: Infinity, n: 2 });
    expect(fitPerHour([{ t: 5, y: 1 }, { t: 5, y: 2 }, { t: 5, y: 3 }]).stderrPerHour).toBe(Infinity);
  });

  it('leaves the warm-up minute out of the fit', () => {
    // A jump during the first minute, flat afterwards: no slope.
    const s = flat(30, (t) => (t < 60 ? 50 + t : 120));
    const v = verdict(s, 0, 0);
    expect(v.rss.slopePerHour).toBeCloseTo(0, 9);
    expect(v.rss.n).toBe(30 * 6 - 5);
    expect(v.pass).toBe(true);
  });

  it('fails a long run whose RSS grows faster than the limit, and names why', () => {
    const s = flat(30, (t) => 100 + (t / 3600) * 20); // 20 MiB/h
    const v = verdict(s, 0, 0);
    expect(v.judged).toBe(true);
    expect(v.rss.slopePerHour).toBeCloseTo(20, 6);
    expect(v.pass).toBe(false);
    expect(v.reasons).toEqual(['RSS grows 20.0 MiB/h > 10 MiB/h']);
  });

  it('does not judge the slope of a run too short to measure it, but still fails on errors and fd leaks', () => {
    const s = flat(3, (t) => 100 + t); // steep, but only 2 minutes after warm-up
    const v = verdict(s, 2, 3);
    expect(v.judged).toBe(false);
    expect(v.reasons).toEqual(['2 error(s)', '3 fd(s) still open after traffic stopped (above the idle baseline)']);
    expect(verdict(s, 0, 0).pass).toBe(true);
  });

  it('renders the verdict, the totals and one row per minute', () => {
    const samples = flat(2, () => 80);
    const r: SoakResults = {
      date: '2026-01-01T00:00:00Z',
      minutes: 2,
      elapsedS: 120,
      interrupted: false,
      host: { kernel: '6.18', cpus: 2, node: 'v20', loadavgStart: [1, 1, 1], loadavgEnd: [1, 1, 1] },
      attach: { command: 'guestnet attach …', line: 'attached tap0 …', pid: 42 },
      traffic: { description: ['x'], httpPerSec: 10, udpPerSec: 20, udpPerSocket: 20, dnsPerSec: 5 },
      limits: DEFAULT_LIMITS,
      samples,
      rows: [0, 1, 2].map((minute) => ({ minute, sample: samples[minute * 6]!, ok: { DNS: minute * 300 }, errors: 0 })),
      totals: { DNS: { ok: 600, errors: 0, note: 'lookups' }, 'bulk TCP (sha256)': { ok: 4, errors: 1, bytes: 64 * 1024 * 1024, lastError: 'a|b' } },
      errors: 1,
      fdsIdleBaseline: 30,
      fdsAfter: { fds: 30, waitedS: 0 },
      verdict: verdict(samples, 1, 0),
    };
    const md = markdown(r, ['DNS']);
    expect(md).toContain('**FAIL** — 2 minute run');
    expect(md).toContain('Failed because: 1 error(s).');
    expect(md).toContain('| DNS | 600 | 0 |  | lookups |');
    expect(md).toContain('| bulk TCP (sha256) | 4 | 1 | 64.0 MiB |  last error: a/b |');
    expect(md).toContain('| 2 | 80.0 | 30 | 20 | 12.0 | 600 | 0 |');
    // 36,000 + 3,600 + 18,000 events an hour: 10 MiB/h over them is 183 bytes each.
    expect(md).toContain('leaking 183 bytes per connection');
  });
});
