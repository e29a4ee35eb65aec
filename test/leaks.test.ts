// Nothing may leak: 200 create/start/wait/remove cycles leave mounts, cgroups, fds, processes and state as they were.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Container } from '../lib/index.js';
import { berthCgroups, childPids, fdCount, mountCount, tempRoot } from './helpers/env.js';

const { root, rootfs: BUSYBOX, cleanup } = tempRoot('leaks');
afterAll(cleanup);

describe('leaks', () => {
  it('200 create/start/remove cycles leave nothing behind', async () => {
    // Warm up once so lazily opened handles (the addon, the state root) are not counted as leaks.
    await Container.run({ root, rootfs: BUSYBOX, cmd: ['true'] });
    const mounts = mountCount();
    const fds = fdCount();
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) {
      const c = await Container.create({ root, rootfs: BUSYBOX, cmd: ['sh', '-c', 'echo $0', String(i)], resources: { memory: '32m', pidsLimit: 16 } });
      ids.push(c.id);
      let out = '';
      c.stdout!.on('data', (d) => (out += d));
      const ended = new Promise((r) => c.stdout!.once('end', r));
      await c.start();
      expect((await c.wait()).exitCode).toBe(0);
      await ended;
      expect(out).toBe(`${i}\n`);
      await c.remove();
    }
    // A few failing creates too: their partial state must be undone.
    for (let i = 0; i < 10; i++) {
      await expect(Container.run({ root, rootfs: BUSYBOX, cmd: ['nosuch'] })).rejects.toThrow(/not found/);
    }
    expect(mountCount()).toBe(mounts);
    expect(fdCount()).toBe(fds);
    expect(childPids()).toEqual([]);
    const cgroups = berthCgroups();
    expect(cgroups.filter((p) => ids.some((id) => p.includes(id)))).toEqual([]);
    expect(readdirSync(join(root, 'containers'))).toEqual([]);
    expect(readdirSync(join(root, 'names'))).toEqual([]);
  });
});
