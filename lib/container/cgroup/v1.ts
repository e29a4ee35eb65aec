/**
 * The cgroup v1 driver for legacy and hybrid hosts: every mounted v1 hierarchy (controllers and named ones like
 * name=systemd) gets a directory `<hierarchy mount>/<parent>/<name>`, so the container is accounted and visible
 * consistently in each. The container's init joins by writing "0" to the `cgroup.procs` fds this driver opens.
 * @module
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { CgroupError, UnsupportedError } from '../../errors.js';
import type { Cgroup, CgroupDriver, CgroupStats, LinuxResources } from './driver.js';
import {
  closeQuietly,
  childDirs,
  describeErrno,
  errnoOf,
  isSigkill,
  mkdirIfMissing,
  readFlatKeyed,
  readNumber,
  readOptional,
  readProcsRecursive,
  removeCgroupDir,
  removeParentIfUnused,
  tryRmdir,
  signalUntilQuiet,
  validateCgroupName,
  waitUntil,
  writeValue,
} from './io.js';
import { hasCpuset, pidsMax, requiredControllers, validateResources } from './resources.js';
import { v1DeviceLines } from './devices.js';

/** Where v1 hierarchies are looked for by default (mounts below this path only). */
export const DEFAULT_V1_ROOT = '/sys/fs/cgroup';

/**
 * v1 reports "no limit" as the largest page-aligned counter (9223372036854771712 with 4 KiB pages), which does not
 * even survive conversion to a double. Anything this large cannot be a real limit.
 */
const UNLIMITED_THRESHOLD = 2 ** 62;

/** cpuacct.stat counts USER_HZ ticks, which the kernel ABI fixes at 100 per second on every architecture. */
const NANOS_PER_USER_HZ_TICK = 1e9 / 100;

/** Mount options of a v1 cgroup mount that are not controller names. */
const NON_CONTROLLER_OPTIONS = new Set([
  'rw', 'ro', 'noprefix', 'clone_children', 'xattr', 'cpuset_v2_mode', 'none', 'all', 'favordynmods',
]);

/** One mounted v1 hierarchy. */
export interface V1Hierarchy {
  /** Where it is mounted, e.g. `/sys/fs/cgroup/memory`. */
  readonly mountPoint: string;
  /** Controllers bound to it (`["cpu", "cpuacct"]` when co-mounted) or its name (`["name=systemd"]`). */
  readonly controllers: readonly string[];
}

/** Options of {@link CgroupV1Driver}. */
export interface CgroupV1Options {
  /** Only v1 hierarchies mounted at or below this path are used (default `/sys/fs/cgroup`). */
  mountPoint?: string;
  /** The shared parent cgroup name, like Docker's `docker` (default `berth`). */
  parent?: string;
  /** The hierarchies to use instead of discovering them from `/proc/self/mountinfo`. */
  hierarchies?: readonly V1Hierarchy[];
}

/** Undoes mountinfo's octal escapes (`\040` for a space in a mount point). */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/**
 * Lists the v1 cgroup hierarchies in a `/proc/<pid>/mountinfo` text that are mounted at or below `under`. A
 * hierarchy mounted twice (bind mounts share the superblock's device number) is listed once, preferring the mount
 * of its root.
 */
export function parseV1Mountinfo(mountinfo: string, under: string = DEFAULT_V1_ROOT): V1Hierarchy[] {
  const base = path.resolve(under);
  const bySuperblock = new Map<string, V1Hierarchy & { root: string }>();
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    const separator = fields.indexOf('-', 6);
    const [device, root, rawMountPoint] = [fields[2], fields[3], fields[4]];
    if (separator < 0 || fields[separator + 1] !== 'cgroup' || device === undefined || root === undefined) continue;
    if (rawMountPoint === undefined) continue;
    const mountPoint = unescapeMountField(rawMountPoint);
    if (mountPoint !== base && !mountPoint.startsWith(`${base}/`)) continue;
    const controllers = (fields[separator + 3] ?? '')
      .split(',')
      .filter((o) => o !== '' && !NON_CONTROLLER_OPTIONS.has(o) && (!o.includes('=') || o.startsWith('name=')));
    const known = bySuperblock.get(device);
    if (known === undefined || (known.root !== '/' && root === '/')) {
      bySuperblock.set(device, { mountPoint, controllers, root });
    }
  }
  return [...bySuperblock.values()].map(({ mountPoint, controllers }) => ({ mountPoint, controllers }));
}

/** One hierarchy's directories for a container. */
interface Placement {
  readonly hierarchy: V1Hierarchy;
  /** `<mount>/<parent>` */
  readonly parentDir: string;
  /** `<mount>/<parent>/<name>` */
  readonly dir: string;
}

