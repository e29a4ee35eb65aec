/**
 * The one interface both cgroup drivers (v2 unified, v1 legacy/hybrid) implement. The container lifecycle only
 * talks to this; which driver runs is decided once per host by `detectCgroupDriver()` in ./index.ts.
 * @module
 */

import type { DeviceRule } from './devices.js';

/** Resource limits in the OCI runtime spec's `linux.resources` shape (the subset berth supports). */
export interface LinuxResources {
  /** Device access rules, later rules overriding earlier ones (v1 devices controller; eBPF filter on v2). */
  devices?: DeviceRule[];
  memory?: {
    /** Hard limit in bytes. */
    limit?: number;
    /** Memory + swap limit in bytes (OCI semantics: total, not swap alone); -1 = unlimited swap. */
    swap?: number;
    /** Soft limit in bytes. */
    reservation?: number;
  };
  cpu?: {
    /** Relative weight, cgroup v1 units (2..262144). v2 converts to cpu.weight. */
    shares?: number;
    /** CFS quota in microseconds per period; -1 or absent = unlimited. */
    quota?: number;
    /** CFS period in microseconds (default 100000). */
    period?: number;
    /** CPUs the container may run on, cpuset list syntax ("0-1,3"). */
    cpus?: string;
    /** Memory nodes the container may use, cpuset list syntax. */
    mems?: string;
  };
  pids?: {
    /** Maximum number of tasks; 0 or -1 = unlimited. */
    limit?: number;
  };
}

/** Usage read from a container's cgroup. */
export interface CgroupStats {
  memory: {
    /** Bytes in use now (page cache included, as the kernel counts it). */
    usage: number;
    /** The effective limit in bytes, or `null` when unlimited. */
    limit: number | null;
    /** High-water mark in bytes when the kernel reports one (v1 always; v2 since 5.19 via memory.peak). */
    maxUsage: number | null;
  };
  cpu: {
    /** Total CPU time consumed, nanoseconds. */
    usageNanos: number;
    /** User-mode CPU time, nanoseconds (null when the kernel does not split it). */
    userNanos: number | null;
    /** Kernel-mode CPU time, nanoseconds (null when the kernel does not split it). */
    systemNanos: number | null;
  };
  pids: {
    /** Tasks (threads included) in the cgroup now. */
    current: number;
    /** The pids limit, or `null` when unlimited. */
    limit: number | null;
  };
}

/** One container's cgroup (one directory per hierarchy on v1, one directory on v2). */
export interface Cgroup {
  /** Path relative to the hierarchy root(s), e.g. `berth/3f2a...`. */
  readonly path: string;
  /** v2 only: an O_DIRECTORY fd of the cgroup for clone3(CLONE_INTO_CGROUP); `undefined` on v1. */
  readonly cloneIntoFd: number | undefined;
  /**
   * v1 only: open O_WRONLY fds of each hierarchy's `cgroup.procs`. The container init writes "0" into each to
   * join (before it unshares its cgroup namespace). Empty on v2.
   */
  readonly procsFds: readonly number[];
  /** Closes the fds needed only while spawning (`cloneIntoFd`, `procsFds`). Idempotent. */
  releaseSpawnFds(): void;
  /** Current usage. */
  stats(): CgroupStats;
  /** Whether the kernel OOM killer killed a task in this cgroup (oom_kill counter > 0). */
  oomKilled(): boolean;
  /** PIDs (host namespace) of every process in the cgroup. */
  pids(): number[];
  /** Sends `signal` to every process in the cgroup (v2 SIGKILL uses cgroup.kill). */
  killAll(signal: NodeJS.Signals | number): void;
  /** Freezes (true) or thaws (false) every process in the cgroup. */
  setFrozen(frozen: boolean): Promise<void>;
  /** Whether the cgroup is frozen or being frozen (a paused container). */
  isFrozen(): boolean;
  /**
   * Kills what is left, removes the directory (retrying while the kernel still reports it busy) and removes the
   * shared parent directory when it became empty. Idempotent; never throws for "already gone".
   */
  destroy(): Promise<void>;
}

/** A cgroup implementation for one host layout. */
export interface CgroupDriver {
  /** 2 for the unified hierarchy, 1 for legacy or hybrid hosts. */
  readonly version: 1 | 2;
  /**
   * Creates the cgroup `<parent>/<name>` and applies `resources` (Docker's conversions already done by the caller:
   * OCI values in, kernel files out). Synchronous on purpose: a few mkdir/write calls cost microseconds and this
   * sits on the container start path. Throws `CgroupError` naming the file and value that the kernel refused.
   */
  create(name: string, resources: LinuxResources): Cgroup;
  /** Re-attaches to an existing cgroup (another process created it), or `undefined` if it does not exist. */
  open(name: string): Cgroup | undefined;
  /** Names of the cgroups that exist under the parent (for cleaning up after dead owners). */
  list(): string[];
}
