/**
 * Host-side servers for e2e tests, all bound to 127.0.0.1 (the only place a guest may reach
 * through slirp's gateway): a tiny authoritative DNS server (the upstream slirp's DNS relay is
 * pointed at, so no test ever uses the host's real resolver), an HTTP server, and free ports.
 * The DNS server answers A/AAAA for the names it is given (NXDOMAIN otherwise), over UDP and TCP
 * (RFC 1035 §4.2.2 length prefix); no EDNS, no compression in questions, one question per query.
 */
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface DnsServer {
  port: number;
  /** Names asked so far, lower-case with their qtype ("a.test/A"). */
  queries: string[];
  close(): Promise<void>;
}

const QTYPE: Record<number, string> = { 1: 'A', 28: 'AAAA' };

function answer(query: Buffer, records: Record<string, { a?: string; aaaa?: string }>, log: string[]): Buffer | null {
  if (query.length < 12) return null;
  const qd = query.readUInt16BE(4);
  if (qd !== 1) return null;
  let off = 12;
  const labels: string[] = [];
  while (off < query.length) {
    const len = query[off]!;
    if (len === 0) break;
    if (len > 63) return null;
    labels.push(query.subarray(off + 1, off + 1 + len).toString('latin1'));
    off += 1 + len;
  }
  off++;
  if (off + 4 > query.length) return null;
  const qtype = query.readUInt16BE(off);
  const qend = off + 4;
  const name = labels.join('.').toLowerCase();
  log.push(`${name}/${QTYPE[qtype] ?? qtype}`);
  const rec = records[name];
  const rdata: Buffer[] = [];
  if (rec && qtype === 1 && rec.a) rdata.push(Buffer.from(rec.a.split('.').map(Number)));
  if (rec && qtype === 28 && rec.aaaa) rdata.push(ipv6Bytes(rec.aaaa));
  const head = Buffer.alloc(12);
  query.copy(head, 0, 0, 2); // id
  // QR=1, opcode from query, AA=1, RD copied, RA=1; rcode NXDOMAIN (3) for unknown names.
  head[2] = 0x84 | (query[2]! & 0x79);
  head[3] = 0x80 | (rec ? 0 : 3);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(rdata.length, 6);
  const answers = rdata.map((d) => {
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the question name
    rr.writeUInt16BE(qtype, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(60, 6);
    rr.writeUInt16BE(d.length, 10);
    return Buffer.concat([rr, d]);
  });
  return Buffer.concat([head, query.subarray(12, qend), ...answers]);
}

function ipv6Bytes(s: string): Buffer {
  const [h, t] = s.split('::');
  const parts = (x: string | undefined) => (x ? x.split(':') : []);
  const head = parts(h);
  const tail = parts(t);
  const groups = [...head, ...Array(8 - head.length - tail.length).fill('0'), ...tail];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

/** A DNS server on 127.0.0.1 (UDP and TCP on the same port). */
export async function startDnsServer(records: Record<string, { a?: string; aaaa?: string }>): Promise<DnsServer> {
  const queries: string[] = [];
  const tcp = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const q = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + q.length);
        const r = answer(Buffer.from(q), records, queries);
        if (r) {
          const len = Buffer.alloc(2);
          len.writeUInt16BE(r.length);
          sock.write(Buffer.concat([len, r]));
        }
      }
    });
    sock.on('error', () => {});
  });
  // Take a port free for TCP, then bind UDP to the same number (retry a few times on a clash).
  for (let attempt = 0; ; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(0, '127.0.0.1', () => resolve((tcp.address() as net.AddressInfo).port));
    });
    const udp = dgram.createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    if (!ok) {
      udp.close();
      await new Promise((r) => tcp.close(r));
      if (attempt > 5) throw new Error('could not bind a DNS server port');
      continue;
    }
    udp.on('message', (msg, rinfo) => {
      const r = answer(msg, records, queries);
      if (r) udp.send(r, rinfo.port, rinfo.address);
    });
    return {
      port,
      queries,
      close: async () => {
        udp.close();
        await new Promise((r) => tcp.close(r));
      },
    };
  }
}

export interface HttpServer {
  port: number;
  requests: number;
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 answering every GET with `body`. */
export async function startHttpServer(body: string): Promise<HttpServer> {
  const state = { requests: 0 };
  const srv = http.createServer((req, res) => {
    state.requests++;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  const port = await new Promise<number>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve((srv.address() as net.AddressInfo).port));
  });
  return {
    port,
    get requests() {
      return state.requests;
    },
    close: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

/** Connect to host:port, read until the peer closes (or `timeoutMs`), return what was read. */
export function tcpRead(port: number, host = '127.0.0.1', send = '', timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, host);
    let data = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`tcpRead ${host}:${port}: timed out; got ${JSON.stringify(data)}`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      if (send) sock.write(send);
    });
    sock.on('data', (d: string) => (data += d));
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(data);
    });
  });
}
