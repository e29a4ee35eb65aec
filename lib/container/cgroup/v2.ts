/**
 * The cgroup v2 (unified hierarchy) driver: one directory per container at `<mount>/<parent>/<name>`, controllers
 * delegated down through each level's `cgroup.subtree_control`, and an O_DIRECTORY fd for clone3
 * `CLONE_INTO_CGROUP` so the container's init starts inside its cgroup with no window outside it.
 * @module
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { CgroupError, UnsupportedError } from '../../errors.js';
import type { Cgroup, CgroupDriver, CgroupStats, LinuxResources } from './driver.js';
import { native } from '../../native.js';
import { deviceFilterProgram, type DeviceRule } from './devices.js';
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
  readWordList,
  removeCgroupDir,
  removeParentIfUnused,
  tryRmdir,
  signalUntilQuiet,
  validateCgroupName,
  waitUntil,
  writeValue,
} from './io.js';
import {
  hasCpuset,
  pidsMax,
  requiredControllers,
  sharesToWeight,
  v2CpuMax,
  v2Size,
  v2SwapMax,
  validateResources,
} from './resources.js';

/** Where the unified hierarchy is mounted on a pure v2 host. */
export const DEFAULT_V2_MOUNT = '/sys/fs/cgroup';

/** Controllers berth delegates to container cgroups when the host offers them (io: for stats and future limits). */
const WANTED_CONTROLLERS = ['cpu', 'cpuset', 'memory', 'pids', 'io'] as const;

/** Options of {@link CgroupV2Driver}. */
export interface CgroupV2Options {
  /** The cgroup2 mount point (default `/sys/fs/cgroup`; `/sys/fs/cgroup/unified` on hybrid hosts). */
  mountPoint?: string;
  /** The shared parent cgroup of all containers, like Docker's `docker` (default `berth`). */
  parent?: string;
}

/** What enabling controllers at one level achieved. */
interface Delegation {
  /** Controllers enabled in the level's subtree_control, i.e. available to its children. */
  enabled: Set<string>;
  /** Why a wanted controller could not be enabled, for the "controller missing" error. */
  failures: string[];
}

/** The unified-hierarchy driver. Its cgroups carry a `cloneIntoFd` and no `procsFds`. */
export class CgroupV2Driver implements CgroupDriver {
  /** Always 2. */
  readonly version = 2 as const;
  /** The cgroup2 mount point this driver works under. */
  readonly mountPoint: string;
  /** The shared parent cgroup name. */
  readonly parent: string;

  /** Validates the parent name; touches no files until `create`. */
  constructor(options: CgroupV2Options = {}) {
    this.mountPoint = options.mountPoint ?? DEFAULT_V2_MOUNT;
    this.parent = options.parent ?? 'berth';
    validateCgroupName(this.parent, 'parent cgroup name');
  }

  private get parentDir(): string {
    return path.join(this.mountPoint, this.parent);
  }

  /** {@inheritDoc CgroupDriver.create} */
  create(name: string, resources: LinuxResources): Cgroup {
    validateCgroupName(name);
    validateResources(resources);
    const dir = path.join(this.parentDir, name);
    let parentCreated = false;
    let dirCreated = false;
    let fd: number | undefined;
    try {
      // Another process may remove the shared parent between our mkdir of it and of the child (it saw it empty):
      // then the child's mkdir fails with ENOENT and preparing the parent again fixes it.
      for (let attempt = 1; ; attempt++) {
        try {
          const prepared = this.prepareParent();
          parentCreated ||= prepared.created;
          this.checkControllers(resources, prepared.delegation);
          fs.mkdirSync(dir);
          dirCreated = true;
          break;
        } catch (err) {
          const cause = err instanceof CgroupError ? err.cause : err;
          if (errnoOf(cause) === 'ENOENT' && attempt < 20) continue;
          if (err instanceof CgroupError) throw err;
          if (errnoOf(err) === 'EEXIST') {
            throw new CgroupError(`cgroup: ${dir} already exists (a leftover? open() and destroy() it first)`);
          }
          throw new CgroupError(`cgroup: creating ${dir} failed: ${describeErrno(err)}`, { cause: err });
        }
      }
      writeResources(dir, resources);
      fd = openDirFd(dir);
      if (resources.devices !== undefined) attachDevices(fd, dir, resources.devices);
      return new CgroupV2(`${this.parent}/${name}`, dir, this.parentDir, fd);
    } catch (err) {
      if (fd !== undefined) closeQuietly(fd);
      // Undo only what this call made; never a pre-existing directory someone else owns.
      if (dirCreated) rmdirQuietly(dir);
      if (parentCreated) rmdirQuietly(this.parentDir);
      throw err;
    }
  }

