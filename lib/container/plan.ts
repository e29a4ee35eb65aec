/**
 * OCI runtime spec → the executor's flat plan. This is where a spec's strings become flags, fds and masks; the
 * addon only carries the plan out. Policy that depends on the host (cgroup layout, thermal_throttle paths, the
 * kernel's last capability) is applied here too.
 * @module
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import type { NativeMount, NativePlan } from '../native.js';
import { InvalidOptionsError } from '../errors.js';
import { capabilityMask, lastCapability } from './capabilities.js';
import { DEFAULT_DEV_SYMLINKS, DEFAULT_PATH } from './defaults.js';
import { NAMESPACE_TYPES, type OciSpec } from './spec.js';
import type { V1Hierarchy } from './cgroup/index.js';
import { applyUserNamespace } from './userns/plan.js';
import { compileSeccomp } from './seccomp/compile.js';

/** clone(2) namespace flags. */
export const CLONE_FLAGS = {
  mount: 0x00020000n,
  uts: 0x04000000n,
  ipc: 0x08000000n,
  pid: 0x20000000n,
  network: 0x40000000n,
  cgroup: 0x02000000n,
  user: 0x10000000n,
} as const;

const MS_UNBINDABLE = 1n << 17n;
const MS_PRIVATE = 1n << 18n;
const MS_SLAVE = 1n << 19n;
const MS_SHARED = 1n << 20n;
const MS_REC = 16384n;

const PROPAGATION: Record<string, { flag: bigint; recursive: boolean }> = {
  private: { flag: MS_PRIVATE, recursive: false },
  rprivate: { flag: MS_PRIVATE, recursive: true },
  shared: { flag: MS_SHARED, recursive: false },
  rshared: { flag: MS_SHARED, recursive: true },
  slave: { flag: MS_SLAVE, recursive: false },
  rslave: { flag: MS_SLAVE, recursive: true },
  unbindable: { flag: MS_UNBINDABLE, recursive: false },
  runbindable: { flag: MS_UNBINDABLE, recursive: true },
};

/** mount_setattr(2) attribute bits. */
const ATTR_ATIME_MASK = 0x70n;
const ATTR = { rdonly: 1n, nosuid: 2n, nodev: 4n, noexec: 8n, noatime: 0x10n, strictatime: 0x20n, nodiratime: 0x80n };

const RLIMIT_NUMBERS: Record<string, number> = {
  RLIMIT_CPU: 0, RLIMIT_FSIZE: 1, RLIMIT_DATA: 2, RLIMIT_STACK: 3, RLIMIT_CORE: 4, RLIMIT_RSS: 5, RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7, RLIMIT_MEMLOCK: 8, RLIMIT_AS: 9, RLIMIT_LOCKS: 10, RLIMIT_SIGPENDING: 11, RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13, RLIMIT_RTPRIO: 14, RLIMIT_RTTIME: 15,
};
const RLIM_INFINITY = (1n << 64n) - 1n;


/** Host-side inputs of the plan that are not part of the spec. */
export interface PlanContext {
  /** Which cgroup layout the container's /sys/fs/cgroup mount mirrors. */
  cgroupVersion: 1 | 2;
  /** v1 hierarchies to mount inside the container (host layout). */
  cgroupHierarchies: readonly V1Hierarchy[];
  /** v2: dir fd for CLONE_INTO_CGROUP. */
  cgroupDirFd?: number;
  /** v1: cgroup.procs fds to join. */
  cgroupProcsFds?: readonly number[];
  /** Opened fds of the `{ path }` namespaces (see `namespacePaths()`). */
  namespaceFds: { type: string; fd: number }[];
  stdioFds: [number, number, number];
  /** Signal the kernel sends the container init when its owner thread dies; 0 for detached containers. */
  parentDeathSignal: number;
  /** Whether init blocks before execve until `start()`. */
  waitForStart: boolean;
  /** Create a missing working directory (root-owned, 0755) as Docker does for -w; runc-style specs do not. */
  createCwd?: boolean;
  /** For an image: the overlay that becomes the rootfs (mounted on the spec's root.path). */
  rootfsOverlay?: { lowers: string[]; upper: string; work: string };
  /** A detached mount (a user namespace's idmapped rootfs) attached on the spec's root.path instead. */
  rootfsTreeFd?: number;
  /** Where compiled seccomp programs are cached across processes (in the state root). */
  seccompCacheDir?: string;
  /** `process.terminal`: the socket the init sends its pty master over (see lib/container/terminal.ts). */
  consoleSocketFd?: number;
}

