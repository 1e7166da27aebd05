/**
 * Read-only TFTP server at the gateway address, port 69, serving files under `cfg.tftpRoot`
 * (RFC 1350, option negotiation RFC 2347, blksize RFC 2348, timeout and tsize RFC 2349), as
 * libslirp's `tftp=` option does for PXE boot. Disabled when `cfg.tftpRoot` is empty.
 *
 * Theory of operation
 * - RRQ: the file name is checked (a `..` path segment is an access violation, as in libslirp),
 *   then opened with `io.openFile(root, name)`, which refuses paths escaping the root (symlinks
 *   included) and anything that is not a regular file; those get ERROR 1 (file not found).
 *   With options, the server answers OACK (blksize clamped to what fits one unfragmented
 *   datagram in cfg.mtu, tsize = the file size, timeout echoed and used) and waits for ACK 0;
 *   without (or when none of the client's options is one we take) it sends DATA 1 at once.
 * - Lock-step transfer: ACK n (n = the block just sent) → DATA n+1; a DATA shorter than blksize
 *   (possibly empty, when the size is a multiple of blksize) is the last; its ACK ends the session.
 *   Block numbers wrap from 65535 to 0, as tftp-hpa and most clients expect for large files.
 * - Retransmission is timer driven only: the last packet is resent after `retransmitMs` (or the
 *   negotiated timeout) up to `maxRetries` times, then the session is dropped (`tftp-timeout`).
 *   Duplicate or stale ACKs are ignored (counted `tftp-dup-ack`), which avoids the Sorcerer's
 *   Apprentice syndrome (RFC 1123 §4.2.3.1).
 * - Sessions are keyed by the guest's address and port, bounded by `maxSessions` (64); each
 *   holds one open file and one preallocated block buffer, released when it ends.
 * - Replies come from cfg.host port 69, not from a fresh port per transfer (RFC 1350 §4 asks
 *   for a new TID). libslirp does the same: the virtual server needs no per-transfer NAT state
 *   or host socket, and clients lock onto the port of the first reply anyway. The session key
 *   (guest port) is what distinguishes transfers.
 *
 * Limits / not done: write requests are refused (ERROR 2); netascii and mail modes are served
 * as binary (no CR/LF conversion); windowsize (RFC 7440) is not negotiated; the file size is
 * taken at open time (a file growing meanwhile is cut there).
 */
import { TFTP_DEFAULT_BLKSIZE, TFTP_PORT, TftpErrorCode, TftpOpcode, TftpView, emitTftp, parseTftp, tftpLen } from '@guestnet/wire';
import type { TftpOptions, TftpRepr } from '@guestnet/wire';
import type { StackContext } from './context.ts';
import { TimerEntry } from '@guestnet/core';

export const TFTP_DEFAULT_RETRANSMIT_MS = 2000;
export const TFTP_DEFAULT_MAX_RETRIES = 5;
export const TFTP_DEFAULT_MAX_SESSIONS = 64;

export interface TftpServerOptions {
  /** Retransmit interval when the client did not negotiate `timeout`. Default 2000 ms. */
  retransmitMs?: number;
  /** Retransmissions of one packet before the session is dropped. Default 5. */
  maxRetries?: number;
  /** Concurrent transfers. Default 64. */
  maxSessions?: number;
}

type OpenFile = { size: number; read(pos: number, dst: Uint8Array): Promise<number>; close(): void };

/** Where replies go: the guest's address and port, and (IPv6) our address it used. */
interface Peer {
  family: 4 | 6;
  ip4: number;
  ip6: Uint8Array | null;
  server6: Uint8Array | null;
  port: number;
  mac: Uint8Array;
}

interface Session {
  readonly key: string;
  readonly peer: Peer;
  readonly filename: string;
  file: OpenFile | null;
  blksize: number;
  timeoutMs: number;
  /** Absolute number of the last packet sent: 0 for OACK, else the DATA block (not wrapped). */
  block: number;
  /** The last packet sent, for retransmission: buf[0, len). */
  buf: Uint8Array;
  len: number;
  /** The last DATA sent was short: its ACK ends the transfer. */
  final: boolean;
  /** Opening or reading: ACKs and timeouts wait. */
  busy: boolean;
  tries: number;
  timer: TimerEntry;
  closed: boolean;
}

/** A `..` segment anywhere in the path (either separator: the root may be on Windows). */
function escapes(name: string): boolean {
  return name.split(/[/\\]/).some((seg) => seg === '..');
}

export class TftpServer {
  private readonly ctx: StackContext;
  private readonly retransmitMs: number;
  private readonly maxRetries: number;
  private readonly maxSessions: number;
  private readonly sessions = new Map<string, Session>();
  private readonly view = new TftpView();
  private closed = false;

