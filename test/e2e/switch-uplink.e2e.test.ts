/**
 * Two Linux kernels share one NAT through a guestnet switch (test tier 3): `guestnet switch`
 * runs in a child process with a slirp uplink, two network namespaces each get a TAP device
 * attached to their own switch port by a separate `guestnet attach … backend=valeX:1` / `:2`
 * process (cross-process shared-memory rings, @guestnet/netmap), and the kernels use it: busybox
 * udhcpc gets a lease from slirp's DHCP through the switch (distinct addresses), the two
 * namespaces ping each other across the switch, and each fetches from an HTTP server on host
 * 127.0.0.1 through the gateway 10.0.2.2. Bulk: each guest downloads 20 MiB from host 127.0.0.1
 * (sha256 verified) and each fetches 20 MiB from the other guest's busybox httpd across the
 * switch. Stopping the switch with SIGTERM detaches the ports, removes its socket and leaves no
 * shared memory file.
 *
 * Virtio-net headers: guest A's attach runs with its default (`--vnet-hdr auto`: a 12-byte header
 * with csum/TSO, so its kernel sends NEEDS_CSUM frames and TSO super-frames up to 64 KiB), guest
 * B's with `--vnet-hdr off` (plain frames, like a NIC without offloads). The switch negotiates
 * csum/TSO with the slirp uplink, so A ↔ slirp passes super-frames whole, and it finalises in
 * software (checksum + segmentation) what goes to B: slirp's and A's super-frames. Before the
 * switch did that (it dropped such frames as vnet-mismatch) the attach had to run with
 * `--vnet-hdr off`. GUESTNET_E2E_SWITCH_VNET_B=auto gives B the default header too.
 *
 * Safety: the uplink is `backend=slirp,dns-upstream=127.0.0.1#PORT,allow=127.0.0.0/8`; the
 * namespaces are `gn-swa-<pid>` / `gn-swb-<pid>` and deleted in afterAll; the switch socket lives
 * in a temp $XDG_RUNTIME_DIR removed afterwards; every process is killed.
 * Needs root, /dev/net/tun, busybox (udhcpc, wget, httpd, sha256sum), ping (iputils), a built @guestnet/tap and the netmap
 * shared-memory helper; skips with the reason otherwise, fails under CI.
 *
 * Budget (2 cores): ~15-40 s (three CLI start-ups, two DHCP exchanges, 80 MiB of bulk transfer).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeWith, needNetns, needTools, needTun, type Missing } from './lib/prereq.ts';
import { createNetns, deleteAllNetns, type Netns } from './lib/netns.ts';
import { Daemon, killAll } from './lib/proc.ts';
import { startDnsServer, startHttpServer, type DnsServer, type HttpServer } from './lib/servers.ts';
import { expectedSha256, startHashServers, type HashServers } from './lib/hash-stream.ts';
import { createHash, randomBytes } from 'node:crypto';
import { parseEnvFile, writeUdhcpcScript } from './lib/kernel-guest.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'apps/cli/bin/guestnet.js');
const BODY = 'hello through the switch\n';
const SWITCH = `valee${process.pid}`;
/** Guest B's `--vnet-hdr` (guest A always runs the default): see the header comment. */
const VNET_B = process.env.GUESTNET_E2E_SWITCH_VNET_B ?? 'off';
/** Bulk transfer size, per transfer (four transfers). */
const BULK = 20 * 1024 * 1024;
const BULK_TIMEOUT = 120_000;
const GUEST_HTTP_PORT = 8080;

async function needBackends(): Promise<Missing[]> {
  const missing: Missing[] = [];
  try {
    const { loadBackend } = await import('../../packages/core/src/index.ts');
    const { importer } = await import('../../apps/cli/src/commands/command.ts');
    await loadBackend('tap', { importer });
  } catch (e) {
    missing.push({ what: `@guestnet/tap cannot be loaded (${(e as Error).message})`, fix: 'run pnpm install (builds the tap addon)' });
  }
  try {
    const { shmAvailable } = await import('../../packages/netmap/src/shm.ts');
    if (!shmAvailable()) throw new Error('the native helper does not load');
  } catch (e) {
    missing.push({ what: `@guestnet/netmap shared memory unavailable (${(e as Error).message})`, fix: 'cd packages/netmap && npx node-gyp rebuild --nodedir=/usr' });
  }
  return missing;
}

const missing = [...needNetns(), ...needTun(), ...needTools('busybox', 'ping'), ...(await needBackends())];