/** The `{ path }` namespaces of a spec, which the caller opens and passes back as `namespaceFds`. */
export function namespacePaths(spec: OciSpec): { type: string; path: string }[] {
  return (spec.linux?.namespaces ?? []).filter((n) => n.path).map((n) => ({ type: n.type, path: n.path! }));
}

/** Splits OCI mount options into mount attributes, propagation, bind-ness and filesystem parameters. */
export function parseMountOptions(options: readonly string[]) {
  let attrSet = 0n;
  let attrClear = 0n;
  let bind = false;
  let recursive = false;
  let propagation: { flag: bigint; recursive: boolean } | undefined;
  const fsOptions: { key: string; value?: string }[] = [];
  for (const opt of options) {
    switch (opt) {
      case 'ro': attrSet |= ATTR.rdonly; break;
      case 'rw': attrClear |= ATTR.rdonly; break;
      case 'nosuid': attrSet |= ATTR.nosuid; break;
      case 'suid': attrClear |= ATTR.nosuid; break;
      case 'nodev': attrSet |= ATTR.nodev; break;
      case 'dev': attrClear |= ATTR.nodev; break;
      case 'noexec': attrSet |= ATTR.noexec; break;
      case 'exec': attrClear |= ATTR.noexec; break;
      // Changing the atime mode needs the whole atime field cleared first (mount_setattr's rule).
      case 'noatime': attrSet |= ATTR.noatime; attrClear |= ATTR_ATIME_MASK; break;
      case 'strictatime': attrSet |= ATTR.strictatime; attrClear |= ATTR_ATIME_MASK; break;
      case 'relatime': attrClear |= ATTR_ATIME_MASK; break; // relatime is the value 0
      case 'nodiratime': attrSet |= ATTR.nodiratime; break;
      case 'bind': bind = true; break;
      case 'rbind': bind = true; recursive = true; break;
      case 'defaults': case 'async': break;
      default: {
        if (PROPAGATION[opt]) {
          propagation = PROPAGATION[opt];
          break;
        }
        const eq = opt.indexOf('=');
        fsOptions.push(eq < 0 ? { key: opt } : { key: opt.slice(0, eq), value: opt.slice(eq + 1) });
      }
    }
  }
  return { attrSet, attrClear, bind, recursive, propagation, fsOptions };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return true; // a missing source fails later with a precise error from the executor
  }
}

function cgroupMounts(destination: string, attrSet: bigint, ctx: PlanContext): { mounts: NativeMount[]; readonly: string[] } {
  if (ctx.cgroupVersion === 2) {
    return {
      mounts: [{ kind: 'fs', fstype: 'cgroup2', source: 'cgroup', target: destination, attrSet, refuseSymlink: true }],
      readonly: [],
    };
  }
  // v1: a tmpfs holding one mount per hierarchy (seen through the container's cgroup namespace), made read-only
  // as a whole once populated.
  const mounts: NativeMount[] = [
    {
      kind: 'fs', fstype: 'tmpfs', source: 'tmpfs', target: destination,
      attrSet: ATTR.nosuid | ATTR.nodev | ATTR.noexec, options: [{ key: 'mode', value: '755' }],
    },
  ];
  for (const h of ctx.cgroupHierarchies) {
    mounts.push({
      kind: 'fs', fstype: 'cgroup', source: 'cgroup',
      target: posix.join(destination, posix.basename(h.mountPoint)),
      attrSet: attrSet | ATTR.rdonly,
      options: h.controllers.map((o) => {
        const eq = o.indexOf('=');
        return eq < 0 ? { key: o } : { key: o.slice(0, eq), value: o.slice(eq + 1) };
      }),
    });
  }
  return { mounts, readonly: attrSet & ATTR.rdonly ? [destination] : [] };
}

function mountsFromSpec(spec: OciSpec, ctx: PlanContext): { mounts: NativeMount[]; extraReadonly: string[] } {
  const mounts: NativeMount[] = [];
  const extraReadonly: string[] = [];
  for (const m of spec.mounts ?? []) {
    const o = parseMountOptions(m.options ?? []);
    const target = posix.normalize(m.destination);
    if (m.type === 'cgroup' || m.type === 'cgroup2') {
      const expanded = cgroupMounts(target, o.attrSet, ctx);
      mounts.push(...expanded.mounts);
      extraReadonly.push(...expanded.readonly);
      continue;
    }
    if (o.bind || m.type === 'bind') {
      if (!m.source?.startsWith('/')) {
        throw new InvalidOptionsError('mounts', [{ path: target, message: `bind source must be an absolute host path (got "${m.source ?? ''}")` }]);
      }
      mounts.push({
        kind: 'bind', source: m.source, target, recursive: o.recursive, targetIsFile: !isDirectory(m.source),
        attrSet: o.attrSet, attrClear: o.attrClear,
        ...(o.propagation ? { propagation: o.propagation.flag } : {}),
      });
      continue;
    }
    if (!m.type) throw new InvalidOptionsError('mounts', [{ path: target, message: 'mount needs a type' }]);
    mounts.push({
      kind: 'fs', fstype: m.type, source: m.source ?? m.type, target, attrSet: o.attrSet, options: o.fsOptions,
      refuseSymlink: m.type === 'proc' || m.type === 'sysfs',
      ...(o.propagation ? { propagation: o.propagation.flag } : {}),
    });
  }
  return { mounts, extraReadonly };
}

