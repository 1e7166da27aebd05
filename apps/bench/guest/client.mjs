// The guest side of the guestnet benchmark workloads, run inside the guest network namespace
// (`ip netns exec NS node client.mjs …`) against servers the harness runs on host 127.0.0.1,
// reached through the peer's gateway address. Plain JavaScript so that it starts without a
// TypeScript loader (start-up time is not measured, but it is paid once per workload).
//
//   rr   HOST PORT SECONDS        1-byte TCP ping-pong on one connection; prints p50/p99 µs
//   conn HOST PORT SECONDS CONC   connect, 1 byte each way, close, CONC at a time; prints count
//   idle HOST PORT N              open N connections, print HELD, hold them until stdin closes
//
// Prints one JSON line on stdout. Exits non-zero with a message on stderr when a workload fails.
import net from 'node:net';

const [mode, host, portStr, a, b] = process.argv.slice(2);
const port = Number(portStr);
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const fail = (m) => {
  process.stderr.write(`client ${mode}: ${m}\n`);
  process.exit(2);
};

function connect() {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, noDelay: true });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

async function rr(seconds) {
  const s = await connect();
  s.setNoDelay(true);
  const one = Buffer.from([0x2a]);
  // Preallocated sample store: the client itself must not allocate per round trip.
  const cap = 4_000_000;
  const samples = new Float64Array(cap);
  let n = 0;
  const end = performance.now() + seconds * 1000;
  const warm = performance.now() + 200;
  await new Promise((resolve, reject) => {
    let t0 = 0;
    s.on('error', reject);
    s.on('data', (d) => {
      const t1 = performance.now();
      if (d.length !== 1) return reject(new Error(`expected 1 byte, got ${d.length}`));
      if (t1 > warm && n < cap) samples[n++] = t1 - t0;
      if (t1 >= end) return resolve();
      t0 = performance.now();
      s.write(one);
    });
    t0 = performance.now();
    s.write(one);
  });
  s.destroy();
  const v = samples.subarray(0, n).sort();
  const q = (p) => v[Math.min(n - 1, Math.floor(p * n))] * 1000;
  out({ roundTrips: n, p50us: q(0.5), p99us: q(0.99), meanUs: (v.reduce((x, y) => x + y, 0) / n) * 1000 });
}

async function conn(seconds, conc) {
  const end = performance.now() + seconds * 1000;
  let done = 0;
  let errors = 0;
  let lastError = '';
  const one = Buffer.from([0x2a]);
  const worker = async () => {
    while (performance.now() < end) {
      try {
        await new Promise((resolve, reject) => {
          const s = net.connect({ host, port, noDelay: true });
          const timer = setTimeout(() => {
            s.destroy();
            reject(new Error('timeout 5 s'));
          }, 5000);
          s.once('error', (e) => {
            clearTimeout(timer);
            reject(e);
          });
          s.once('connect', () => s.write(one));
          s.once('data', () => s.end());
          s.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
        });
        done++;
      } catch (e) {
        errors++;
        lastError = e.message;
        if (errors > 100) throw new Error(`${errors} failed connections, last: ${lastError}`);
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: conc }, worker));
  const secs = (performance.now() - t0) / 1000;
  out({ connections: done, seconds: secs, perSecond: done / secs, errors, lastError });
}

async function idle(n) {
  const socks = [];
  const batch = 50;
  for (let i = 0; i < n; i += batch) {
    const part = await Promise.all(Array.from({ length: Math.min(batch, n - i) }, () => connect()));
    socks.push(...part);
  }
  // Each connection proves it is live end to end: 1 byte there and back.
  await Promise.all(
    socks.map(
      (s) =>
        new Promise((resolve, reject) => {
          s.once('data', resolve);
          s.once('error', reject);
          s.write('x');
        }),
    ),
  );
  out({ held: socks.length });
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
}

const timer = setTimeout(() => fail('overall timeout 120 s'), 120_000);
timer.unref();
try {
  if (mode === 'rr') await rr(Number(a));
  else if (mode === 'conn') await conn(Number(a), Number(b ?? 4));
  else if (mode === 'idle') await idle(Number(a));
  else fail(`unknown mode ${mode}`);
  if (mode !== 'idle') process.exit(0);
} catch (e) {
  fail(e.message);
}