  constructor(ctx: StackContext, opts: TftpServerOptions = {}) {
    this.ctx = ctx;
    this.retransmitMs = opts.retransmitMs ?? TFTP_DEFAULT_RETRANSMIT_MS;
    this.maxRetries = opts.maxRetries ?? TFTP_DEFAULT_MAX_RETRIES;
    this.maxSessions = opts.maxSessions ?? TFTP_DEFAULT_MAX_SESSIONS;
  }

  /** Transfers in progress. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Whether the server is enabled (cfg.tftpRoot set). */
  get enabled(): boolean {
    return this.ctx.cfg.tftpRoot !== '';
  }

  /** A UDP datagram from the guest to cfg.host:69. `payload`/`srcMac` are borrowed. */
  handle(srcIp: number, srcPort: number, dstIp: number, dstPort: number, payload: Uint8Array, srcMac: Uint8Array): void {
    void dstIp;
    void dstPort;
    this.input(`4|${srcIp}|${srcPort}`, payload, () => ({ family: 4, ip4: srcIp, ip6: null, server6: null, port: srcPort, mac: srcMac.slice(0, 6) }));
  }

  /** A UDP datagram from the guest to cfg.ipv6Host:69 (libslirp serves TFTP over IPv6 too). */
  handle6(srcIp: Uint8Array, srcPort: number, dstIp: Uint8Array, dstPort: number, payload: Uint8Array, srcMac: Uint8Array): void {
    void dstPort;
    let hex = '';
    for (let i = 0; i < 16; i++) hex += srcIp[i]!.toString(16).padStart(2, '0');
    this.input(`6|${hex}|${srcPort}`, payload, () => ({
      family: 6,
      ip4: 0,
      ip6: srcIp.slice(0, 16),
      server6: dstIp.slice(0, 16),
      port: srcPort,
      mac: srcMac.slice(0, 6),
    }));
  }

  /** End every transfer: cancel timers and close files. Idempotent. */
  close(): void {
    this.closed = true;
    for (const s of [...this.sessions.values()]) this.end(s);
  }

  // ---- input ----------------------------------------------------------------------------------

  private input(key: string, payload: Uint8Array, peerOf: () => Peer): void {
    if (this.closed) return;
    if (!this.enabled) {
      this.ctx.drop('tftp-disabled');
      return;
    }
    const v = this.view;
    if (!v.reset(payload, 0, payload.length)) {
      this.ctx.drop('tftp-malformed');
      return;
    }
    const op = v.opcode;
    if (op === TftpOpcode.ACK) {
      const s = this.sessions.get(key);
      if (!s) {
        this.ctx.drop('tftp-no-session');
        return;
      }
      this.onAck(s, v.block);
      return;
    }
    if (op === TftpOpcode.ERROR) {
      // The client gave up (or refused our OACK, RFC 2347 error 8).
      const s = this.sessions.get(key);
      if (s) {
        this.ctx.count('tftp-client-error');
        this.end(s);
      }
      return;
    }
    if (op !== TftpOpcode.RRQ && op !== TftpOpcode.WRQ) {
      this.ctx.drop('tftp-unexpected');
      this.sendError(peerOf(), TftpErrorCode.ILLEGAL_OPERATION, 'Illegal TFTP operation');
      return;
    }
    const req = parseTftp(v);
    if (req === null || (req.op !== 'rrq' && req.op !== 'wrq')) {
      this.ctx.drop('tftp-malformed');
      return;
    }
    if (req.op === 'wrq') {
      this.ctx.drop('tftp-write-refused');
      this.sendError(peerOf(), TftpErrorCode.ACCESS_VIOLATION, 'Access violation');
      return;
    }
    const old = this.sessions.get(key);
    if (old) {
      if (old.filename === req.filename && old.block <= 1) {
        // The client repeated its RRQ: our first reply was lost or is on its way.
        if (!old.busy) this.transmit(old, false);
        return;
      }
      this.end(old);
    }
    this.startRead(key, peerOf(), req.filename, req.options);
  }

  private startRead(key: string, peer: Peer, filename: string, options: TftpOptions): void {
    if (escapes(filename)) {
      this.ctx.drop('tftp-access-violation');
      this.sendError(peer, TftpErrorCode.ACCESS_VIOLATION, 'Access violation');
      return;
    }
    if (this.sessions.size >= this.maxSessions) {
      this.ctx.drop('tftp-sessions-full');
      this.sendError(peer, TftpErrorCode.NOT_DEFINED, 'Too many transfers');
      return;
    }
    const s: Session = {
      key,
      peer,
      filename,
      file: null,
      blksize: TFTP_DEFAULT_BLKSIZE,
      timeoutMs: this.retransmitMs,
      block: 0,
      buf: new Uint8Array(0),
      len: 0,
      final: false,
      busy: true,
      tries: 0,
      timer: new TimerEntry(() => this.onTimeout(s)),
      closed: false,
    };
    this.sessions.set(key, s);
    this.ctx.io.openFile(this.ctx.cfg.tftpRoot, filename).then(
      (file) => this.opened(s, file, options),
      () => this.opened(s, null, options),
    );
  }

