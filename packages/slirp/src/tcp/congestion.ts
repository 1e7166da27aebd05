/**
 * NewReno congestion control: RFC 5681 (slow start, congestion avoidance, fast retransmit / fast
 * recovery) with RFC 6582's partial-ACK handling. Byte-counted; one instance per connection.
 *
 * Initial window: 64 KiB by default (configurable), not RFC 6928's 10 segments. The only link is
 * the virtual one to the guest: there is no shared bottleneck to protect, the guest's advertised
 * window is the real limit, and every RTT spent in slow start is event-loop latency on each short
 * response (HTTP, RPC). 64 KiB is what a Linux guest's initial receive window lets through anyway.
 *
 * Slow start grows cwnd by the bytes each ACK covers (appropriate byte counting without RFC 3465's
 * L cap, as Linux does), so a guest acking 64 KiB GRO aggregates still doubles cwnd per RTT.
 *
 * Not here: SACK-based loss recovery (RFC 6675) — SACK blocks from the guest are not used; limited
 * transmit (RFC 3042); CUBIC; ECN.
 */

import { seqGe, seqLe } from './seq.ts';

/** Result of {@link NewReno.onNewAck}. */
export const AckAction = {
  /** Nothing special. */
  None: 0,
  /** Partial ACK during fast recovery: retransmit the first unacknowledged segment now. */
  RetransmitFirst: 1,
} as const;
export type AckAction = (typeof AckAction)[keyof typeof AckAction];

/** Upper bound on cwnd so byte arithmetic never overflows windows (RFC 7323 windows ≤ 1 GiB). */
const MAX_CWND = 0x3fffffff;

export class NewReno {
  /** Congestion window in bytes. */
  cwnd: number;
  /** Slow-start threshold in bytes. */
  ssthresh = MAX_CWND;
  /** Consecutive duplicate ACKs. */
  dupAcks = 0;
  /** In fast recovery (RFC 6582 §3.2). */
  inRecovery = false;
  /** `recover`: highest sequence sent when recovery (or the last RTO) began. */
  recover = 0;
  private recoverValid = false;
  private smss: number;
  private caAcked = 0;

  constructor(smss: number, initialCwnd: number) {
    this.smss = smss;
    this.cwnd = initialCwnd > smss ? initialCwnd : smss;
  }

  /** Sender MSS changed (after the handshake). */
  setMss(smss: number): void {
    this.smss = smss;
    if (this.cwnd < smss) this.cwnd = smss;
  }

  /**
   * An ACK advanced SND.UNA to `ack`, covering `acked` bytes; `sndMax` is the highest sequence
   * sent. Returns whether a partial-ACK retransmission is due.
   */
  onNewAck(ack: number, acked: number, sndMax: number): AckAction {
    this.dupAcks = 0;
    const smss = this.smss;
    if (this.inRecovery) {
      if (seqGe(ack, this.recover)) {
        // Full ACK (RFC 6582 §3.2 step 3): deflate to ssthresh, or to flight + 1 SMSS if smaller.
        this.inRecovery = false;
        const flight = (sndMax - ack) | 0;
        const cap = (flight > smss ? flight : smss) + smss;
        this.cwnd = this.ssthresh < cap ? this.ssthresh : cap;
        this.caAcked = 0;
        return AckAction.None;
      }
      // Partial ACK (step 4): deflate by the amount acked, add back one SMSS if ≥ SMSS was acked.
      let c = this.cwnd - acked;
      if (acked >= smss) c += smss;
      this.cwnd = c > smss ? c : smss;
      return AckAction.RetransmitFirst;
    }
    if (this.cwnd < this.ssthresh) {
      this.cwnd += acked; // slow start (RFC 5681 §3.1, byte counting)
    } else {
      // Congestion avoidance: one SMSS per cwnd's worth of acked bytes (RFC 5681 eq. 3 alternative).
      this.caAcked += acked;
      if (this.caAcked >= this.cwnd) {
        this.caAcked -= this.cwnd;
        this.cwnd += smss;
      }
    }
    if (this.cwnd > MAX_CWND) this.cwnd = MAX_CWND;
    return AckAction.None;
  }

  /**
   * A duplicate ACK (RFC 5681 §2 definition, checked by the caller) arrived with `flight` bytes
   * outstanding; `sndUna`/`sndMax` as in the connection. Returns true when the segment at SND.UNA
   * must be fast-retransmitted now (the third duplicate, outside a recovery already under way).
   */
  onDupAck(flight: number, sndUna: number, sndMax: number): boolean {
    this.dupAcks++;
    const smss = this.smss;
    if (this.inRecovery) {
      this.cwnd += smss; // inflate: one segment left the network (RFC 5681 §3.2 step 4)
      return false;
    }
    if (this.dupAcks !== 3) return false;
    // RFC 6582 §3.2 step 1/2: only a loss above `recover` starts a new recovery, so duplicates
    // caused by a go-back-N retransmission after an RTO do not halve the window again.
    if (this.recoverValid && seqLe(sndUna, this.recover)) return false;
    const half = flight >> 1;
    this.ssthresh = half > 2 * smss ? half : 2 * smss;
    this.recover = sndMax;
    this.recoverValid = true;
    this.inRecovery = true;
    this.cwnd = this.ssthresh + 3 * smss;
    return true;
  }

  /**
   * The retransmission timer expired with `flight` bytes outstanding (RFC 5681 §3.1 eq. 4):
   * ssthresh = max(flight/2, 2·SMSS) — unless `repeated` (the same segment already timed out,
   * when ssthresh is held) — and cwnd collapses to one segment (the loss window). `recover`
   * becomes SND.MAX (RFC 6582 §3.2 step 4 note) so the go-back-N duplicates do not start a
   * fast recovery.
   */
  onRto(flight: number, sndMax: number, repeated: boolean): void {
    const smss = this.smss;
    if (!repeated) {
      const half = flight >> 1;
      this.ssthresh = half > 2 * smss ? half : 2 * smss;
    }
    this.cwnd = smss;
    this.caAcked = 0;
    this.dupAcks = 0;
    this.inRecovery = false;
    this.recover = sndMax;
    this.recoverValid = true;
  }
}
