/**
 * Host-side peers for the QEMU e2e guest, all bound to 127.0.0.1 on OS-chosen ports:
 *
 * - a DNS server (RFC 1035, UDP only) that knows one name: A → the given address, AAAA → empty
 *   NOERROR, anything else NXDOMAIN. slirp's `dns-upstream=127.0.0.1#PORT` points here, so the
 *   guest never reaches a real resolver.
 * - an HTTP server: `/hello` → a token, `/big` → N random bytes whose sha256 is returned.
 * - a TFTP "echo" server (RFC 1350, blksize option of RFC 2347/2348): a WRQ stores the file in
 *   memory, a later RRQ of the same name returns it — the guest's UDP round trip (busybox nc has
 *   no UDP mode; busybox tftp does). Replies come from the listening port (no new TID per
 *   transfer), which clients accept. No tsize/timeout options, no netascii conversion.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface DnsServer {
  port: number;
  /** Questions seen, as `NAME/TYPE`. */
  readonly queries: string[];
  close(): Promise<void>;
}

function bindUdp(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

function closeUdp(s: Socket): Promise<void> {
  return new Promise((r) => {
    try {
      s.close(() => r());
    } catch {
      r();
    }
  });
}

/** Answers `name` (case-insensitive) with A `addr`. */
export async function startDnsServer(name: string, addr: string): Promise<DnsServer> {
  const sock = await bindUdp();
  const queries: string[] = [];
  const want = name.toLowerCase().replace(/\.$/, '');
  const a = addr.split('.').map(Number);
  const send = sock.send.bind(sock);
  sock.on('message', (msg, rinfo) => handle(msg, rinfo));
  function handle(msg: Buffer, rinfo: RemoteInfo): void {
    const reply = answer(msg);
    if (reply) send(reply, rinfo.port, rinfo.address);
  }
  function answer(msg: Buffer): Buffer | null {
    if (msg.length < 12 || (msg[2] & 0x80) !== 0 || msg.readUInt16BE(4) !== 1) return null;
    const labels: string[] = [];
    let off = 12;
    while (off < msg.length && msg[off] !== 0) {
      const len = msg[off];
      if (len > 63 || off + 1 + len > msg.length) return null;
      labels.push(msg.toString('latin1', off + 1, off + 1 + len));
      off += 1 + len;
    }
    if (off + 5 > msg.length) return null;
    const qEnd = off + 5;
    const qtype = msg.readUInt16BE(off + 1);
    const qname = labels.join('.').toLowerCase();
    queries.push(`${qname}/${qtype}`);
    const known = qname === want;
    const answerA = known && qtype === 1;
    const head = Buffer.alloc(12);
    msg.copy(head, 0, 0, 2); // id
    head[2] = 0x84 | (msg[2] & 0x01); // QR, AA, RD copied
    head[3] = 0x80 | (known ? 0 : 3); // RA, NOERROR / NXDOMAIN
    head.writeUInt16BE(1, 4);
    head.writeUInt16BE(answerA ? 1 : 0, 6);
    const parts = [head, msg.subarray(12, qEnd)];
    if (answerA) parts.push(Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...a]));
    return Buffer.concat(parts);
  }
  return { port: (sock.address() as AddressInfo).port, queries, close: () => closeUdp(sock) };
}

export interface HttpServer {
  port: number;
  /** The body of /hello. */
  token: string;
  bigSha256: string;
  bigBytes: number;
  /** Request paths seen. */
  readonly requests: string[];
  close(): Promise<void>;
}

