import { describe, expect, it } from 'vitest';
import { RtoEstimator } from './rto.ts';

describe('RtoEstimator (RFC 6298)', () => {
  it('starts at the initial RTO and takes the first sample as SRTT with RTTVAR = R/2', () => {
    const r = new RtoEstimator(1000, 200, 60_000);
    expect(r.rto).toBe(1000);
    r.sample(100);
    expect(r.srtt).toBe(100);
    expect(r.rttvar).toBe(50);
    expect(r.rto).toBe(300); // 100 + 4·50
  });

  it('smooths later samples with α = 1/8, β = 1/4', () => {
    const r = new RtoEstimator(1000, 1, 60_000);
    r.sample(100);
    r.sample(200);
    expect(r.rttvar).toBe(0.75 * 50 + 0.25 * 100);
    expect(r.srtt).toBe(0.875 * 100 + 0.125 * 200);
    expect(r.rto).toBeCloseTo(112.5 + 4 * 62.5);
  });

  it('clamps to the 200 ms floor on a fast virtual link', () => {
    const r = new RtoEstimator();
    r.sample(0.3);
    expect(r.rto).toBe(200);
  });

  it('doubles on each expiry up to the maximum, and a new sample clears the backoff', () => {
    const r = new RtoEstimator(1000, 200, 5000);
    r.sample(10);
    const seen: number[] = [];
    for (let i = 0; i < 6; i++) {
      r.backoff();
      seen.push(r.rto);
    }
    expect(seen).toEqual([400, 800, 1600, 3200, 5000, 5000]);
    expect(r.backoffs).toBe(6);
    r.sample(10);
    expect(r.rto).toBe(200);
    expect(r.backoffs).toBe(0);
  });
});
