import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { main } from './main.ts';

function sink(): Writable & { text: string } {
  const w = new Writable({
    write(chunk, _enc, cb) {
      w.text += chunk.toString();
      cb();
    },
  }) as Writable & { text: string };
  w.text = '';
  return w;
}

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = sink();
  const err = sink();
  const code = await main(argv, out, err);
  return { code, out: out.text, err: err.text };
}

describe('guestnet CLI', () => {
  it('prints usage with the commands and the backends for --help', async () => {
    const r = await run('--help');
    expect(r.code).toBe(0);
    expect(r.out).toContain('parse <config>');
    expect(r.out).toMatch(/slirp\s+user-mode NAT/);
    expect(r.out).toMatch(/netmap\s+shared-memory ring port/);
    expect(r.out).not.toContain('[not installed');
  });

  it('prints the canonical form of a QEMU-dialect config', async () => {
    const r = await run('parse', 'user,id=n0,hostfwd=tcp::2222-:22,restrict=on');
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe('backend=slirp,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22');
  });

  it('reports an unknown option with a caret under it, a suggestion and exit code 2', async () => {
    const r = await run('parse', 'backend=slirp,hostfw=tcp::2222-:22');
    expect(r.code).toBe(2);
    expect(r.err).toContain("GUESTNET_BAD_CONFIG: unknown option 'hostfw' — did you mean 'hostfwd'?");
    const lines = r.err.split('\n');
    const input = lines.findIndex((l) => l.includes('backend=slirp,hostfw='));
    expect(lines[input + 1]!.indexOf('^')).toBe(lines[input]!.indexOf('hostfw'));
    expect(lines[input + 1]!.trim()).toBe('^^^^^^');
  });

  it('names the package to install for a backend that is not installed', async () => {
    // Every first-party backend is a dependency of the CLI; a third-party one named by its
    // package shows the same path.
    const r = await run('parse', 'backend=@acme/guestnet-vde');
    expect(r.code).toBe(1);
    expect(r.err).toContain('GUESTNET_BACKEND_NOT_INSTALLED');
    expect(r.err).toContain('@acme/guestnet-vde');
  });

  it('suggests the right backend for a misspelt type', async () => {
    const r = await run('parse', 'backend=slrip');
    expect(r.code).toBe(2);
    expect(r.err).toContain("did you mean 'slirp'?");
  });

  it("prints a backend's options with defaults from its schema", async () => {
    const r = await run('help', 'slirp');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/net\s+ipv4-cidr\s+10\.0\.2\.0\/24/);
    expect(r.out).toMatch(/mtu\s+68\.\.65521\s+1500/);
    expect(r.out).toContain('hostfwd (repeatable)');
  });

  it('rejects an unknown command with exit code 2', async () => {
    const r = await run('frobnicate');
    expect(r.code).toBe(2);
    expect(r.err).toContain("unknown command 'frobnicate'");
  });

  it('runs the demo end to end', async () => {
    const r = await run('demo');
    expect(r.code).toBe(0);
    expect(r.out).toContain('send() → delivered; the other end received 42 bytes');
    expect(r.out).toContain("did you mean 'name'?");
  });
});