/** The legacy/hybrid driver. Its cgroups carry `procsFds` and no `cloneIntoFd`. */
export class CgroupV1Driver implements CgroupDriver {
  /** Always 1. */
  readonly version = 1 as const;
  /** The shared parent cgroup name. */
  readonly parent: string;
  /** The hierarchies every container cgroup is created in. */
  readonly hierarchies: readonly V1Hierarchy[];

  /** Discovers the hierarchies (unless given); throws UnsupportedError when there are none. */
  constructor(options: CgroupV1Options = {}) {
    this.parent = options.parent ?? 'berth';
    validateCgroupName(this.parent, 'parent cgroup name');
    const under = options.mountPoint ?? DEFAULT_V1_ROOT;
    this.hierarchies = options.hierarchies ?? parseV1Mountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'), under);
    if (this.hierarchies.length === 0) {
      throw new UnsupportedError(`cgroup: no cgroup v1 hierarchy is mounted under ${under}`);
    }
  }

  private placements(name: string): Placement[] {
    return this.hierarchies.map((hierarchy) => {
      const parentDir = path.join(hierarchy.mountPoint, this.parent);
      return { hierarchy, parentDir, dir: path.join(parentDir, name) };
    });
  }

  /** {@inheritDoc CgroupDriver.create} */
  create(name: string, resources: LinuxResources): Cgroup {
    validateCgroupName(name);
    validateResources(resources);
    this.checkControllers(resources);
    const placements = this.placements(name);
    const created: string[] = [];
    const fds: number[] = [];
    try {
      for (const placement of placements) makePlacement(placement, resources, created);
      writeResources(placements, resources);
      for (const { dir } of placements) fds.push(openProcsFd(dir));
      return new CgroupV1(`${this.parent}/${name}`, placements, fds);
    } catch (err) {
      for (const fd of fds) closeQuietly(fd);
      // Newest first, so each container dir goes before the parent dir that this call may also have created.
      for (const dir of created.reverse()) rmdirQuietly(dir);
      throw err;
    }
  }

  /** {@inheritDoc CgroupDriver.open} */
  open(name: string): Cgroup | undefined {
    validateCgroupName(name);
    const placements = this.placements(name);
    if (!placements.some(({ dir }) => fs.existsSync(dir))) return undefined;
    return new CgroupV1(`${this.parent}/${name}`, placements, []);
  }

  /** {@inheritDoc CgroupDriver.list} */
  list(): string[] {
    const names = new Set<string>();
    for (const h of this.hierarchies) for (const n of childDirs(path.join(h.mountPoint, this.parent))) names.add(n);
    return [...names].sort();
  }

  /** Throws CgroupError naming the first requested resource whose controller has no mounted hierarchy. */
  private checkControllers(resources: LinuxResources): void {
    for (const [controller, field] of requiredControllers(resources)) {
      if (this.hierarchies.some((h) => h.controllers.includes(controller))) continue;
      const mounted = this.hierarchies.map((h) => h.controllers.join(',')).join(' ');
      throw new CgroupError(
        `cgroup: resources.${field} needs the ${controller} controller, which is not mounted on this host ` +
          `(cgroup v1 hierarchies: ${mounted})`,
      );
    }
  }
}

/**
 * Creates the parent and container directories in one hierarchy, recording what it created in `created`.
 * Retries when another process removed the shared parent (it saw it empty) between the two mkdirs.
 */
function makePlacement({ hierarchy, parentDir, dir }: Placement, resources: LinuxResources, created: string[]): void {
  const isCpuset = hierarchy.controllers.includes('cpuset');
  for (let attempt = 1; ; attempt++) {
    try {
      if (mkdirIfMissing(parentDir)) created.push(parentDir);
      if (isCpuset) inheritCpuset(parentDir, hierarchy.mountPoint, {});
      fs.mkdirSync(dir);
      created.push(dir);
      break;
    } catch (err) {
      // The parent vanished under us (another process removed it as empty): start over.
      const cause = err instanceof CgroupError ? err.cause : err;
      if (errnoOf(cause) === 'ENOENT' && attempt < 20) continue;
      if (errnoOf(err) === 'EEXIST') {
        throw new CgroupError(`cgroup: ${dir} already exists (a leftover? open() and destroy() it first)`);
      }
      throw new CgroupError(`cgroup: creating ${dir} failed: ${describeErrno(err)}`, { cause: err });
    }
  }
  if (isCpuset) inheritCpuset(dir, parentDir, { cpus: resources.cpu?.cpus, mems: resources.cpu?.mems });
}

/**
 * A new v1 cpuset cgroup starts with empty cpuset.cpus and cpuset.mems, and the kernel refuses to move tasks into
 * it (ENOSPC) until both are set. Fills each empty one with the requested list, else with the parent's.
 */