  private opened(s: Session, file: OpenFile | null, req: TftpOptions): void {
    if (s.closed) {
      file?.close();
      return;
    }
    if (!file) {
      this.ctx.drop('tftp-not-found');
      this.sendError(s.peer, TftpErrorCode.FILE_NOT_FOUND, 'File not found');
      this.end(s);
      return;
    }
    s.file = file;
    this.ctx.count('tftp-transfer');
    // RFC 2347: answer only the options we understand; none → plain RFC 1350 transfer.
    const oack: TftpOptions = {};
    const order: string[] = [];
    if (req.blksize !== undefined) {
      const ipHdr = s.peer.family === 4 ? 20 : 40;
      const max = this.ctx.cfg.mtu - ipHdr - 8 - 4;
      s.blksize = Math.max(8, Math.min(req.blksize, max));
      oack.blksize = s.blksize;
      order.push('blksize');
    }
    if (req.tsize !== undefined) {
      oack.tsize = file.size;
      order.push('tsize');
    }
    if (req.timeout !== undefined) {
      s.timeoutMs = req.timeout * 1000;
      oack.timeout = req.timeout;
      order.push('timeout');
    }
    s.buf = new Uint8Array(Math.max(4 + s.blksize, 64));
    if (order.length === 0) {
      s.block = 1;
      void this.sendBlock(s);
      return;
    }
    oack.order = (req.order ?? []).filter((n) => order.includes(n));
    const r: TftpRepr = { op: 'oack', options: oack };
    const need = tftpLen(r);
    if (need > s.buf.length) s.buf = new Uint8Array(need);
    s.len = emitTftp(r, s.buf, 0);
    s.block = 0;
    s.busy = false;
    this.transmit(s, true);
  }

  private onAck(s: Session, block: number): void {
    if (s.busy || block !== (s.block & 0xffff)) {
      this.ctx.count('tftp-dup-ack');
      return;
    }
    this.ctx.timers.cancel(s.timer);
    if (s.final) {
      this.ctx.count('tftp-complete');
      this.end(s);
      return;
    }
    s.block++;
    void this.sendBlock(s);
  }

  /** Read block `s.block` into the buffer and send it. */
  private async sendBlock(s: Session): Promise<void> {
    const file = s.file!;
    s.busy = true;
    const pos = (s.block - 1) * s.blksize;
    const want = Math.max(0, Math.min(s.blksize, file.size - pos));
    let got = 0;
    try {
      while (got < want) {
        const n = await file.read(pos + got, s.buf.subarray(4 + got, 4 + want));
        if (s.closed) return;
        if (n <= 0) break; // the file shrank: end the transfer here
        got += n;
      }
    } catch {
      if (s.closed) return;
      this.ctx.drop('tftp-read-error');
      this.sendError(s.peer, TftpErrorCode.NOT_DEFINED, 'Read error');
      this.end(s);
      return;
    }
    if (s.closed) return;
    const b = s.buf;
    b[0] = 0;
    b[1] = TftpOpcode.DATA;
    b[2] = (s.block >>> 8) & 0xff;
    b[3] = s.block & 0xff;
    s.len = 4 + got;
    s.final = got < s.blksize;
    s.busy = false;
    this.transmit(s, true);
  }

  /** Send the session's last packet; `fresh` resets the retry count. */
  private transmit(s: Session, fresh: boolean): void {
    if (fresh) s.tries = 0;
    this.send(s.peer, s.buf.subarray(0, s.len));
    this.ctx.timers.schedule(s.timer, this.ctx.timers.now() + s.timeoutMs);
  }

  private onTimeout(s: Session): void {
    if (s.closed || s.busy) return;
    if (s.tries >= this.maxRetries) {
      this.ctx.drop('tftp-timeout');
      this.end(s);
      return;
    }
    s.tries++;
    this.ctx.count('tftp-retransmit');
    this.transmit(s, false);
  }

  private end(s: Session): void {
    if (s.closed) return;
    s.closed = true;
    this.ctx.timers.cancel(s.timer);
    s.file?.close();
    s.file = null;
    if (this.sessions.get(s.key) === s) this.sessions.delete(s.key);
  }

  private sendError(peer: Peer, code: number, message: string): void {
    const r: TftpRepr = { op: 'error', code, message };
    const buf = new Uint8Array(tftpLen(r));
    emitTftp(r, buf, 0);
    this.send(peer, buf);
  }

  private send(peer: Peer, data: Uint8Array): void {
    const out = this.ctx.out;
    if (peer.family === 4) out.sendUdp4(this.ctx.cfg.host, TFTP_PORT, peer.ip4, peer.port, data, peer.mac);
    else out.sendUdp6(peer.server6!, TFTP_PORT, peer.ip6!, peer.port, data, peer.mac);
  }
}
