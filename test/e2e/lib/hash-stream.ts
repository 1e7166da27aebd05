/**
 * Bulk transfers verified by hash, for e2e tests that must prove bytes arrive intact (through a
 * fault injector, in a soak): a deterministic pseudo-random stream (the AES-128-CTR keystream of
 * a 16-byte seed, so either end can generate it at GB/s with no table or file), an HTTP server on
 * 127.0.0.1 that streams it (`GET /stream/BYTES/SEEDHEX`, fetched in the guest with
 * `wget -O - | sha256sum`), a TCP sink on 127.0.0.1 that hashes what it receives and answers
 * `SHA256HEX BYTES\n` after the client's FIN, and the guest-side upload client (a `node -e`
 * script). Every transfer's sha256 and length are recorded on the host side for comparison.
 */
import { createCipheriv, createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

/** sha256 + length of one transfer as the host side saw it. */
export interface HashRecord {
  bytes: number;
  sha256: string;
  /** Whether the transfer ran to its end (all bytes sent / the client's FIN seen). */
  complete: boolean;
}

/** The keystream of `seedHex` (32 hex digits), `chunk` bytes at a time. */
export function keystream(seedHex: string): (n: number) => Buffer {
  const cipher = createCipheriv('aes-128-ctr', Buffer.from(seedHex, 'hex'), Buffer.alloc(16));
  let zero = Buffer.alloc(0);
  return (n) => {
    if (zero.length < n) zero = Buffer.alloc(n);
    return cipher.update(zero.subarray(0, n));
  };
}

/** sha256 of the first `bytes` of the keystream of `seedHex`. */
export function expectedSha256(seedHex: string, bytes: number): string {
  const next = keystream(seedHex);
  const h = createHash('sha256');
  for (let left = bytes; left > 0; ) {
    const n = Math.min(left, 1 << 20);
    h.update(next(n));
    left -= n;
  }
  return h.digest('hex');
}

export interface HashServers {
  /** HTTP: GET /stream/BYTES/SEEDHEX. */
  streamPort: number;
  /** TCP sink: hashes until FIN, answers "SHA BYTES\n". */
  sinkPort: number;
  /** One record per stream response, in order of arrival. */
  streamed: HashRecord[];
  /** One record per sink connection. */
  sunk: HashRecord[];
  /** Bytes streamed and sunk so far (finished or not). */
  totals(): { streamed: number; sunk: number };
  close(): Promise<void>;
}

const CHUNK = 256 * 1024;

export async function startHashServers(): Promise<HashServers> {
  const streamed: HashRecord[] = [];
  const sunk: HashRecord[] = [];
  let streamedBytes = 0;
  let sunkBytes = 0;
  const web = http.createServer((req, res) => {
    const m = /^\/stream\/(\d+)\/([0-9a-f]{32})$/.exec(req.url ?? '');
    if (!m || req.method !== 'GET') {
      res.writeHead(404).end();
      return;
    }
    const total = Number(m[1]);
    const next = keystream(m[2]!);
    const h = createHash('sha256');
    const rec: HashRecord = { bytes: 0, sha256: '', complete: false };
    streamed.push(rec);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
    const pump = (): void => {
      while (rec.bytes < total) {
        const b = next(Math.min(CHUNK, total - rec.bytes));
        h.update(b);
        rec.bytes += b.length;
        streamedBytes += b.length;
        if (!res.write(b)) {
          res.once('drain', pump);
          return;
        }
      }
      rec.sha256 = h.digest('hex');
      rec.complete = true;
      res.end();
    };
    res.on('error', () => {});
    pump();
  });
  const sink = net.createServer({ allowHalfOpen: true }, (sock) => {
    const h = createHash('sha256');
    const rec: HashRecord = { bytes: 0, sha256: '', complete: false };
    sunk.push(rec);
    sock.on('data', (d: Buffer) => {
      h.update(d);
      rec.bytes += d.length;
      sunkBytes += d.length;
    });
    sock.on('end', () => {
      rec.sha256 = h.digest('hex');
      rec.complete = true;
      sock.end(`${rec.sha256} ${rec.bytes}\n`);
    });
    sock.on('error', () => {});
  });
  const listen = (s: net.Server): Promise<number> =>
    new Promise((resolve, reject) => {
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve((s.address() as net.AddressInfo).port));
    });
  const streamPort = await listen(web);
  const sinkPort = await listen(sink);
  return {
    streamPort,
    sinkPort,
    streamed,
    sunk,
    totals: () => ({ streamed: streamedBytes, sunk: sunkBytes }),
    close: async () => {
      web.closeAllConnections();
      await Promise.all([new Promise((r) => web.close(r)), new Promise((r) => sink.close(r))]);
    },
  };
}

/**
 * The guest side of an upload, for `node -e UPLOAD_CLIENT HOST PORT BYTES SEEDHEX`: sends the
 * first BYTES of the keystream, half-closes, and prints one JSON line
 * `{"sent":N,"sha256":"…","reply":"SHA BYTES"}` with the sink's answer. Exit 1 on a socket error.
 */
export const UPLOAD_CLIENT = `
const net = require('node:net'), crypto = require('node:crypto');
const [host, port, total, seed] = process.argv.slice(1);
const N = Number(total);
const cipher = crypto.createCipheriv('aes-128-ctr', Buffer.from(seed, 'hex'), Buffer.alloc(16));
const zero = Buffer.alloc(${CHUNK});
const h = crypto.createHash('sha256');
let sent = 0, reply = '';
const s = net.connect({ host, port: Number(port), allowHalfOpen: true });
const pump = () => {
  while (sent < N) {
    const n = Math.min(zero.length, N - sent);
    const b = cipher.update(zero.subarray(0, n));
    h.update(b);
    sent += n;
    if (!s.write(b)) { s.once('drain', pump); return; }
  }
  s.end();
};
s.on('connect', pump);
s.setEncoding('utf8');
s.on('data', (d) => (reply += d));
s.on('end', () => { console.log(JSON.stringify({ sent, sha256: h.digest('hex'), reply: reply.trim() })); s.destroy(); });
s.on('error', (e) => { console.error('upload: ' + e.message); process.exit(1); });
`;

/** Parse the upload client's line. */
export function parseUpload(stdout: string): { sent: number; sha256: string; reply: string } | null {
  const line = stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as { sent: number; sha256: string; reply: string };
  } catch {
    return null;
  }
}
