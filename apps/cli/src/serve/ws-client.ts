/**
 * The client side of the WebSocket transport, built on core's codec: it connects a NetBackend to
 * a `guestnet serve --protocol ws` server the way a v86/jor1k relay client would (one binary
 * message per Ethernet frame). Used by the tests, and handy to chain two guestnet processes.
 * Node 20 has no global WebSocket, hence this small client.
 *
 * It sends the RFC 6455 §4.1 request with a random key, checks the 101 answer and its
 * Sec-WebSocket-Accept, masks every frame (§5.3) and answers pings. Not supported: redirects,
 * proxies, TLS (wss), extensions.
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { ErrorCode, GuestnetError, WebSocketFrameDecoder, WebSocketFrameWriter, WsOpcode, encodeWebSocketFrame, encodeClosePayload, type NetBackend } from '@guestnet/core';
import { webSocketAccept } from '@guestnet/core/node';

export interface WebSocketClient {
  /** Resolves when the connection is over (close frame, EOF, error). */
  readonly done: Promise<{ code?: number }>;
  /** Send a raw chunk (tests: malformed frames). */
  writeRaw(chunk: Uint8Array): void;
  /** Send close (1000) and end. */
  close(): Promise<void>;
}

export async function connectWebSocketClient(socket: Duplex, backend: NetBackend, opts: { host?: string; path?: string } = {}): Promise<WebSocketClient> {
  const key = randomBytes(16).toString('base64');
  socket.write(
    `GET ${opts.path ?? '/'} HTTP/1.1\r\nHost: ${opts.host ?? 'localhost'}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n`,
  );
  const rest = await new Promise<Buffer>((resolve, reject) => {
    let acc: Buffer = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      acc = Buffer.concat([acc, c]);
      const end = acc.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.pause();
      const head = acc.subarray(0, end).toString('latin1');
      const accept = /\r\nsec-websocket-accept: *(\S+)/i.exec(head)?.[1];
      if (!head.startsWith('HTTP/1.1 101') || accept !== webSocketAccept(key)) {
        socket.destroy();
        reject(new GuestnetError(ErrorCode.Protocol, `websocket handshake refused: ${head.split('\r\n')[0]}`));
        return;
      }
      resolve(acc.subarray(end + 4));
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => reject(new GuestnetError(ErrorCode.Protocol, 'connection closed during the websocket handshake')));
  });

  let resolveDone!: (v: { code?: number }) => void;
  const done = new Promise<{ code?: number }>((r) => (resolveDone = r));
  let finished = false;
  const finish = (code?: number): void => {
    if (finished) return;
    finished = true;
    writer.close();
    socket.destroy();
    void backend.close();
    resolveDone(code === undefined ? {} : { code });
  };
  const writer = new WebSocketFrameWriter((c) => socket.writable && socket.write(c), { mask: true });
  const decoder = new WebSocketFrameDecoder(
    {
      message: (payload, binary) => {
        if (binary) backend.send(payload);
      },
      control: (op, payload) => {
        if (op === WsOpcode.Ping) socket.write(encodeWebSocketFrame(WsOpcode.Pong, payload, randomBytes(4)));
        else if (op === WsOpcode.Close) finish(payload.length >= 2 ? (payload[0]! << 8) | payload[1]! : 1005);
      },
      error: (code) => finish(code),
    },
    { role: 'client' },
  );
  socket.on('close', () => finish());
  socket.on('error', () => finish());
  await backend.init((frame) => writer.push(frame));
  if (rest.length > 0) decoder.push(rest);
  socket.on('data', (c: Buffer) => decoder.push(c));
  socket.resume();
  return {
    done,
    writeRaw: (chunk) => {
      writer.flush();
      socket.write(chunk);
    },
    close: async () => {
      writer.flush();
      if (socket.writable) socket.write(encodeWebSocketFrame(WsOpcode.Close, encodeClosePayload(1000), randomBytes(4)));
      await Promise.race([done, new Promise((r) => setTimeout(r, 1000))]);
      finish(1000);
    },
  };
}