let thermalCache: string[] | undefined;

/** Every /sys/devices/system/cpu/cpuN/thermal_throttle this host has (Docker masks each). Read once. */
export function thermalThrottlePaths(): string[] {
  thermalCache ??= readThermalThrottlePaths();
  return thermalCache;
}

function readThermalThrottlePaths(): string[] {
  try {
    return readdirSync('/sys/devices/system/cpu')
      .filter((d) => /^cpu\d+$/.test(d))
      .map((d) => `/sys/devices/system/cpu/${d}/thermal_throttle`)
      .filter((p) => {
        try {
          return statSync(p).isDirectory();
        } catch {
          return false;
        }
      });
  } catch {
    return [];
  }
}

/** Sysctls a container may set: those whose kernel object is namespaced (Docker's rule). */
export function isNamespacedSysctl(name: string, ns: { ipc: boolean; net: boolean; uts: boolean }): boolean {
  if (ns.ipc && (/^kernel\.(msgmax|msgmnb|msgmni|sem|shmall|shmmax|shmmni|shm_rmid_forced)$/.test(name) || name.startsWith('fs.mqueue.'))) return true;
  if (ns.net && name.startsWith('net.')) return true;
  if (ns.uts && /^kernel\.(hostname|domainname)$/.test(name)) return true;
  return false;
}

