/**
 * Node glue for the WebSocket transport: the server side of the RFC 6455 opening handshake (§4.2)
 * and the connection of an upgraded socket to a NetBackend, one binary message per Ethernet
 * frame (the v86 / jor1k relay convention).
 *
 * ## Handshake
 * `attachWebSocket(socket, backend)` reads the HTTP/1.1 upgrade request from a raw socket itself
 * (at most `maxHeaderBytes`, within `handshakeTimeoutMs`), checks GET, `Upgrade: websocket`,
 * `Connection: upgrade`, `Sec-WebSocket-Version: 13` and a 16-byte base64 `Sec-WebSocket-Key`, and
 * answers 101 with `Sec-WebSocket-Accept = base64(SHA-1(key + GUID))` (§4.2.2). If the client offers
 * the `binary` subprotocol (websockify's convention) it is selected; no extension is ever accepted,
 * so frames with RSV bits set fail the connection. A bad request gets a 400 (426 for a wrong
 * version) and `attachWebSocket` rejects with GUESTNET_PROTOCOL. A caller that already parsed the
 * request (a `node:http` server's `upgrade` event) passes `request` (and `head`) instead.
 * No Origin check is made: restrict who can connect by where the server listens.
 *
 * ## Data path
 * As stream-node.ts: binary messages go to `backend.send`; `Queued` pauses the decoder and the
 * socket until `drain`. Rx frames are framed (unmasked, as a server must) and coalesced into one
 * write per microtask; `write` returning false pauses the backend's receive until the socket
 * drains. Text messages are dropped and counted (`textDropped`). Pings are answered with a pong
 * carrying the same payload (§5.5.2); pongs are ignored.
 *
 * ## End
 * A close frame from the peer is answered with a close frame echoing its code and the socket is
 * ended (§5.5.1). A framing error sends close 1002 (1009 for an oversized message) and ends the
 * socket. `close()` sends 1001 (going away). EOF, socket errors and backend errors end the
 * attachment too. The backend is closed unless `keepBackendOpen`; `done` resolves once, never
 * rejects.
 */
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { type NetBackend, Verdict } from '../backend.ts';
import type { StreamCounters } from './stream-node.ts';
import { ErrorCode, GuestnetError } from '../errors.ts';
import {
  DEFAULT_WS_MAX_MESSAGE,
  WebSocketFrameDecoder,
  WebSocketFrameWriter,
  WsCloseCode,
  WsOpcode,
  encodeClosePayload,
  encodeWebSocketFrame,
  parseClosePayload,
} from './websocket.ts';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2 item 5.4). */
export function webSocketAccept(key: string): string {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

export interface UpgradeRequest {
  method: string;
  url: string;
  /** Header names in lower case; repeated headers joined with ", ". */
  headers: Record<string, string>;
}

/**
 * Parse an HTTP/1.1 request head (up to and excluding the blank line). Returns null if it is not
 * a well-formed request line + header fields.
 */
export function parseUpgradeRequest(head: string): UpgradeRequest | null {
  const lines = head.split('\r\n');
  const m = /^([A-Z]+) (\S+) HTTP\/1\.1$/.exec(lines[0] ?? '');
  if (!m) return null;
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const c = line.indexOf(':');
    if (c <= 0) return null;
    const name = line.slice(0, c).trim().toLowerCase();
    const value = line.slice(c + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { method: m[1]!, url: m[2]!, headers };
}

/** The handshake answer for a request: a 101 response, or an HTTP error with the reason. */
export function answerUpgrade(req: UpgradeRequest): { ok: true; response: string; protocol: string | null } | { ok: false; status: number; reason: string } {
  const h = req.headers;
  const tokens = (v: string | undefined): string[] => (v ?? '').split(',').map((t) => t.trim().toLowerCase());
  if (req.method !== 'GET') return { ok: false, status: 400, reason: `method ${req.method} (a WebSocket handshake is a GET)` };
  if (!tokens(h['upgrade']).includes('websocket')) return { ok: false, status: 400, reason: 'no "Upgrade: websocket" header' };
  if (!tokens(h['connection']).includes('upgrade')) return { ok: false, status: 400, reason: 'no "Connection: Upgrade" header' };
  if (h['sec-websocket-version'] !== '13') return { ok: false, status: 426, reason: `Sec-WebSocket-Version ${h['sec-websocket-version'] ?? '(missing)'} (only 13 is spoken)` };
  const key = h['sec-websocket-key'] ?? '';
  // §4.2.1 item 5: a base64-encoded 16-byte value.
  if (!/^[A-Za-z0-9+/]{22}==$/.test(key)) return { ok: false, status: 400, reason: 'a missing or malformed Sec-WebSocket-Key' };
  const protocol = tokens(h['sec-websocket-protocol']).includes('binary') ? 'binary' : null;
  const response =
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${webSocketAccept(key)}\r\n` +
    (protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : '') +
    '\r\n';
  return { ok: true, response, protocol };
}

export interface AttachWebSocketOptions {
  /** Largest message accepted. Default 65535 + 12 + 14. */
  maxFrameLen?: number;
  keepBackendOpen?: boolean;
  /** Output batch size. Default 256 KiB. */
  batchBytes?: number;
  /** The request, already read by the caller (node:http `upgrade`); the 101 is still written here. */
  request?: UpgradeRequest;
  /** Bytes read after the request head (node:http's `head`). */
  head?: Uint8Array;
  /** Limit on the request head read from the socket. Default 8192. */
  maxHeaderBytes?: number;
  /** The request must arrive within this time. Default 10 s. */
  handshakeTimeoutMs?: number;
}

export interface WebSocketEnd {
  /** end: EOF; closed: the socket closed or close() was called; peer-close: a close frame; error; protocol: bad framing. */
  reason: 'end' | 'closed' | 'peer-close' | 'error' | 'protocol';
  /** The close code received (peer-close) or sent (protocol). */
  code?: number;
  error?: Error;
}

/** The stream counters, plus what only a WebSocket has. */
export interface WebSocketCounters extends StreamCounters {
  /** Text messages dropped (a frame relay carries binary only). */
  textDropped: number;
  pings: number;
}

export interface WebSocketAttachment {
  readonly done: Promise<WebSocketEnd>;
  readonly counters: Readonly<WebSocketCounters>;
  /** The selected subprotocol ("binary") or null. */
  readonly protocol: string | null;
  /** Send close 1001, destroy the socket, close the backend (unless keepBackendOpen). */
  close(): Promise<WebSocketEnd>;
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 426: 'Upgrade Required', 431: 'Request Header Fields Too Large' };

function httpError(status: number): string {
  return `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nSec-WebSocket-Version: 13\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`;
}

/** Read the HTTP request head from a raw socket; resolves with it and the bytes after it. */
function readRequestHead(socket: Duplex, maxBytes: number, timeoutMs: number): Promise<{ req: UpgradeRequest; rest: Uint8Array }> {
  return new Promise((resolve, reject) => {
    let acc: Buffer = Buffer.alloc(0);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      socket.off('close', onEnd);
    };
    const failWith = (status: number, reason: string): void => {
      cleanup();
      if (status && socket.writable) socket.end(httpError(status));
      setTimeout(() => socket.destroy(), 100).unref();
      reject(new GuestnetError(ErrorCode.Protocol, `websocket handshake failed: ${reason}`, { hint: 'connect with a WebSocket client (ws://HOST:PORT/)' }));
    };
    const onData = (chunk: Buffer): void => {
      acc = acc.length === 0 ? chunk : Buffer.concat([acc, chunk]);
      const end = acc.indexOf('\r\n\r\n');
      if (end < 0) {
        if (acc.length > maxBytes) failWith(431, `a request head over ${maxBytes} bytes`);
        return;
      }
      cleanup();
      socket.pause();
      const req = parseUpgradeRequest(acc.subarray(0, end).toString('latin1'));
      if (!req) {
        failWith(400, 'a malformed HTTP request');
        return;
      }
      resolve({ req, rest: acc.subarray(end + 4) });
    };
    const onEnd = (): void => failWith(0, 'the connection ended before the request was complete');
    const timer = setTimeout(() => failWith(400, `no request within ${timeoutMs} ms`), timeoutMs);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onEnd);
    socket.on('close', onEnd);
  });
}

export async function attachWebSocket(socket: Duplex, backend: NetBackend, opts: AttachWebSocketOptions = {}): Promise<WebSocketAttachment> {
  let req = opts.request;
  let rest: Uint8Array = opts.head ?? new Uint8Array(0);
  if (!req) {
    const r = await readRequestHead(socket, opts.maxHeaderBytes ?? 8192, opts.handshakeTimeoutMs ?? 10_000);
    req = r.req;
    rest = r.rest;
  }
  const answer = answerUpgrade(req);
  if (!answer.ok) {
    if (socket.writable) socket.end(httpError(answer.status));
    setTimeout(() => socket.destroy(), 100).unref();
    throw new GuestnetError(ErrorCode.Protocol, `websocket handshake failed: ${answer.reason}`, { hint: 'connect with a WebSocket client (ws://HOST:PORT/)' });
  }

  const counters: WebSocketCounters = { framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, txPauses: 0, rxPauses: 0, textDropped: 0, pings: 0 };
  let finished = false;
  let rxPaused = false;
  let resolveDone!: (end: WebSocketEnd) => void;
  const done = new Promise<WebSocketEnd>((r) => (resolveDone = r));

  const writeRaw = (chunk: Uint8Array): boolean => socket.write(chunk);
  const writer = new WebSocketFrameWriter(
    (chunk) => {
      if (finished || !socket.writable) return;
      if (!writeRaw(chunk) && !rxPaused) {
        rxPaused = true;
        counters.rxPauses++;
        backend.pauseRecv();
      }
    },
    { batchBytes: opts.batchBytes },
  );

  /** Send a close frame after pending data, then end the socket. */
  const sendClose = (code: number, reason = ''): void => {
    writer.flush();
    if (socket.writable) socket.end(encodeWebSocketFrame(WsOpcode.Close, code === WsCloseCode.NoStatus ? new Uint8Array(0) : encodeClosePayload(code, reason)));
  };

  const finish = async (end: WebSocketEnd, closeCode?: number, closeReason?: string): Promise<void> => {
    if (finished) return;
    if (end.reason !== 'error') writer.flush();
    if (closeCode !== undefined) sendClose(closeCode, closeReason);
    finished = true;
    writer.close();
    decoder.stop();
    socket.off('data', onData);
    socket.off('drain', onDrain);
    if (closeCode !== undefined && !socket.destroyed) {
      // Give the close frame a moment to leave, then make sure the socket is gone.
      setTimeout(() => socket.destroy(), 1000).unref();
    } else if (end.reason === 'end' && !socket.destroyed) socket.end();
    else socket.destroy();
    if (!opts.keepBackendOpen) await backend.close().catch(() => {});
    resolveDone(end);
  };

  const decoder = new WebSocketFrameDecoder(
    {
      message: (payload, binary) => {
        if (!binary) {
          counters.textDropped++;
          return;
        }
        counters.framesIn++;
        counters.bytesIn += payload.length;
        if (backend.send(payload) === Verdict.Queued) {
          counters.txPauses++;
          decoder.pause();
          socket.pause();
        }
      },
      control: (opcode, payload) => {
        if (opcode === WsOpcode.Ping) {
          counters.pings++;
          writer.flush(); // keep order: data queued before the ping goes first
          if (socket.writable) socket.write(encodeWebSocketFrame(WsOpcode.Pong, payload));
        } else if (opcode === WsOpcode.Close) {
          const c = parseClosePayload(payload);
          decoder.stop();
          if (!c) void finish({ reason: 'protocol', code: WsCloseCode.ProtocolError }, WsCloseCode.ProtocolError, 'bad close frame');
          else void finish({ reason: 'peer-close', code: c.code }, c.code);
        }
      },
      error: (code, reason) =>
        void finish({ reason: 'protocol', code, error: new GuestnetError(ErrorCode.Protocol, reason, { hint: 'the peer is not a conforming WebSocket client' }) }, code, code === 1009 ? 'message too big' : 'protocol error'),
    },
    { role: 'server', maxMessageLen: opts.maxFrameLen ?? DEFAULT_WS_MAX_MESSAGE },
  );

  const onData = (chunk: Buffer): void => decoder.push(chunk);
  const onDrain = (): void => {
    if (rxPaused && !finished) {
      rxPaused = false;
      backend.resumeRecv();
    }
  };
  socket.on('error', (err) => void finish({ reason: 'error', error: err }));
  socket.on('close', () => void finish({ reason: 'closed' }));
  socket.on('end', () => void finish({ reason: 'end' }));

  socket.write(answer.response);
  try {
    await backend.init(
      (frame) => {
        counters.framesOut++;
        counters.bytesOut += frame.length;
        writer.push(frame);
      },
      {
        drain: () => {
          if (finished || !decoder.paused) return;
          decoder.resume();
          if (!decoder.paused) socket.resume();
        },
        error: (err) => void finish({ reason: 'error', error: err }, WsCloseCode.InternalError, 'backend failed'),
      },
    );
  } catch (err) {
    finished = true;
    sendClose(WsCloseCode.InternalError, 'backend failed to start');
    setTimeout(() => socket.destroy(), 100).unref();
    throw err;
  }
  const attachment: WebSocketAttachment = {
    done,
    counters,
    protocol: answer.protocol,
    close: async () => {
      await finish({ reason: 'closed' }, WsCloseCode.GoingAway);
      return done;
    },
  };
  if (finished) return attachment;
  socket.on('drain', onDrain);
  if (rest.length > 0) decoder.push(rest);
  socket.on('data', onData);
  socket.resume();
  return attachment;
}
