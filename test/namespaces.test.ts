// Namespace selection: sharing the host's, and joining another container's by path (what exec and
// container:<id> networking build on).
import { readlinkSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { Container } from '../lib/index.js';
import { tempRoot } from './helpers/env.js';

const { root, rootfs: BUSYBOX, cleanup } = tempRoot('ns');
afterAll(cleanup);
const base = { root, rootfs: BUSYBOX };

async function running(extra: Record<string, unknown> = {}) {
  const c = await Container.create({ ...base, cmd: ['sleep', '1000'], ...extra });
  await c.start();
  return c;
}

describe('namespaces', () => {
  it('joins another container\'s uts, ipc and network namespaces by path', async () => {
    await using a = await running({ hostname: 'alpha' });
    const r = await Container.run({
      ...base,
      cmd: ['sh', '-c', 'hostname; readlink /proc/self/ns/net; readlink /proc/self/ns/ipc'],
      namespaces: {
        uts: { path: `/proc/${a.pid}/ns/uts` },
        network: { path: `/proc/${a.pid}/ns/net` },
        ipc: { path: `/proc/${a.pid}/ns/ipc` },
      },
    });
    expect(r.stdout.trim().split('\n')).toEqual([
      'alpha',
      readlinkSync(`/proc/${a.pid}/ns/net`),
      readlinkSync(`/proc/${a.pid}/ns/ipc`),
    ]);
  });

  it('starts a process inside another container\'s pid namespace', async () => {
    await using a = await running();
    const r = await Container.run({
      ...base,
      cmd: ['sh', '-c', 'echo $$; cat /proc/1/cmdline | tr "\\0" " "'],
      namespaces: { pid: { path: `/proc/${a.pid}/ns/pid` } },
    });
    const [pid, init] = r.stdout.trim().split('\n');
    expect(Number(pid)).toBeGreaterThan(1); // not the init there: a's sleep is pid 1
    expect(init!.trim()).toBe('sleep 1000');
    // This process's own pid namespace for later children is unchanged.
    expect(readlinkSync('/proc/self/ns/pid_for_children')).toBe(readlinkSync('/proc/self/ns/pid'));
  });

  it('shares the host\'s namespaces when asked', async () => {
    const r = await Container.run({
      ...base,
      cmd: ['sh', '-c', 'readlink /proc/self/ns/net; readlink /proc/self/ns/uts'],
      namespaces: { network: 'host', uts: 'host', pid: 'host' },
    });
    expect(r.stdout.trim().split('\n')).toEqual([readlinkSync('/proc/self/ns/net'), readlinkSync('/proc/self/ns/uts')]);
  });
});

describe('mount propagation', () => {
  it('never leaks container mounts into a caller whose / is shared, whatever the spec asks', async () => {
    // A systemd host's / is shared. Reproduce that in a mount namespace of our own (unshare --propagation shared)
    // and run containers from a Node process inside it: its mount table must not change.
    const { execFileSync } = await import('node:child_process');
    const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'berth-prop-'));
    const dist = new URL('../dist/lib/index.js', import.meta.url).pathname;
    writeFileSync(join(dir, 'probe.mjs'), `
      import { readFileSync } from 'node:fs';
      import { Container } from ${JSON.stringify(dist)};
      const count = () => readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\\n').length;
      const before = count();
      const root = ${JSON.stringify(join(dir, 'state'))};
      await Container.run({ root, rootfs: ${JSON.stringify(BUSYBOX)}, cmd: ['true'] });
      for (const propagation of ['rshared', 'shared', 'rslave', 'private']) {
        const spec = {
          ociVersion: '1.0.2',
          process: { user: { uid: 0, gid: 0 }, args: ['true'], cwd: '/' },
          root: { path: ${JSON.stringify(BUSYBOX)} },
          mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
          linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }], rootfsPropagation: propagation },
        };
        const c = await Container.createFromSpec(spec, { root, stdout: 'ignore', stderr: 'ignore' });
        await c.start();
        const exit = await c.wait();
        await c.remove();
        if (exit.exitCode !== 0) throw new Error(propagation + ' exited ' + exit.exitCode);
      }
      console.log(before + ' ' + count());
    `);
    try {
      const out = execFileSync('unshare', ['-m', '--propagation', 'shared', process.execPath, join(dir, 'probe.mjs')], { encoding: 'utf8' });
      const [before, after] = out.trim().split(' ');
      expect(after).toBe(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
