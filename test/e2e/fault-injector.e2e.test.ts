/**
 * withFaultInjector end-to-end (issue 9), with the Linux kernel as the guest: a network
 * namespace's TAP is connected to `withFaultInjector(slirp, 5% drop, 5% duplicate, 5% reorder,
 * seeded)` — both directions, every frame — by a child process of our own (lib/faulty-attach.ts,
 * what `guestnet attach` does plus the middleware). Through it the kernel moves 1 GiB in total
 * via slirp to servers on host 127.0.0.1 reached as 10.0.2.2, each byte verified by sha256:
 * - host → guest: busybox `wget -O - http://10.0.2.2:PORT/stream/… | sha256sum` against the hash
 *   of what the host server sent (an AES-CTR keystream, lib/hash-stream.ts);
 * - guest → host: a `node -e` client in the namespace sends the keystream of another seed to a
 *   host TCP sink; its sha256 of what it sent, the sink's of what it received and the
 *   independently computed expected hash must all agree.
 * Both transfers run at the same time (they share the faulty link, as real traffic does). The
 * injector's counters must show drops, duplicates and reorders in the expected proportion.
 *
 * The link runs at MTU 65520 with the virtio-net header (TSO/GSO super-frames), as
 * `guestnet attach --mtu 65520` does: a fault hits a whole super-frame, which is still one frame
 * on the link. GUESTNET_E2E_FAULT_MIB (default 512, per direction) shortens the run locally.
 *
 * Safety: slirp has `allow=127.0.0.0/8` and `dns-upstream=` a resolver this test runs on
 * 127.0.0.1; the namespace is `gn-fault-<pid>`, deleted in afterAll with every process killed.
 * Needs root, /dev/net/tun, busybox, sha256sum (coreutils), a built @guestnet/tap; skips with the
 * reason otherwise, fails under CI. Budget on 2 cores: about 1 minute (measured 53-60 s for the
 * file, the machine shared: 1 GiB at 0.15-0.17 Gbit/s aggregate, of which the host → guest half
 * takes nearly all the time — slirp recovering from lost super-frames as the sender — while the
 * guest → host half finishes in 8-11 s).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { describeWith, needNetns, needTools, needTun, type Missing } from './lib/prereq.ts';
import { createNetns, deleteAllNetns, type Netns } from './lib/netns.ts';
import { Daemon, killAll } from './lib/proc.ts';
import { startDnsServer, type DnsServer } from './lib/servers.ts';
import { expectedSha256, parseUpload, startHashServers, UPLOAD_CLIENT, type HashServers } from './lib/hash-stream.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = join(ROOT, 'test/e2e/lib/faulty-attach.ts');
const MIB = Number(process.env.GUESTNET_E2E_FAULT_MIB ?? 512);
const BYTES = MIB * 1024 * 1024;
const MTU = 65520;
const FAULTS = { seed: 0x5eed9, drop: 0.05, duplicate: 0.05, reorder: 0.05 } as const;
const DOWN_SEED = '000102030405060708090a0b0c0d0e0f';
const UP_SEED = 'f0e0d0c0b0a090807060504030201000';
const TRANSFER_TIMEOUT = 280_000;

async function needTapBackend(): Promise<Missing[]> {
  try {
    const { loadBackend } = await import('../../packages/core/src/index.ts');
    const { importer } = await import('../../apps/cli/src/commands/command.ts');
    await loadBackend('tap', { importer });
    return [];
  } catch (e) {
    return [{ what: `@guestnet/tap cannot be loaded (${(e as Error).message})`, fix: 'pnpm install (builds the addon; needs build-essential and python3)' }];
  }
}

const missing = [...needNetns(), ...needTun(), ...needTools('busybox', 'sha256sum', 'bash'), ...(await needTapBackend())];

interface FaultStats {
  aToB: { frames: number; dropped: number };
  bToA: { frames: number; dropped: number };
  vnetHdrLen: number;
  b: { rxFrames: number; txFrames: number; drops: Record<string, number>; extra?: Record<string, number> };
  a: { drops: Record<string, number> };
}

describeWith('withFaultInjector end-to-end: 1 GiB through slirp under 5% loss, duplication and reordering', missing, () => {
  let dns: DnsServer;
  let servers: HashServers;
  let ns: Netns;
  let child: Daemon;
  let ready: { vnetHdrLen: number };
  let t0 = 0;
  let elapsed = 0;

  async function childStats(): Promise<FaultStats> {
    const from = child.stdout.length;
    child.child.stdin!.write('stats\n');
    const end = Date.now() + 5000;
    for (;;) {
      const m = /^STATS (.*)$/m.exec(child.stdout.slice(from));
      if (m) return JSON.parse(m[1]!) as FaultStats;
      if (Date.now() > end) throw new Error(`no STATS from faulty-attach\n${child.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  beforeAll(async () => {
    dns = await startDnsServer({});
    servers = await startHashServers();
    ns = await createNetns('fault');
    const config = `backend=slirp,dns-upstream=127.0.0.1#${dns.port},allow=127.0.0.0/8`;
    child = new Daemon(process.execPath, ['--import', 'tsx', CHILD, ns.path, 'tap0', String(MTU), 'auto', JSON.stringify(FAULTS), config], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const m = await child.waitFor(/^READY (.*)$/m, 30_000);
    ready = JSON.parse(m[1]!) as { vnetHdrLen: number };
    // What `guestnet attach --configure` sets (slirp4netns' defaults), inside the namespace only.
    await ns.ip(['link', 'set', 'dev', 'tap0', 'mtu', String(MTU), 'up']);
    await ns.ip(['addr', 'add', '10.0.2.100/24', 'dev', 'tap0']);
    await ns.ip(['route', 'add', 'default', 'via', '10.0.2.2', 'dev', 'tap0']);
  });

  afterAll(async () => {
    if (child) {
      child.child.stdin?.end();
      await child.stop('SIGTERM', 5000);
    }
    await killAll();
    await deleteAllNetns();
    await servers?.close();
    await dns?.close();
  });

  it(`moves ${MIB} MiB host → guest and ${MIB} MiB guest → host at once, every byte verified by sha256`, async () => {
    const url = `http://10.0.2.2:${servers.streamPort}/stream/${BYTES}/${DOWN_SEED}`;
    t0 = performance.now();
    // pipefail: a wget that fails midway must fail the pipeline, not hash a short stream.
    const down = ns.exec('bash', ['-c', `set -o pipefail; busybox wget -q -O - '${url}' | sha256sum`], { timeoutMs: TRANSFER_TIMEOUT });
    const up = ns.exec(process.execPath, ['-e', UPLOAD_CLIENT, '10.0.2.2', String(servers.sinkPort), String(BYTES), UP_SEED], { timeoutMs: TRANSFER_TIMEOUT });
    const [d, u] = await Promise.all([down, up]);
    elapsed = (performance.now() - t0) / 1000;
    const upSha = expectedSha256(UP_SEED, BYTES);
    const downSha = expectedSha256(DOWN_SEED, BYTES);

    expect(d.code, `download: ${d.stderr}`).toBe(0);
    expect(servers.streamed).toHaveLength(1);
    expect(servers.streamed[0]).toEqual({ bytes: BYTES, sha256: downSha, complete: true });
    expect(d.stdout.split(/\s/)[0]).toBe(downSha);

    expect(u.code, `upload: ${u.stderr}`).toBe(0);
    const r = parseUpload(u.stdout);
    expect(r).toEqual({ sent: BYTES, sha256: upSha, reply: `${upSha} ${BYTES}` });
    expect(servers.sunk).toEqual([{ bytes: BYTES, sha256: upSha, complete: true }]);

    const gbit = (2 * BYTES * 8) / elapsed / 1e9;
    console.log(
      `fault-injector e2e: ${2 * MIB} MiB (${MIB} MiB each way, concurrently) in ${elapsed.toFixed(1)} s = ${gbit.toFixed(2)} Gbit/s aggregate ` +
        `(MTU ${MTU}, vnet_hdr ${ready.vnetHdrLen || 'off'}); download ${(d.ms / 1000).toFixed(1)} s, upload ${(u.ms / 1000).toFixed(1)} s`,
    );
  });

  it('dropped, duplicated and reordered about 5% of the frames each, in both directions together', async () => {
    const s = await childStats();
    const x = s.b.extra ?? {};
    // Frames the injector saw: every guest frame (tap → injector) and every slirp frame (slirp → injector).
    const seen = s.aToB.frames + s.b.rxFrames;
    console.log(
      `fault-injector counters: ${seen} frames seen (guest→slirp ${s.aToB.frames}, slirp→guest ${s.b.rxFrames}); ` +
        `dropped ${x['fault-dropped']}, duplicated ${x['fault-duplicated']}, reordered ${x['fault-reordered']}, corrupted ${x['fault-corrupted']}; ` +
        `slirp drops ${JSON.stringify(s.b.drops)}, tap drops ${JSON.stringify(s.a.drops)}; slirp counters ${JSON.stringify(x)}`,
    );
    // Each direction carried at least one frame per 64 KiB moved (a super-frame holds up to ~64 KiB).
    expect(s.aToB.frames).toBeGreaterThan(BYTES / 65536);
    expect(s.b.rxFrames).toBeGreaterThan(BYTES / 65536);
    const ratio = (k: string): number => (x[k] ?? 0) / seen;
    // 5% nominal; duplicates and reorders are drawn only for frames that were not dropped
    // (and a reordered frame is not duplicated), so those land a little under 5%.
    expect(ratio('fault-dropped')).toBeGreaterThan(0.04);
    expect(ratio('fault-dropped')).toBeLessThan(0.06);
    expect(ratio('fault-duplicated')).toBeGreaterThan(0.035);
    expect(ratio('fault-duplicated')).toBeLessThan(0.06);
    expect(ratio('fault-reordered')).toBeGreaterThan(0.035);
    expect(ratio('fault-reordered')).toBeLessThan(0.06);
    expect(x['fault-corrupted']).toBe(0);
  });

  it('closes cleanly: the child exits 0 on SIGTERM and the TAP goes with it', async () => {
    child.child.stdin!.end();
    const exit = await child.stop('SIGTERM', 10_000);
    expect(exit).toEqual({ code: 0, signal: null });
    const link = await ns.exec('ip', ['link', 'show', 'tap0']);
    expect(link.code).not.toBe(0);
    console.log(`fault-injector e2e: transfer ${elapsed.toFixed(1)} s`);
  });
});
