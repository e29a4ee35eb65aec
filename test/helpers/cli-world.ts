/**
 * What a test of the `berth` command needs: a state root and a busybox rootfs of its own (tempRoot), a HOME of
 * its own (so the user's ~/.config/berth/config.json cannot leak in), and a real local registry serving busybox
 * as Docker Hub's library/busybox through a mirror (the mechanism a user behind a mirror uses). `env` is the
 * environment to run the CLI with.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { tempRoot } from './env.js';
import { pushBusybox, startRegistry, type Registry } from './registry.js';

export interface CliWorld {
  root: string;
  rootfs: string;
  home: string;
  /** Set once the registry runs (in beforeAll). */
  env: Record<string, string>;
  registry: Registry;
}

/** Sets a CLI world up for the current test file (beforeAll) and tears it down after it (afterAll). */
export function cliWorld(label: string): CliWorld {
  const { root, rootfs, cleanup } = tempRoot(label);
  const home = mkdtempSync(join(tmpdir(), `berth-test-${label}-home-`));
  const world = { root, rootfs, home, env: {} as Record<string, string>, registry: undefined as unknown as Registry };
  beforeAll(async () => {
    world.registry = await startRegistry();
    await pushBusybox(world.registry, 'library/busybox');
    world.env = { BERTH_ROOT: root, BERTH_REGISTRY_MIRRORS: world.registry.url, HOME: home };
  });
  afterAll(async () => {
    await cleanup();
    await world.registry?.stop();
    rmSync(home, { recursive: true, force: true });
  });
  return world;
}
