import { describe, expect, it } from 'vitest';
import { AckAction, NewReno } from './congestion.ts';

const MSS = 1000;

describe('NewReno (RFC 5681 / 6582)', () => {
  it('starts at the initial window and grows by the bytes acked in slow start', () => {
    const cc = new NewReno(MSS, 10_000);
    expect(cc.cwnd).toBe(10_000);
    cc.onNewAck(2000, 2000, 10_000);
    expect(cc.cwnd).toBe(12_000);
  });

  it('grows by one MSS per window of acked bytes in congestion avoidance', () => {
    const cc = new NewReno(MSS, 4000);
    cc.ssthresh = 4000;
    cc.onNewAck(2000, 2000, 8000);
    expect(cc.cwnd).toBe(4000);
    cc.onNewAck(4000, 2000, 8000);
    expect(cc.cwnd).toBe(5000);
  });

  it('fast-retransmits on the third duplicate ACK, inflates, and deflates on the full ACK', () => {
    const cc = new NewReno(MSS, 20_000);
    expect(cc.onDupAck(10_000, 0, 10_000)).toBe(false);
    expect(cc.onDupAck(10_000, 0, 10_000)).toBe(false);
    expect(cc.onDupAck(10_000, 0, 10_000)).toBe(true);
    expect(cc.ssthresh).toBe(5000);
    expect(cc.cwnd).toBe(8000);
    cc.onDupAck(10_000, 0, 10_000);
    expect(cc.cwnd).toBe(9000);
    expect(cc.onNewAck(3000, 3000, 10_000)).toBe(AckAction.RetransmitFirst); // partial
    expect(cc.inRecovery).toBe(true);
    expect(cc.onNewAck(10_000, 7000, 10_000)).toBe(AckAction.None);
    expect(cc.inRecovery).toBe(false);
    expect(cc.cwnd).toBe(1000 + MSS); // min(ssthresh, max(flight 0, MSS) + MSS)
  });

  it('collapses to one segment on RTO and ignores the go-back-N duplicates below recover', () => {
    const cc = new NewReno(MSS, 20_000);
    cc.onRto(16_000, 16_000, false);
    expect(cc.cwnd).toBe(MSS);
    expect(cc.ssthresh).toBe(8000);
    cc.onRto(16_000, 16_000, true);
    expect(cc.ssthresh).toBe(8000); // held on a repeated timeout
    for (let i = 0; i < 3; i++) expect(cc.onDupAck(5000, 4000, 16_000)).toBe(false);
    expect(cc.inRecovery).toBe(false);
  });
});