  /** {@inheritDoc CgroupDriver.open} */
  open(name: string): Cgroup | undefined {
    validateCgroupName(name);
    const dir = path.join(this.parentDir, name);
    if (!fs.existsSync(dir)) return undefined;
    return new CgroupV2(`${this.parent}/${name}`, dir, this.parentDir, undefined);
  }

  /** {@inheritDoc CgroupDriver.list} */
  list(): string[] {
    return childDirs(this.parentDir).sort();
  }

  /**
   * Makes sure `<mount>/<parent>` exists and delegates the wanted controllers the mount root offers to it and then
   * to its children. Returns what the container's cgroup will have available.
   */
  private prepareParent(): { created: boolean; delegation: Delegation } {
    if (!fs.existsSync(path.join(this.mountPoint, 'cgroup.controllers'))) {
      throw new CgroupError(`cgroup: ${this.mountPoint} is not a cgroup v2 mount (it has no cgroup.controllers)`);
    }
    const offered = readWordList(path.join(this.mountPoint, 'cgroup.controllers'));
    const atRoot = enableControllers(this.mountPoint, offered);
    const created = mkdirIfMissing(this.parentDir);
    // The parent's cgroup.controllers is exactly what the root enabled; reusing that set (rather than re-reading)
    // also keeps this working on a plain directory used as a fake hierarchy in tests.
    const atParent = enableControllers(this.parentDir, [...atRoot.enabled]);
    return { created, delegation: { enabled: atParent.enabled, failures: [...atRoot.failures, ...atParent.failures] } };
  }

  /** Throws CgroupError naming the first requested resource whose controller the container cgroup will lack. */
  private checkControllers(resources: LinuxResources, delegation: Delegation): void {
    const offered = readWordList(path.join(this.mountPoint, 'cgroup.controllers'));
    for (const [controller, field] of requiredControllers(resources)) {
      if (delegation.enabled.has(controller)) continue;
      const why = delegation.failures.length > 0 ? `; enabling failed: ${delegation.failures.join('; ')}` : '';
      throw new CgroupError(
        `cgroup: resources.${field} needs the ${controller} controller, which is not available on this host ` +
          `(cgroup v2 at ${this.mountPoint} offers: ${offered.join(' ') || 'none'})${why}`,
      );
    }
  }
}

/**
 * Enables each wanted controller from `offered` in `dir/cgroup.subtree_control`, one write per controller so one
 * refusal (e.g. EBUSY because `dir` itself holds processes) does not hide the others.
 */
function enableControllers(dir: string, offered: readonly string[]): Delegation {
  const file = path.join(dir, 'cgroup.subtree_control');
  const enabled = new Set(readWordList(file));
  const failures: string[] = [];
  for (const controller of WANTED_CONTROLLERS) {
    if (!offered.includes(controller) || enabled.has(controller)) continue;
    try {
      writeValue(file, `+${controller}`);
      enabled.add(controller);
    } catch (err) {
      failures.push(err instanceof Error ? err.message : String(err));
    }
  }
  return { enabled, failures };
}

/** Writes the requested limits; anything not requested keeps the kernel default. */
function writeResources(dir: string, { memory, cpu, pids }: LinuxResources): void {
  const file = (name: string): string => path.join(dir, name);
  if (hasCpuset(cpu?.cpus)) writeValue(file('cpuset.cpus'), cpu.cpus);
  if (hasCpuset(cpu?.mems)) writeValue(file('cpuset.mems'), cpu.mems);
  if (memory?.limit !== undefined) writeValue(file('memory.max'), v2Size(memory.limit));
  if (memory?.swap !== undefined) writeValue(file('memory.swap.max'), v2SwapMax(memory.swap, memory.limit));
  if (memory?.reservation !== undefined) writeValue(file('memory.low'), v2Size(memory.reservation));
  if (cpu?.shares !== undefined) writeValue(file('cpu.weight'), String(sharesToWeight(cpu.shares)));
  if (cpu?.quota !== undefined || cpu?.period !== undefined) {
    writeValue(file('cpu.max'), v2CpuMax(cpu.quota, cpu.period));
  }
  if (pids?.limit !== undefined) writeValue(file('pids.max'), pidsMax(pids.limit));
}

/** Opens the cgroup directory for CLONE_INTO_CGROUP. libuv adds O_CLOEXEC to every open, so no leak into execs. */
/** v2 has no devices files: the rules become an eBPF program attached to the cgroup before the init joins it. */
function attachDevices(fd: number, dir: string, rules: readonly DeviceRule[]): void {
  try {
    native.attachDeviceFilter(fd, deviceFilterProgram(rules));
  } catch (err) {
    const log = (err as { verifierLog?: string }).verifierLog;
    throw new CgroupError(
      `cgroup: attaching the device filter to ${dir} failed: ${describeErrno(err)}${log ? `\n${log}` : ''}`,
      { cause: err },
    );
  }
}