function shmFiles(): string[] {
  return readdirSync('/dev/shm').filter((f) => f.startsWith(`guestnet-vale-${SWITCH}-`));
}

describeWith('guestnet switch with a slirp uplink, two kernels as guests', missing, () => {
  let dns: DnsServer;
  let web: HttpServer;
  let bulk: HashServers;
  let tmp: string;
  let env: NodeJS.ProcessEnv;
  let sw: Daemon;
  const guests: { ns: Netns; cli: Daemon; dir: string; ip?: string; www?: string; sha?: string }[] = [];

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'guestnet-switch-e2e-'));
    env = { ...process.env, XDG_RUNTIME_DIR: join(tmp, 'run') };
    mkdirSync(env.XDG_RUNTIME_DIR!, { mode: 0o700 });
    dns = await startDnsServer({});
    web = await startHttpServer(BODY);
    bulk = await startHashServers();
    const uplink = `backend=slirp,dns-upstream=127.0.0.1#${dns.port},allow=127.0.0.0/8`;
    sw = new Daemon(process.execPath, [CLI, 'switch', SWITCH, '--uplink', uplink], { cwd: ROOT, env });
    await sw.waitFor(/ready on unix:/, 30_000);
    for (const [tag, port, vnet] of [['swa', 1, 'auto'], ['swb', 2, VNET_B]] as const) {
      const ns = await createNetns(tag);
      const dir = join(tmp, tag);
      mkdirSync(dir);
      const cli = new Daemon(process.execPath, [CLI, 'attach', '--netns', ns.path, '--tap', 'tap0', '--vnet-hdr', vnet, `backend=${SWITCH}:${port}`], { cwd: ROOT, env });
      guests.push({ ns, cli, dir });
    }
    await Promise.all(guests.map((g) => g.cli.waitFor(/^attached .*$/m, 30_000)));
  });

  afterAll(async () => {
    await killAll();
    await deleteAllNetns();
    await dns?.close();
    await web?.close();
    await bulk?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('prints how to attach, and the attach processes join ports 1 and 2', async () => {
    expect(sw.stdout).toMatch(new RegExp(`switch ${SWITCH} ready on unix:${env.XDG_RUNTIME_DIR}/guestnet-vale/${SWITCH}\\.sock \\(ports 0\\.\\.253, uplink backend=slirp.* on port 0\\)`));
    expect(sw.stdout).toContain(`backend=${SWITCH}:1`);
    expect(sw.stdout).toMatch(/QEMU cannot attach to a switch itself/);
    for (const g of guests) expect(g.cli.stdout).toMatch(new RegExp(`^attached tap0 in ${g.ns.path} to backend=netmap`, 'm'));
    // Guest A's TAP negotiated the virtio-net header with checksum and TSO offloads.
    expect(guests[0]!.cli.stdout).toMatch(/vnet_hdr 12 \(csum,tso4,tso6/);
    // The switch logs a port once the client has confirmed its mapping (the client may print
    // "attached" a moment earlier).
    await sw.waitFor(/port 1 attached/, 5000);
    await sw.waitFor(/port 2 attached/, 5000);
    // Both sides have mapped their files: the names are gone already.
    expect(shmFiles()).toEqual([]);
  });

  it('both guests get distinct DHCP leases from slirp through the switch', async () => {
    await Promise.all(
      guests.map(async (g) => {
        const { script, leaseFile } = writeUdhcpcScript(g.dir);
        await g.ns.execOk('busybox', ['udhcpc', '-i', 'tap0', '-f', '-n', '-q', '-t', '10', '-T', '1', '-s', script], { timeoutMs: 30_000 });
        const lease = parseEnvFile(readFileSync(leaseFile, 'utf8'));
        expect(lease).toMatchObject({ router: '10.0.2.2', dns: '10.0.2.3' });
        g.ip = lease.ip;
      }),
    );
    const [a, b] = guests.map((g) => g.ip);
    expect(a).toMatch(/^10\.0\.2\.\d+$/);
    expect(b).toMatch(/^10\.0\.2\.\d+$/);
    expect(a).not.toBe(b);
    console.log(`switch e2e: leases ${a} and ${b}`);
  });

  it('the guests ping each other across the switch', async () => {
    const [a, b] = guests;
    const ab = await a!.ns.execOk('ping', ['-c', '3', '-i', '0.2', '-W', '2', b!.ip!], { timeoutMs: 15_000 });
    expect(ab.stdout).toMatch(/3 packets transmitted, 3 received/);
    const ba = await b!.ns.execOk('ping', ['-c', '3', '-i', '0.2', '-W', '2', a!.ip!], { timeoutMs: 15_000 });
    expect(ba.stdout).toMatch(/3 packets transmitted, 3 received/);
  });

  it('each guest fetches from a host 127.0.0.1 HTTP server through the gateway 10.0.2.2', async () => {
    const before = web.requests;
    for (const g of guests) {
      // No `-T`: Debian 12's busybox-static 1.35 wget segfaults with it; execOk bounds the time.
      const r = await g.ns.execOk('busybox', ['wget', '-q', '-O', '-', `http://10.0.2.2:${web.port}/`], { timeoutMs: 15_000 });
      expect(r.stdout).toBe(BODY);
    }
    expect(web.requests).toBe(before + 2);
  });

  it('each guest downloads 20 MiB from host 127.0.0.1 through the switch and slirp, sha256 verified', async () => {
    for (const [i, g] of guests.entries()) {
      const seed = randomBytes(16).toString('hex');
      const url = `http://10.0.2.2:${bulk.streamPort}/stream/${BULK}/${seed}`;
      const t0 = performance.now();
      const r = await g.ns.execOk('sh', ['-c', `busybox wget -q -O - '${url}' | busybox sha256sum`], { timeoutMs: BULK_TIMEOUT });
      const s = (performance.now() - t0) / 1000;
      expect(r.stdout.split(/\s+/)[0]).toBe(expectedSha256(seed, BULK));
      console.log(`switch e2e: host → guest ${'AB'[i]} ${BULK >> 20} MiB in ${s.toFixed(2)} s = ${((BULK * 8) / s / 1e6).toFixed(0)} Mbit/s`);
    }
  });

  it('each guest fetches 20 MiB from the other guest across the switch, sha256 verified', async () => {
    for (const g of guests) {
      g.www = join(g.dir, 'www');
      mkdirSync(g.www);
      const data = randomBytes(BULK);
      writeFileSync(join(g.www, 'big'), data);
      g.sha = createHash('sha256').update(data).digest('hex');
      g.ns.spawn('busybox', ['httpd', '-f', '-p', `${g.ip}:${GUEST_HTTP_PORT}`, '-h', g.www]);
      await g.ns.waitFor('httpd listening', async () => {
        const r = await g.ns.exec('busybox', ['wget', '-q', '-O', '/dev/null', `http://${g.ip}:${GUEST_HTTP_PORT}/none`], { timeoutMs: 5000 });
        // A 404 for a missing file proves the server answers.
        return r.stderr.includes('404') || r.code === 0 ? true : undefined;
      }, 10_000);
    }
    const [a, b] = guests;
    for (const [from, to, label] of [[b!, a!, 'B → A'], [a!, b!, 'A → B']] as const) {
      const t0 = performance.now();
      const r = await to.ns.execOk('sh', ['-c', `busybox wget -q -O - 'http://${from.ip}:${GUEST_HTTP_PORT}/big' | busybox sha256sum`], { timeoutMs: BULK_TIMEOUT });
      const s = (performance.now() - t0) / 1000;
      expect(r.stdout.split(/\s+/)[0]).toBe(from.sha);
      console.log(`switch e2e: guest ${label} ${BULK >> 20} MiB in ${s.toFixed(2)} s = ${((BULK * 8) / s / 1e6).toFixed(0)} Mbit/s`);
    }
  });

  it('SIGTERM stops the switch cleanly: exit 0, socket removed, no shared memory left', async () => {
    const exit = await sw.stop('SIGTERM', 10_000);
    expect({ ...exit, stderr: sw.stderr.slice(-500) }).toMatchObject({ code: 0, signal: null });
    expect(sw.stderr).toMatch(/SIGTERM, shutting down switch .*port 0 \(uplink\): in \d+ out \d+/);
    console.log(`switch e2e: ${sw.stderr.slice(sw.stderr.indexOf('SIGTERM')).trim()}`);
    expect(existsSync(join(env.XDG_RUNTIME_DIR!, 'guestnet-vale', `${SWITCH}.sock`))).toBe(false);
    expect(shmFiles()).toEqual([]);
    // The attach processes see their switch go away and exit by themselves.
    for (const g of guests) {
      const e = await Promise.race([g.cli.exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
      expect(e).not.toBe('still running');
    }
  });
});
