/**
 * Retransmission timeout estimator, RFC 6298.
 *
 * SRTT/RTTVAR with the standard gains (α = 1/8, β = 1/4, K = 4) and clock granularity G = 1 ms;
 * RTO = SRTT + max(G, K·RTTVAR), clamped to [minRto, maxRto]. Before any sample RTO is the initial
 * value (RFC 6298 §2.1: 1 s). Each expiry doubles it (§5.5, exponential backoff, capped at maxRto);
 * the backed-off value stays until a valid new sample arrives (Karn's algorithm, §3 / §5.7): the
 * connection feeds only samples that are unambiguous — a timed segment that was never
 * retransmitted, or an RFC 7323 timestamp echo, which names the very transmission being acked.
 *
 * Minimum RTO: 200 ms rather than RFC 6298's 1 s (a SHOULD), as Linux does (TCP_RTO_MIN). Our link
 * is virtual: RTTs are microseconds to a few ms of event-loop and vCPU scheduling latency, and a
 * 1 s floor would stall every tail loss for a second. 200 ms still stays above the 40 ms delayed-ACK
 * timer of Linux guests (Windows guests delay up to 200 ms, which can cost a spurious retransmit —
 * the same trade-off Linux makes). Max 60 s (RFC 6298 §2.5 allows ≥ 60 s).
 *
 * Not here: the timer itself (the connection keeps deadlines), RFC 6298 §5.7's 3 s re-initialisation
 * after a SYN timeout (not applied: a lost SYN on a virtual link says nothing about the path).
 */

export const RTO_DEFAULTS = {
  initialMs: 1000,
  minMs: 200,
  maxMs: 60_000,
} as const;

const G = 1;

export class RtoEstimator {
  /** Smoothed RTT in ms (0 before the first sample). */
  srtt = 0;
  /** RTT variation in ms. */
  rttvar = 0;
  /** Whether any sample was taken. */
  hasSample = false;
  /** Consecutive backoffs since the last sample. */
  backoffs = 0;
  readonly minRto: number;
  readonly maxRto: number;
  private base: number;
  private cur: number;

  constructor(initialMs: number = RTO_DEFAULTS.initialMs, minMs: number = RTO_DEFAULTS.minMs, maxMs: number = RTO_DEFAULTS.maxMs) {
    this.minRto = minMs;
    this.maxRto = maxMs;
    this.base = initialMs;
    this.cur = initialMs;
  }

  /** The current RTO in ms, backoff included. */
  get rto(): number {
    return this.cur;
  }

  /** The RTO without backoff (what the next valid sample would build on). */
  get baseRto(): number {
    return this.base;
  }

  /** Feed one RTT measurement in ms (RFC 6298 §2.2/2.3); clears any backoff. */
  sample(rtt: number): void {
    if (!(rtt >= 0)) return;
    if (!this.hasSample) {
      this.srtt = rtt;
      this.rttvar = rtt / 2;
      this.hasSample = true;
    } else {
      const err = this.srtt - rtt;
      this.rttvar = 0.75 * this.rttvar + 0.25 * (err < 0 ? -err : err);
      this.srtt = 0.875 * this.srtt + 0.125 * rtt;
    }
    const v = this.rttvar * 4;
    let rto = this.srtt + (v > G ? v : G);
    if (rto < this.minRto) rto = this.minRto;
    if (rto > this.maxRto) rto = this.maxRto;
    this.base = rto;
    this.cur = rto;
    this.backoffs = 0;
  }

  /** The timer expired: double the RTO (RFC 6298 §5.5). */
  backoff(): void {
    this.backoffs++;
    const next = this.cur * 2;
    this.cur = next > this.maxRto ? this.maxRto : next;
  }
}