function openDirFd(dir: string): number {
  try {
    return fs.openSync(dir, fs.constants.O_DIRECTORY | fs.constants.O_RDONLY);
  } catch (err) {
    throw new CgroupError(`cgroup: opening ${dir} failed: ${describeErrno(err)}`, { cause: err });
  }
}

/** Best-effort rmdir for rolling back a failed create; the original error is the one worth reporting. */
function rmdirQuietly(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch {
    // Not empty (a sibling appeared) or already gone: both fine.
  }
}

/** "max" → null, a number → that number, missing → null. */
function readLimit(file: string): number | null {
  return readNumber(file) ?? null;
}

/** One container cgroup on the unified hierarchy. */
class CgroupV2 implements Cgroup {
  readonly procsFds: readonly number[] = [];
  #cloneIntoFd: number | undefined;

  constructor(
    readonly path: string,
    private readonly dir: string,
    private readonly parentDir: string,
    cloneIntoFd: number | undefined,
  ) {
    this.#cloneIntoFd = cloneIntoFd;
  }

  get cloneIntoFd(): number | undefined {
    return this.#cloneIntoFd;
  }

  releaseSpawnFds(): void {
    if (this.#cloneIntoFd !== undefined) closeQuietly(this.#cloneIntoFd);
    this.#cloneIntoFd = undefined;
  }

  private file(name: string): string {
    return path.join(this.dir, name);
  }

  stats(): CgroupStats {
    const cpu = readFlatKeyed(this.file('cpu.stat'));
    const micros = (key: string): number | null => {
      const value = cpu.get(key);
      return value === undefined ? null : value * 1000;
    };
    return {
      memory: {
        usage: readNumber(this.file('memory.current')) ?? 0,
        limit: readLimit(this.file('memory.max')),
        maxUsage: readNumber(this.file('memory.peak')) ?? null,
      },
      cpu: {
        usageNanos: micros('usage_usec') ?? 0,
        userNanos: micros('user_usec'),
        systemNanos: micros('system_usec'),
      },
      pids: { current: readNumber(this.file('pids.current')) ?? 0, limit: readLimit(this.file('pids.max')) },
    };
  }

  oomKilled(): boolean {
    return (readFlatKeyed(this.file('memory.events')).get('oom_kill') ?? 0) > 0;
  }

  pids(): number[] {
    return [...readProcsRecursive(this.dir)].sort((a, b) => a - b);
  }

  killAll(signal: NodeJS.Signals | number): void {
    // cgroup.kill (5.14+) kills the whole subtree atomically, forks in flight included, frozen tasks too.
    if (isSigkill(signal) && fs.existsSync(this.file('cgroup.kill'))) {
      writeValue(this.file('cgroup.kill'), '1');
      return;
    }
    signalUntilQuiet(() => readProcsRecursive(this.dir), signal);
  }

  isFrozen(): boolean {
    // The requested state: cgroup.events says "frozen 1" only once every task stopped.
    return readOptional(this.file('cgroup.freeze'))?.trim() === '1';
  }

  async setFrozen(frozen: boolean): Promise<void> {
    if (!fs.existsSync(this.file('cgroup.freeze'))) {
      throw new UnsupportedError(`cgroup: ${this.dir} has no cgroup.freeze (the v2 freezer needs Linux 5.2+)`);
    }
    const want = frozen ? 1 : 0;
    writeValue(this.file('cgroup.freeze'), String(want));
    await waitUntil(
      () => readFlatKeyed(this.file('cgroup.events')).get('frozen') === want,
      `${this.dir} to become ${frozen ? 'frozen' : 'thawed'}`,
    );
  }

  async destroy(): Promise<void> {
    this.releaseSpawnFds();
    // Usually the container has exited and made no sub-cgroups: one rmdir does it.
    if (tryRmdir(this.dir)) {
      removeParentIfUnused(this.parentDir);
      return;
    }
    // Frozen tasks need no thaw first: the v2 freezer lets fatal signals through.
    this.killAll('SIGKILL');
    await removeCgroupDir(this.dir, () => {
      // Without cgroup.kill (pre-5.14), forks can slip past a pass; cgroup.kill makes this a cheap no-op write.
      if (readOptional(this.file('cgroup.procs')) !== undefined) this.killAll('SIGKILL');
    });
    removeParentIfUnused(this.parentDir);
  }
}
