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
