import { afterEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import { pair } from '../pair.ts';
import type { NetBackend } from '../backend.ts';
import { answerUpgrade, attachWebSocket, parseUpgradeRequest, webSocketAccept, type WebSocketAttachment } from './websocket-node.ts';
import { WebSocketFrameDecoder, WsOpcode, encodeClosePayload, encodeWebSocketFrame } from './websocket.ts';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const MASK = Uint8Array.of(1, 2, 3, 4);
const REQUEST = `GET /relay HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('websocket handshake (RFC 6455 §4.2)', () => {
  it('computes the §1.3 example Sec-WebSocket-Accept', () => {
    expect(webSocketAccept(KEY)).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  it('answers a valid request with 101 and selects the "binary" subprotocol when offered', () => {
    const req = parseUpgradeRequest(REQUEST.replace('\r\n\r\n', '\r\nSec-WebSocket-Protocol: base64, binary').trimEnd())!;
    const a = answerUpgrade(req);
    expect(a).toMatchObject({ ok: true, protocol: 'binary' });
    expect(a.ok && a.response).toBe(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: binary\r\n\r\n',
    );
  });

  it('refuses a wrong version with 426 and a missing key with 400', () => {
    expect(answerUpgrade(parseUpgradeRequest(REQUEST.replace('Version: 13', 'Version: 8').trimEnd())!)).toMatchObject({ ok: false, status: 426 });
    expect(answerUpgrade(parseUpgradeRequest(REQUEST.replace(`Sec-WebSocket-Key: ${KEY}\r\n`, '').trimEnd())!)).toMatchObject({ ok: false, status: 400 });
    expect(answerUpgrade(parseUpgradeRequest(REQUEST.replace('GET', 'POST').trimEnd())!)).toMatchObject({ ok: false, status: 400 });
    expect(parseUpgradeRequest('garbage')).toBeNull();
  });
});

interface Client {
  sock: net.Socket;
  head: string;
  messages: Uint8Array[];
  controls: { op: number; data: Uint8Array }[];
  closed: Promise<void>;
}

/** A loopback server attaching each connection to a fresh pair end, and a raw client. */
async function setup(opts: { maxFrameLen?: number } = {}): Promise<{ client: Client; peer: NetBackend; att: Promise<WebSocketAttachment>; rx: Uint8Array[] }> {
  const [mine, peer] = pair();
  const rx: Uint8Array[] = [];
  await peer.init((f) => rx.push(f.slice()));
  let resolveAtt!: (a: Promise<WebSocketAttachment>) => void;
  const att = new Promise<Promise<WebSocketAttachment>>((r) => (resolveAtt = r)).then((p) => p);
  const server = net.createServer((s) => resolveAtt(attachWebSocket(s, mine, opts)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise((r) => server.close(r)));
  const sock = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  cleanups.push(() => sock.destroy());
  const client: Client = { sock, head: '', messages: [], controls: [], closed: new Promise((r) => sock.once('close', () => r())) };
  const dec = new WebSocketFrameDecoder(
    { message: (m) => client.messages.push(new Uint8Array(m)), control: (op, d) => client.controls.push({ op, data: new Uint8Array(d) }), error: () => {} },
    { role: 'client' },
  );
  let upgraded = false;
  sock.on('data', (d: Buffer) => {
    if (!upgraded) {
      const end = d.indexOf('\r\n\r\n');
      client.head = d.subarray(0, end).toString();
      upgraded = true;
      dec.push(d.subarray(end + 4));
    } else dec.push(d);
  });
  return { client, peer, att, rx };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('attachWebSocket', () => {
  it('carries one Ethernet frame per binary message both ways, frames pipelined after the request included', async () => {
    const { client, peer, att, rx } = await setup();
    const f1 = new Uint8Array(60).fill(0xab);
    // The request and the first frame in one write: the bytes after the head are not lost.
    client.sock.write(Buffer.concat([Buffer.from(REQUEST), encodeWebSocketFrame(WsOpcode.Binary, f1, MASK)]));
    const a = await att;
    await until(() => rx.length === 1 && client.head !== '', 'the first frame and the 101');
    expect(client.head).toContain('HTTP/1.1 101 Switching Protocols');
    expect(client.head).toContain('Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    expect(rx[0]).toEqual(f1);
    const back = new Uint8Array(1514).map((_, i) => i);
    peer.send(back);
    peer.send(back.subarray(0, 64));
    await until(() => client.messages.length === 2, 'two messages');
    expect(client.messages[0]).toEqual(back);
    expect(client.messages[1]).toEqual(back.subarray(0, 64));
    expect(a.counters).toMatchObject({ framesIn: 1, framesOut: 2, bytesOut: 1514 + 64 });
  });

  it('answers a ping with a pong carrying the same payload, and drops text messages', async () => {
    const { client, att, rx } = await setup();
    client.sock.write(REQUEST);
    const a = await att;
    client.sock.write(encodeWebSocketFrame(WsOpcode.Ping, Uint8Array.of(7, 8, 9), MASK));
    client.sock.write(encodeWebSocketFrame(WsOpcode.Text, new TextEncoder().encode('hi'), MASK));
    await until(() => client.controls.length === 1, 'the pong');
    expect(client.controls[0]).toEqual({ op: WsOpcode.Pong, data: Uint8Array.of(7, 8, 9) });
    await until(() => a.counters.textDropped === 1, 'the text drop');
    expect(rx).toEqual([]);
  });

  it('echoes a close frame, ends the socket and closes the backend', async () => {
    const { client, att } = await setup();
    client.sock.write(REQUEST);
    const a = await att;
    client.sock.write(encodeWebSocketFrame(WsOpcode.Close, encodeClosePayload(1000, 'bye'), MASK));
    expect(await a.done).toEqual({ reason: 'peer-close', code: 1000 });
    await until(() => client.controls.length === 1, 'the close echo');
    expect(client.controls[0]!.op).toBe(WsOpcode.Close);
    expect([...client.controls[0]!.data.subarray(0, 2)]).toEqual([0x03, 0xe8]);
  });

  it('fails an oversized message with close 1009 from its header alone', async () => {
    const { client, att } = await setup({ maxFrameLen: 1518 });
    client.sock.write(REQUEST);
    const a = await att;
    // Header of a 2000-byte masked binary frame, no payload sent.
    client.sock.write(Uint8Array.of(0x82, 0xfe, 0x07, 0xd0, 1, 2, 3, 4));
    const end = await a.done;
    expect(end.reason).toBe('protocol');
    expect(end.code).toBe(1009);
    await until(() => client.controls.length === 1, 'the close frame');
    expect([...client.controls[0]!.data.subarray(0, 2)]).toEqual([0x03, 0xf1]);
    await client.closed;
  });

  it('rejects a non-WebSocket request with 400 and GUESTNET_PROTOCOL', async () => {
    const { client, att } = await setup();
    let reply = '';
    client.sock.removeAllListeners('data');
    client.sock.on('data', (d) => (reply += d.toString()));
    client.sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await expect(att).rejects.toMatchObject({ code: 'GUESTNET_PROTOCOL' });
    await client.closed;
    expect(reply).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
  });

  it('sends close 1001 when the server detaches', async () => {
    const { client, att } = await setup();
    client.sock.write(REQUEST);
    const a = await att;
    await a.close();
    await until(() => client.controls.length === 1, 'the close frame');
    expect([...client.controls[0]!.data.subarray(0, 2)]).toEqual([0x03, 0xe9]);
  });
});
