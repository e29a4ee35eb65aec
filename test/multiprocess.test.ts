// Several processes share one state root: concurrent creates, unique names, detached containers outliving their
// owner and managed from another process.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Container } from '../lib/index.js';
import { tempRoot } from './helpers/env.js';
import { nodeScript } from './helpers/node-script.js';

const { root, rootfs: BUSYBOX, cleanup } = tempRoot('multi');
const scripts = mkdtempSync(join(tmpdir(), 'berth-multi-scripts-'));
afterAll(async () => {
  await cleanup();
  rmSync(scripts, { recursive: true, force: true });
});

/** Runs a Node script in a process of its own (see helpers/node-script.ts). */
const node = (body: string) => nodeScript(scripts, root, BUSYBOX, body);

describe('several processes, one state root', () => {
  it('creates containers concurrently from three processes with unique names', async () => {
    const body = (n: number) => `
      let conflicts = 0;
      for (let i = 0; i < 15; i++) {
        for (const name of ['shared-' + (i % 5), 'p${n}-' + i]) {
          try {
            const r = await Container.run({ root, rootfs, cmd: ['true'], name });
            if (r.exitCode !== 0) throw new Error('exit ' + r.exitCode);
          } catch (e) {
            if (e.code !== 'ERR_NAME_CONFLICT') throw e;
            conflicts++;
          }
        }
      }
      console.log(JSON.stringify({ conflicts }));`;
    const results = await Promise.all([node(body(1)), node(body(2)), node(body(3))]);
    for (const r of results) {
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    expect(await Container.list({ root, all: true })).toEqual([]);
  });

  it('a detached container outlives its owner and another process stops and removes it', async () => {
    const r = await node(`
      const c = await Container.create({ root, rootfs, cmd: ['sleep', '1000'], name: 'survivor', detached: true });
      await c.start();
      console.log(c.pid);`);
    expect(r.stderr).toBe('');
    const pid = Number(r.stdout.trim());
    expect(existsSync(`/proc/${pid}`)).toBe(true);
    // A new owner opening the root must not clean up a detached container that still runs.
    const { cleanupDeadOwners, openEngine } = await import('../lib/container/engine.js');
    await cleanupDeadOwners(await openEngine(root));
    const c = await Container.get('survivor', { root });
    expect((await c.inspect()).status).toBe('running');
    expect((await c.inspect()).detached).toBe(true);
    const exit = await c.stop({ timeout: 0.2 });
    expect(exit.exitCode).toBe(-1); // not our child: the exit status is the kernel's to give its parent only
    // Dead: gone, or a zombie until the host's init (its parent now) reaps it.
    const stat = (() => {
      try {
        return readFileSync(`/proc/${pid}/stat`, 'utf8');
      } catch {
        return '';
      }
    })();
    expect(stat === '' || /\) Z /.test(stat)).toBe(true);
    expect((await c.inspect()).status).toBe('exited');
    await c.remove();
    await expect(Container.get('survivor', { root })).rejects.toThrow(/no such container/);
  });
});
