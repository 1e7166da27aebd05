// The guest side of `pnpm soak`: runs inside the guest network namespace
// (`ip netns exec NS node driver.mjs CONFIG_JSON`) for the whole soak and keeps three kinds of
// light, steady traffic going through slirp to servers on host 127.0.0.1 (reached as the gateway)
// and slirp's DNS relay, counting every outcome:
//   - short TCP connections: HTTP GET with a fresh connection each (agent: false), `httpPerSec`
//     a second; an error, a non-200, a wrong body or no answer within 10 s is a failure;
//   - UDP echo: `udpPerSec` datagrams a second with a sequence number, each from a socket that is
//     replaced every `udpPerSocket` datagrams (so slirp keeps creating and expiring UDP flows);
//     a reply missing after 3 s is counted lost, a reply with the wrong payload is bad;
//   - DNS: A lookups through `dns` (10.0.2.3, slirp's relay), `dnsPerSec` a second, over names
//     whose answers are known; every tenth name does not exist and must give NXDOMAIN.
// Plain JavaScript so that it starts without a TypeScript loader. Prints `COUNTS <json>` every
// `reportMs` and once more after SIGTERM (then exits 0, having waited for what was in flight).
import dgram from 'node:dgram';
import dns from 'node:dns';
import http from 'node:http';

const cfg = JSON.parse(process.argv[2]);
const counts = {
  http: { ok: 0, fail: 0, inflight: 0, lastError: '' },
  udp: { sent: 0, received: 0, lost: 0, bad: 0, sockets: 0, lastError: '' },
  dns: { ok: 0, fail: 0, lastError: '' },
};
const timers = [];
let stopping = false;

// ---- short TCP connections -----------------------------------------------------------------

function oneHttp() {
  // A stuck server or slirp would pile requests up: do not start more than 50 at once.
  if (stopping || counts.http.inflight >= 50) return;
  counts.http.inflight++;
  let done = false;
  const finish = (err) => {
    if (done) return;
    done = true;
    counts.http.inflight--;
    if (err) {
      counts.http.fail++;
      counts.http.lastError = `${new Date().toISOString()} ${err}`;
    } else counts.http.ok++;
  };
  const req = http.get({ host: cfg.gateway, port: cfg.httpPort, path: '/', agent: false, timeout: 10_000 }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d) => (body += d));
    res.on('end', () => finish(res.statusCode !== 200 ? `status ${res.statusCode}` : body !== cfg.body ? `wrong body (${body.length} bytes)` : null));
    res.on('error', (e) => finish(e.message));
  });
  req.on('timeout', () => {
    req.destroy(new Error('no answer within 10 s'));
  });
  req.on('error', (e) => finish(e.message));
}

// ---- UDP echo ------------------------------------------------------------------------------

const pending = new Map(); // seq -> { sentAt, payload }
let sock = null;
let sockUses = 0;
let seq = 0;

function newSocket() {
  const s = dgram.createSocket('udp4');
  counts.udp.sockets++;
  s.on('message', (msg) => {
    if (msg.length < 4) {
      counts.udp.bad++;
      return;
    }
    const n = msg.readUInt32BE(0);
    const p = pending.get(n);
    if (!p) return; // already counted lost (late) or a duplicate
    pending.delete(n);
    if (Buffer.compare(p.payload, msg) !== 0) {
      counts.udp.bad++;
      counts.udp.lastError = `${new Date().toISOString()} seq ${n}: payload differs`;
    } else counts.udp.received++;
  });
  s.on('error', (e) => {
    counts.udp.lastError = `${new Date().toISOString()} ${e.message}`;
  });
  return s;
}

function oneUdp() {
  if (stopping) return;
  if (!sock || sockUses >= cfg.udpPerSocket) {
    // Keep the old socket open for the 3 s reply window, then close it.
    const old = sock;
    if (old) setTimeout(() => old.close(), 3500);
    sock = newSocket();
    sockUses = 0;
  }
  sockUses++;
  const n = seq++ >>> 0;
  const len = 16 + (n % 1385); // 16..1400 bytes
  const payload = Buffer.alloc(len, n & 0xff);
  payload.writeUInt32BE(n, 0);
  pending.set(n, { sentAt: Date.now(), payload });
  counts.udp.sent++;
  sock.send(payload, cfg.udpPort, cfg.gateway);
}

function expireUdp(all) {
  const now = Date.now();
  for (const [n, p] of pending) {
    if (all || now - p.sentAt > 3000) {
      pending.delete(n);
      counts.udp.lost++;
      counts.udp.lastError = `${new Date(p.sentAt).toISOString()} seq ${n}: no reply within 3 s`;
    }
  }
}

// ---- DNS -----------------------------------------------------------------------------------

const resolver = new dns.promises.Resolver({ timeout: 2000, tries: 3 });
resolver.setServers([cfg.dns]);
let dnsSeq = 0;

async function oneDns() {
  if (stopping) return;
  const i = dnsSeq++;
  const entry = cfg.names[i % cfg.names.length];
  try {
    const addrs = await resolver.resolve4(entry.name);
    if (entry.a && addrs.length === 1 && addrs[0] === entry.a) counts.dns.ok++;
    else {
      counts.dns.fail++;
      counts.dns.lastError = `${new Date().toISOString()} ${entry.name}: got ${addrs.join(',')}, want ${entry.a ?? 'NXDOMAIN'}`;
    }
  } catch (e) {
    if (!entry.a && e.code === 'ENOTFOUND') counts.dns.ok++;
    else {
      counts.dns.fail++;
      counts.dns.lastError = `${new Date().toISOString()} ${entry.name}: ${e.code ?? e.message}`;
    }
  }
}

// ---- schedule ------------------------------------------------------------------------------

const report = () => process.stdout.write(`COUNTS ${JSON.stringify(counts)}\n`);

timers.push(setInterval(oneHttp, 1000 / cfg.httpPerSec));
timers.push(setInterval(oneUdp, 1000 / cfg.udpPerSec));
timers.push(setInterval(() => void oneDns(), 1000 / cfg.dnsPerSec));
timers.push(setInterval(() => expireUdp(false), 500));
timers.push(setInterval(report, cfg.reportMs));

process.once('SIGTERM', async () => {
  stopping = true;
  for (const t of timers) clearInterval(t);
  // Let what is in flight finish (HTTP answers within 10 s, UDP replies within 3 s).
  const end = Date.now() + 11_000;
  while ((counts.http.inflight > 0 || pending.size > 0) && Date.now() < end) {
    expireUdp(false);
    await new Promise((r) => setTimeout(r, 100));
  }
  expireUdp(true);
  report();
  process.exit(0);
});