function inheritCpuset(
  dir: string,
  from: string,
  requested: { cpus?: string | undefined; mems?: string | undefined },
): void {
  for (const key of ['cpus', 'mems'] as const) {
    const file = path.join(dir, `cpuset.${key}`);
    const wanted = requested[key];
    if (hasCpuset(wanted)) {
      writeValue(file, wanted);
    } else if ((readOptional(file) ?? '').trim() === '') {
      writeValue(file, (readOptional(path.join(from, `cpuset.${key}`)) ?? '').trim());
    }
  }
}

/**
 * Writes device rules, memory, cpu and pids limits into the hierarchy carrying each controller (cpuset is done at
 * mkdir). Everything is in place before the init joins.
 */
function writeResources(placements: readonly Placement[], { memory, cpu, pids, devices }: LinuxResources): void {
  const dirOf = (controller: string): string | undefined =>
    placements.find((p) => p.hierarchy.controllers.includes(controller))?.dir;
  const devicesDir = dirOf('devices');
  if (devices !== undefined) {
    // Device rules are a security boundary: without the controller they cannot be enforced, so refuse to run.
    if (devicesDir === undefined) throw new CgroupError('cgroup: the devices controller is not mounted, so device rules cannot be enforced');
    for (const { file, line } of v1DeviceLines(devices)) writeValue(path.join(devicesDir, file), line);
  }
  const memoryDir = dirOf('memory');
  if (memory !== undefined && memoryDir !== undefined) {
    const file = (name: string): string => path.join(memoryDir, name);
    // memsw must stay ≥ the limit at every step; in a fresh cgroup both are unlimited, so limit first.
    if (memory.limit !== undefined) writeValue(file('memory.limit_in_bytes'), String(memory.limit));
    // Without swap accounting (swapaccount=0) memsw files do not exist; Docker ignores swap there too.
    if (memory.swap !== undefined && fs.existsSync(file('memory.memsw.limit_in_bytes'))) {
      writeValue(file('memory.memsw.limit_in_bytes'), String(memory.swap));
    }
    if (memory.reservation !== undefined) writeValue(file('memory.soft_limit_in_bytes'), String(memory.reservation));
  }
  const cpuDir = dirOf('cpu');
  if (cpu !== undefined && cpuDir !== undefined) {
    const file = (name: string): string => path.join(cpuDir, name);
    if (cpu.shares !== undefined) writeValue(file('cpu.shares'), String(cpu.shares));
    // The kernel checks the quota against the period, so the period goes first.
    if (cpu.period !== undefined) writeValue(file('cpu.cfs_period_us'), String(cpu.period));
    if (cpu.quota !== undefined) writeValue(file('cpu.cfs_quota_us'), String(cpu.quota));
  }
  const pidsDir = dirOf('pids');
  if (pids?.limit !== undefined && pidsDir !== undefined) {
    writeValue(path.join(pidsDir, 'pids.max'), pidsMax(pids.limit));
  }
}

/** Opens `dir/cgroup.procs` for the container init to write "0" into (libuv adds O_CLOEXEC). */
function openProcsFd(dir: string): number {
  const file = path.join(dir, 'cgroup.procs');
  try {
    return fs.openSync(file, fs.constants.O_WRONLY);
  } catch (err) {
    throw new CgroupError(`cgroup: opening ${file} failed: ${describeErrno(err)}`, { cause: err });
  }
}

/** Best-effort rmdir for rolling back a failed create; the original error is the one worth reporting. */
function rmdirQuietly(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch {
    // Not empty (another container shares the parent) or already gone: both fine.
  }
}

/** A v1 limit file: unlimited (the huge sentinel) or missing → null. */
function readLimit(file: string): number | null {
  const value = readNumber(file);
  return value === undefined || value >= UNLIMITED_THRESHOLD ? null : value;
}

/** One container cgroup: a directory in each v1 hierarchy. */
class CgroupV1 implements Cgroup {
  readonly cloneIntoFd: number | undefined = undefined;
  #procsFds: number[];

  constructor(
    readonly path: string,
    private readonly placements: readonly Placement[],
    procsFds: number[],
  ) {
    this.#procsFds = procsFds;
  }

  get procsFds(): readonly number[] {
    return this.#procsFds;
  }