/** Where a program is looked up: the name itself when it has a slash, else each PATH directory in order. */
export function execCandidates(program: string, env: readonly string[]): string[] {
  if (program.includes('/')) return [program];
  const pathVar = [...env].reverse().find((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH;
  const dirs = pathVar.split(':').map((d) => d || '.');
  return dirs.map((d) => posix.join(d, program));
}

/** Builds the executor plan for `spec`. */
export function planFromSpec(spec: OciSpec, ctx: PlanContext): NativePlan {
  const ns = new Map((spec.linux?.namespaces ?? []).map((n) => [n.type, n]));
  let cloneFlags = 0n;
  // A namespace may also come as an fd prepared by the caller (a network namespace already wired): joined, not cloned.
  const prepared = (type: string) => ctx.namespaceFds.some((n) => n.type === type);
  for (const [type, entry] of ns) {
    if (entry.path || type === 'cgroup' || prepared(type)) continue; // joined with setns / unshared after joining the cgroup
    cloneFlags |= CLONE_FLAGS[type];
  }
  const env = spec.process.env ?? [];
  const args = spec.process.args;
  const caps = spec.process.capabilities;
  const plan: NativePlan = {
    cloneFlags,
    unshareCgroup: ns.has('cgroup') && !ns.get('cgroup')!.path,
    setnsFds: ctx.namespaceFds.filter((n) => n.type !== 'pid').map((n) => n.fd),
    loopbackUp: ns.has('network') && !ns.get('network')!.path && !prepared('network'),
    stdioFds: ctx.stdioFds,
    cwd: spec.process.cwd,
    uid: spec.process.user.uid,
    gid: spec.process.user.gid,
    groups: spec.process.user.additionalGids ?? [],
    lastCap: lastCapability(),
    capBounding: capabilityMask(caps?.bounding ?? []),
    capEffective: capabilityMask(caps?.effective ?? []),
    capPermitted: capabilityMask(caps?.permitted ?? []),
    capInheritable: capabilityMask(caps?.inheritable ?? []),
    capAmbient: capabilityMask(caps?.ambient ?? []),
    noNewPrivs: spec.process.noNewPrivileges ?? false,
    umask: spec.process.user.umask ?? 0o022,
    rlimits: (spec.process.rlimits ?? []).map((r) => ({
      resource: RLIMIT_NUMBERS[r.type]!,
      soft: r.soft >= Number.MAX_SAFE_INTEGER ? RLIM_INFINITY : BigInt(r.soft),
      hard: r.hard >= Number.MAX_SAFE_INTEGER ? RLIM_INFINITY : BigInt(r.hard),
    })),
    parentDeathSignal: ctx.parentDeathSignal,
    waitForStart: ctx.waitForStart,
    execCandidates: execCandidates(args[0]!, env),
    argv: args,
    env,
  };
  if (spec.linux?.seccomp) {
    const filter = compileSeccomp(spec.linux.seccomp, { cacheDir: ctx.seccompCacheDir });
    plan.seccomp = filter.program;
    plan.seccompFlags = filter.flags;
  }
  const pidns = ctx.namespaceFds.find((n) => n.type === 'pid');
  if (pidns) plan.pidnsFd = pidns.fd;
  if (ctx.cgroupDirFd !== undefined) plan.cgroupDirFd = ctx.cgroupDirFd;
  if (ctx.cgroupProcsFds?.length) plan.cgroupProcsFds = [...ctx.cgroupProcsFds];

  const newUts = ns.has('uts') && !ns.get('uts')!.path;
  if (spec.hostname !== undefined || spec.domainname !== undefined) {
    if (!newUts) {
      throw new InvalidOptionsError('OCI runtime spec', [
        { path: 'hostname', message: 'setting a hostname needs a private uts namespace (it would change the host\'s)' },
      ]);
    }
    if (spec.hostname !== undefined) plan.hostname = spec.hostname;
    if (spec.domainname !== undefined) plan.domainname = spec.domainname;
  }

  const sysctl = spec.linux?.sysctl ?? {};
  const own = (t: (typeof NAMESPACE_TYPES)[number]) => ns.has(t) && !ns.get(t)!.path;
  const nsOwn = { ipc: own('ipc'), net: own('network'), uts: newUts };
  const badSysctls = Object.keys(sysctl).filter((k) => !isNamespacedSysctl(k, nsOwn));
  if (badSysctls.length) {
    throw new InvalidOptionsError('sysctls', badSysctls.map((k) => ({
      path: k, message: 'not allowed: only namespaced sysctls (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, net.* with a private network) can be set per container',
    })));
  }
  plan.sysctls = Object.entries(sysctl).map(([k, v]) => ({ path: k.replace(/\./g, '/'), value: v }));

  if (ns.get('mount')?.path) {
    throw new InvalidOptionsError('OCI runtime spec', [
      { path: 'linux.namespaces', message: 'joining an existing mount namespace is not supported: a container needs its own' },
    ]);
  }
  if (ns.has('mount')) {
    const { mounts, extraReadonly } = mountsFromSpec(spec, ctx);
    plan.rootfs = spec.root.path;
    if (ctx.rootfsTreeFd !== undefined) plan.rootfsTreeFd = ctx.rootfsTreeFd;
    else if (ctx.rootfsOverlay) plan.overlay = ctx.rootfsOverlay;
    const prop = PROPAGATION[spec.linux?.rootfsPropagation ?? 'rprivate']!;
    plan.rootPropagation = prop.flag | (prop.recursive ? MS_REC : 0n);
    plan.mounts = mounts;
    const devMounted = mounts.some((m) => m.target === '/dev');
    plan.devices = (spec.linux?.devices ?? []).map((d) => ({
      path: d.path,
      mode: (d.type === 'b' ? 0o060000 : d.type === 'p' ? 0o010000 : 0o020000) | (d.fileMode ?? 0o666),
      major: d.major,
      minor: d.minor,
      uid: d.uid ?? 0,
      gid: d.gid ?? 0,
    }));
    // /dev/core points at /proc/kcore: only where the kernel has one.
    const hasKcore = existsSync('/proc/kcore');
    plan.symlinks = devMounted
      ? DEFAULT_DEV_SYMLINKS.filter((l) => hasKcore || l.target !== '/proc/kcore').map((l) => ({ ...l }))
      : [];
    const masked = spec.linux?.maskedPaths ?? [];
    plan.maskedPaths = masked.length ? [...masked, ...thermalThrottlePaths()] : [];
    plan.readonlyPaths = [...(spec.linux?.readonlyPaths ?? []), ...extraReadonly];
    plan.readonlyRoot = spec.root.readonly ?? false;
    plan.createCwd = ctx.createCwd ?? false;
  } else if (spec.mounts?.length || spec.root.readonly) {
    throw new InvalidOptionsError('OCI runtime spec', [
      { path: 'mounts', message: 'mounts and a read-only root need a mount namespace' },
    ]);
  }
  if (spec.process.terminal) {
    if (ctx.consoleSocketFd === undefined) {
      throw new InvalidOptionsError('OCI runtime spec', [{ path: 'process.terminal', message: 'a terminal needs a console socket' }]);
    }
    plan.consoleSocketFd = ctx.consoleSocketFd;
    plan.consoleMount = plan.rootfs !== undefined;
  }
  applyUserNamespace(plan, spec);
  return plan;
}
