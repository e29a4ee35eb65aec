/**
 * Per-state-root context shared by every container of this process: the state directory, the cgroup driver, and
 * the one-time cleanup of what dead owners left behind (DESIGN decision 7).
 * @module
 */
import { closeSync } from 'node:fs';
import { resolve } from 'node:path';
import { native } from '../native.js';
import { CgroupV1Driver, detectCgroupDriver, type CgroupDriver, type V1Hierarchy } from './cgroup/index.js';
import { isAlive, StateRoot, type ContainerState } from './state.js';
import { defaultRoot } from './state.js';
import { releaseContainerNetwork } from '../network/container-network.js';
import { containerEvent, recordDeath } from './container-events.js';

/** Everything a container operation needs about its state root. */
export interface Engine {
  root: StateRoot;
  cgroups: CgroupDriver;
  /** v1: the hierarchies mounted inside each container's /sys/fs/cgroup. */
  hierarchies: readonly V1Hierarchy[];
}

const engines = new Map<string, Promise<Engine>>();

/** The cgroup parent for berth's containers (like Docker's `/docker`). */
export const CGROUP_PARENT = 'berth';

/**
 * `BERTH_CGROUP_VERSION` (1 or 2) and `BERTH_CGROUP_MOUNT` force a cgroup layout instead of detecting it, e.g. the
 * v2 driver on a hybrid host's /sys/fs/cgroup/unified.
 */
function cgroupOverride(): { version?: 1 | 2; mountPoint?: string } {
  const out: { version?: 1 | 2; mountPoint?: string } = {};
  const v = process.env.BERTH_CGROUP_VERSION;
  if (v === '1' || v === '2') out.version = Number(v) as 1 | 2;
  if (process.env.BERTH_CGROUP_MOUNT) out.mountPoint = process.env.BERTH_CGROUP_MOUNT;
  return out;
}

/**
 * Opens the state root at `path` (default: `BERTH_ROOT` or /var/lib/berth). The first open in this process also
 * cleans up after owners that died.
 */
export function openEngine(path?: string): Promise<Engine> {
  const rootPath = resolve(path ?? defaultRoot());
  let engine = engines.get(rootPath);
  if (!engine) {
    engine = (async () => {
      const cgroups = detectCgroupDriver({ parent: CGROUP_PARENT, ...cgroupOverride() });
      const e: Engine = {
        root: new StateRoot(rootPath),
        cgroups,
        hierarchies: cgroups instanceof CgroupV1Driver ? cgroups.hierarchies : [],
      };
      await cleanupDeadOwners(e);
      return e;
    })();
    engines.set(rootPath, engine);
    engine.catch(() => engines.delete(rootPath));
  }
  return engine;
}

/**
 * Removes the containers whose owner process died (unless they were detached and still run): kills what is left,
 * removes the cgroup and the record. Safe to run from several processes at once.
 */
export async function cleanupDeadOwners(engine: Engine): Promise<number> {
  let removed = 0;
  for (const id of engine.root.listIds()) {
    const state = engine.root.readState(id);
    if (!state) {
      // Created but never recorded: its creator died mid-create (or is still creating: then leave it).
      const owner = engine.root.readOwner(id);
      if (owner && !isAlive(owner)) {
        const cgroup = engine.cgroups.open(id);
        if (cgroup) await cgroup.destroy();
        for (const name of engine.root.namesOf(id)) engine.root.releaseName(name, id);
        if (engine.root.removeContainerDir(id)) removed++;
      }
      continue;
    }
    if (isAlive(state.owner)) continue;
    if (state.detached) {
      // A detached container outlives its owner; only mark it exited once its process is gone.
      if (state.status !== 'exited' && state.status !== 'created' && !isAlive(state.process)) {
        engine.root.writeState({ ...state, status: 'exited', finishedAt: state.finishedAt ?? new Date().toISOString() });
        recordDeath(engine.root.path, state, {});
        await releaseContainerNetwork(engine.root.path, state.id, state.network).catch(() => undefined);
      }
      if (state.status !== 'created' || isAlive(state.process)) continue;
    }
    if (await removeLeftovers(engine, state)) removed++;
  }
  return removed;
}

/** Kills the container's processes (if any survived), removes its cgroup, record and name. */
export async function removeLeftovers(engine: Engine, state: ContainerState): Promise<boolean> {
  if (isAlive(state.process)) {
    try {
      const fd = native.pidfdOpen(state.process!.pid);
      try {
        // Checked again now that the pidfd pins the process: the pid may have been reused in between.
        if (isAlive(state.process)) native.pidfdSendSignal(fd, 9);
      } finally {
        closeSync(fd);
      }
    } catch {
      // exited meanwhile
    }
  }
  await releaseContainerNetwork(engine.root.path, state.id, state.network).catch(() => undefined);
  const cgroup = engine.cgroups.open(state.cgroup);
  if (cgroup) await cgroup.destroy();
  // It died with its owner: nobody was left to record that.
  if (state.status !== 'created') recordDeath(engine.root.path, state, { exitCode: state.exitCode, oomKilled: state.oomKilled });
  const won = engine.root.removeContainerDir(state.id);
  if (won) containerEvent(engine.root.path, state, 'destroy');
  engine.root.releaseName(state.name, state.id);
  return won;
}