  releaseSpawnFds(): void {
    for (const fd of this.#procsFds) closeQuietly(fd);
    this.#procsFds = [];
  }

  /** The container's file `name` in the hierarchy carrying `controller`, or undefined if that is not mounted. */
  private file(controller: string, name: string): string | undefined {
    const placement = this.placements.find((p) => p.hierarchy.controllers.includes(controller));
    return placement === undefined ? undefined : path.join(placement.dir, name);
  }

  private number(controller: string, name: string): number | undefined {
    const file = this.file(controller, name);
    return file === undefined ? undefined : readNumber(file);
  }

  stats(): CgroupStats {
    const memoryLimit = this.file('memory', 'memory.limit_in_bytes');
    const pidsLimit = this.file('pids', 'pids.max');
    const cpuacctStat = this.file('cpuacct', 'cpuacct.stat');
    const ticks = cpuacctStat === undefined ? new Map<string, number>() : readFlatKeyed(cpuacctStat);
    const ticksToNanos = (key: string): number | null => {
      const value = ticks.get(key);
      return value === undefined ? null : value * NANOS_PER_USER_HZ_TICK;
    };
    return {
      memory: {
        usage: this.number('memory', 'memory.usage_in_bytes') ?? 0,
        limit: memoryLimit === undefined ? null : readLimit(memoryLimit),
        maxUsage: this.number('memory', 'memory.max_usage_in_bytes') ?? null,
      },
      cpu: {
        usageNanos: this.number('cpuacct', 'cpuacct.usage') ?? 0,
        userNanos: ticksToNanos('user'),
        systemNanos: ticksToNanos('system'),
      },
      pids: {
        current: this.number('pids', 'pids.current') ?? 0,
        limit: pidsLimit === undefined ? null : readLimit(pidsLimit),
      },
    };
  }

  oomKilled(): boolean {
    // The oom_kill line exists since Linux 4.13; older kernels only say under_oom, which is not a kill.
    const file = this.file('memory', 'memory.oom_control');
    return file !== undefined && (readFlatKeyed(file).get('oom_kill') ?? 0) > 0;
  }

  /** Union over all hierarchies: a process may have been moved into some of them only. */
  private pidSet(): Set<number> {
    const pids = new Set<number>();
    for (const { dir } of this.placements) readProcsRecursive(dir, pids);
    return pids;
  }

  pids(): number[] {
    return [...this.pidSet()].sort((a, b) => a - b);
  }

  killAll(signal: NodeJS.Signals | number): void {
    signalUntilQuiet(() => this.pidSet(), signal);
    // Frozen v1 tasks keep a pending SIGKILL until thawed; thaw so "kill" means dead now, even when paused.
    if (isSigkill(signal)) this.writeFreezerState('THAWED', { ifPresent: true });
  }

  private writeFreezerState(state: 'FROZEN' | 'THAWED', { ifPresent }: { ifPresent: boolean }): void {
    const file = this.file('freezer', 'freezer.state');
    if (file === undefined || !fs.existsSync(file)) {
      if (ifPresent) return;
      throw new UnsupportedError(`cgroup: the v1 freezer is not available for ${this.path} on this host`);
    }
    writeValue(file, state);
  }

  isFrozen(): boolean {
    const file = this.file('freezer', 'freezer.state');
    const state = file === undefined ? undefined : readOptional(file)?.trim();
    return state === 'FROZEN' || state === 'FREEZING';
  }

  async setFrozen(frozen: boolean): Promise<void> {
    const want = frozen ? 'FROZEN' : 'THAWED';
    this.writeFreezerState(want, { ifPresent: false });
    const file = this.file('freezer', 'freezer.state') ?? '';
    try {
      // FREEZING can stall when a task is busy in the kernel; writing FROZEN again makes the kernel retry.
      await waitUntil(() => readOptional(file)?.trim() === want, `${file} to read ${want}`, {
        nudge: () => writeValue(file, want),
      });
    } catch (err) {
      // Never leave a half-frozen container behind a failed freeze.
      if (frozen) this.writeFreezerState('THAWED', { ifPresent: true });
      throw err;
    }
  }

  async destroy(): Promise<void> {
    this.releaseSpawnFds();
    // The usual case is an exited container with no sub-cgroups: plain rmdirs, without reading every
    // hierarchy's task list first. Whatever is still busy goes through the kill-and-retry path.
    const busy = this.placements.filter(({ dir }) => !tryRmdir(dir));
    if (busy.length > 0) this.killAll('SIGKILL');
    let firstError: unknown;
    // Every hierarchy gets its attempt even if one fails, so a single busy dir does not leak the others.
    for (const { dir } of busy) {
      try {
        await removeCgroupDir(dir, () => this.killAll('SIGKILL'));
      } catch (err) {
        firstError ??= err;
      }
    }
    for (const { parentDir } of this.placements) {
      try {
        removeParentIfUnused(parentDir);
      } catch (err) {
        firstError ??= err;
      }
    }
    if (firstError !== undefined) throw firstError;
  }
}