export async function startHttpServer(token: string, bigBytes: number): Promise<HttpServer> {
  const big = randomBytes(bigBytes);
  const bigSha256 = createHash('sha256').update(big).digest('hex');
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? '');
    if (req.url === '/hello') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(token) });
      res.end(token);
    } else if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': big.length });
      res.end(big);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r, j) => {
    server.once('error', j);
    server.listen(0, '127.0.0.1', () => r());
  });
  return {
    port: (server.address() as AddressInfo).port,
    token,
    bigSha256,
    bigBytes,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface TftpEchoServer {
  port: number;
  /** Files received (by WRQ), by name. */
  readonly files: Map<string, Buffer>;
  /** Completed transfers, as `put NAME BYTES` / `get NAME BYTES`. */
  readonly log: string[];
  close(): Promise<void>;
}

const OP = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

interface Transfer {
  kind: 'put' | 'get';
  name: string;
  blksize: number;
  /** put: next block expected; get: block last sent. */
  block: number;
  chunks: Buffer[];
  data: Buffer;
  last: Buffer;
  lastWasFinal: boolean;
  tries: number;
  timer: NodeJS.Timeout | null;
}

export async function startTftpEchoServer(): Promise<TftpEchoServer> {
  const sock = await bindUdp();
  const files = new Map<string, Buffer>();
  const log: string[] = [];
  const transfers = new Map<string, Transfer>();

  const send = (t: Transfer | null, pkt: Buffer, r: RemoteInfo): void => {
    sock.send(pkt, r.port, r.address);
    if (!t) return;
    t.last = pkt;
    t.tries = 0;
    arm(t, r);
  };
  const arm = (t: Transfer, r: RemoteInfo): void => {
    if (t.timer) clearTimeout(t.timer);
    t.timer = setTimeout(() => {
      if (++t.tries > 5) return end(r);
      sock.send(t.last, r.port, r.address);
      arm(t, r);
    }, 1000);
  };
  const end = (r: RemoteInfo): void => {
    const key = `${r.address}:${r.port}`;
    const t = transfers.get(key);
    if (t?.timer) clearTimeout(t.timer);
    transfers.delete(key);
  };
  const error = (r: RemoteInfo, code: number, text: string): void => {
    const b = Buffer.alloc(5 + text.length);
    b.writeUInt16BE(OP.ERROR, 0);
    b.writeUInt16BE(code, 2);
    b.write(text, 4, 'latin1');
    sock.send(b, r.port, r.address);
    end(r);
  };
  const ack = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt16BE(OP.ACK, 0);
    b.writeUInt16BE(n & 0xffff, 2);
    return b;
  };
  const dataBlock = (t: Transfer, n: number): Buffer => {
    const start = (n - 1) * t.blksize;
    const chunk = t.data.subarray(start, Math.min(start + t.blksize, t.data.length));
    const b = Buffer.alloc(4 + chunk.length);
    b.writeUInt16BE(OP.DATA, 0);
    b.writeUInt16BE(n & 0xffff, 2);
    chunk.copy(b, 4);
    t.lastWasFinal = chunk.length < t.blksize;
    return b;
  };

  sock.on('message', (msg, r) => {
    if (msg.length < 4) return;
    const op = msg.readUInt16BE(0);
    const key = `${r.address}:${r.port}`;
    if (op === OP.RRQ || op === OP.WRQ) {
      end(r);
      const fields = msg.toString('latin1', 2).split('\0');
      const name = fields[0];
      const opts = new Map<string, string>();
      for (let i = 2; i + 1 < fields.length; i += 2) if (fields[i]) opts.set(fields[i].toLowerCase(), fields[i + 1]);
      const asked = Number(opts.get('blksize'));
      const blksize = opts.has('blksize') && asked >= 8 ? Math.min(asked, 65464) : 512;
      const oack = opts.has('blksize') ? Buffer.from(`\0\x06blksize\0${blksize}\0`, 'latin1') : null;
      if (op === OP.WRQ) {
        const t: Transfer = { kind: 'put', name, blksize, block: 1, chunks: [], data: Buffer.alloc(0), last: Buffer.alloc(0), lastWasFinal: false, tries: 0, timer: null };
        transfers.set(key, t);
        send(t, oack ?? ack(0), r);
      } else {
        const data = files.get(name);
        if (!data) return error(r, 1, 'file not found');
        const t: Transfer = { kind: 'get', name, blksize, block: 0, chunks: [], data, last: Buffer.alloc(0), lastWasFinal: false, tries: 0, timer: null };
        transfers.set(key, t);
        if (oack) send(t, oack, r); // the client ACKs block 0
        else send(t, dataBlock(t, (t.block = 1)), r);
      }
      return;
    }
    const t = transfers.get(key);
    if (!t) return;
    const n = msg.readUInt16BE(2);
    if (op === OP.DATA && t.kind === 'put') {
      if (n === (t.block & 0xffff)) {
        const payload = Buffer.from(msg.subarray(4));
        t.chunks.push(payload);
        t.block++;
        if (payload.length < t.blksize) {
          const data = Buffer.concat(t.chunks);
          files.set(t.name, data);
          log.push(`put ${t.name} ${data.length}`);
          sock.send(ack(n), r.port, r.address);
          end(r);
          return;
        }
        send(t, ack(n), r);
      } else if (n === ((t.block - 1) & 0xffff)) {
        sock.send(ack(n), r.port, r.address); // our ACK was lost
      }
    } else if (op === OP.ACK && t.kind === 'get') {
      if (n !== (t.block & 0xffff)) return; // duplicate ACK: the timer resends
      if (t.block > 0 && t.lastWasFinal) {
        log.push(`get ${t.name} ${t.data.length}`);
        end(r);
        return;
      }
      t.block++;
      send(t, dataBlock(t, t.block), r);
    } else if (op === OP.ERROR) {
      end(r);
    }
  });

  return {
    port: (sock.address() as AddressInfo).port,
    files,
    log,
    close: async () => {
      for (const t of transfers.values()) if (t.timer) clearTimeout(t.timer);
      transfers.clear();
      await closeUdp(sock);
    },
  };
}
