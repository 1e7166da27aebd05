/**
 * A child-process script for the fault-injector e2e test: what `guestnet attach` does (a TAP
 * inside a network namespace, connected to a backend with connectBackends), with
 * withFaultInjector between the TAP and the backend, so every frame in both directions crosses a
 * lossy, duplicating, reordering link. `guestnet attach` has no way to insert middleware, hence
 * this script; it runs in its own process so that the backend's event loop does not share a
 * thread with the test's host servers.
 *
 *   node --import tsx test/e2e/lib/faulty-attach.ts NETNS_PATH TAP MTU VNET(auto|off) FAULTS_JSON CONFIG
 *
 * FAULTS_JSON is a FaultInjectorOptions object. Prints `READY <json>` once frames flow (the json
 * has the negotiated vnet header length); each line `stats` on stdin is answered with
 * `STATS <json>` (the connection's stats, the injector's counters in `b.extra`). SIGTERM or stdin
 * EOF closes everything (the TAP vanishes with its fd) and exits 0. Linux only, needs root.
 */
import { createInterface } from 'node:readline';
import { connectBackends, createBackend, withFaultInjector, type FaultInjectorOptions } from '../../../packages/core/src/index.ts';
import { importer } from '../../../apps/cli/src/commands/command.ts';

const [netns, tap, mtuArg, vnet, faultsJson, config] = process.argv.slice(2);
if (!netns || !tap || !mtuArg || (vnet !== 'auto' && vnet !== 'off') || !faultsJson || !config) {
  console.error('usage: faulty-attach.ts NETNS_PATH TAP MTU auto|off FAULTS_JSON CONFIG');
  process.exit(2);
}
const mtu = Number(mtuArg);
const faults = JSON.parse(faultsJson) as FaultInjectorOptions;

const esc = (v: string): string => v.replaceAll(',', ',,');
const backend = withFaultInjector(await createBackend(`${config},mtu=${mtu}`, { importer }), faults);
const tapBackend = await createBackend(
  `backend=tap,ifname=${esc(tap)},netns=${esc(netns)},up=on,mtu=${mtu},vnet_hdr=${vnet === 'off' ? 'off' : 'on'}`,
  { importer },
);
const conn = await connectBackends(tapBackend, backend, {
  vnetHdr: vnet,
  onError: (err, side) => {
    console.error(`faulty-attach: ${side === 'a' ? 'tap' : 'backend'} failed: ${err.message}`);
    process.exitCode = 1;
    void shutdown();
  },
});

// An idle TAP poll handle does not hold the event loop (as in attach.ts): keep one of our own.
const keepAlive = setInterval(() => {}, 1 << 30);
let closing = false;
async function shutdown(): Promise<void> {
  if (closing) return;
  closing = true;
  clearInterval(keepAlive);
  await conn.close().catch((e: Error) => console.error(`faulty-attach: close: ${e.message}`));
  process.exit();
}
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim() === 'stats') process.stdout.write(`STATS ${JSON.stringify(conn.stats())}\n`);
});
rl.on('close', () => void shutdown());

const s = conn.stats();
process.stdout.write(`READY ${JSON.stringify({ vnetHdrLen: s.vnetHdrLen, offloads: s.offloads, mtu })}\n`);
