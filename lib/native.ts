/**
 * The only module that loads the native addon. Everything the addon exports is wrapped here with types; callers
 * never see the raw binding.
 * @module
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { UnsupportedError } from './errors.js';

/** A mount in the executor's plan. All policy (flags, options, order) is decided in TypeScript. */
export interface NativeMount {
  kind: 'bind' | 'fs';
  /** bind: host path; fs: the source name shown in the mount table. */
  source: string;
  fstype?: string;
  /** Absolute path inside the container. */
  target: string;
  targetIsFile?: boolean;
  recursive?: boolean;
  refuseSymlink?: boolean;
  attrSet?: bigint;
  attrClear?: bigint;
  propagation?: bigint;
  /** fsconfig() parameters; an option without `value` is a flag. */
  options?: { key: string; value?: string }[];
  /** bind: a detached mount made by the parent (e.g. {@link native.idmapTree}), attached instead of `source`. */
  treeFd?: number;
}

/** What the executor does between clone3 and execve, precomputed completely. */
export interface NativePlan {
  cloneFlags: bigint;
  unshareCgroup?: boolean;
  cgroupDirFd?: number;
  cgroupProcsFds?: number[];
  setnsFds?: number[];
  pidnsFd?: number;
  loopbackUp?: boolean;
  stdioFds?: [number, number, number];
  hostname?: string;
  domainname?: string;
  rootfs?: string;
  rootPropagation?: bigint;
  /** An image rootfs: overlay of `lowers` (top-most first) with `upper`/`work`, mounted on `rootfs`. */
  overlay?: { lowers: string[]; upper: string; work: string };
  mounts?: NativeMount[];
  devices?: { path: string; mode: number; major: number; minor: number; uid: number; gid: number }[];
  symlinks?: { target: string; path: string }[];
  maskedPaths?: string[];
  readonlyPaths?: string[];
  readonlyRoot?: boolean;
  createCwd?: boolean;
  sysctls?: { path: string; value: string }[];
  rlimits?: { resource: number; soft: bigint; hard: bigint }[];
  uid?: number;
  gid?: number;
  groups?: number[];
  lastCap?: number;
  capBounding?: bigint;
  capEffective?: bigint;
  capPermitted?: bigint;
  capInheritable?: bigint;
  capAmbient?: bigint;
  noNewPrivs?: boolean;
  /** The umask the program starts with (default 0o022). */
  umask?: number;
  parentDeathSignal?: number;
  cwd?: string;
  waitForStart?: boolean;
  seccomp?: Buffer;
  seccompFlags?: number;
  execCandidates: string[];
  argv: string[];
  env: string[];
  /** A new user namespace (with `cloneFlags` CLONE_NEWUSER): the maps spawn writes before the init goes on. */
  userns?: { uidMap: string; gidMap: string; setgroups: 'allow' | 'deny' | '' };
  /** A detached mount (an idmapped rootfs) the init attaches on `rootfs` instead of building one. */
  rootfsTreeFd?: number;
  /** CLONE_NEW* flags the init unshares itself after becoming the user namespace's root. */
  unshareFlags?: bigint;
  /**
   * A terminal: the init opens a pty in the devpts it sees, sends the master over this unix socket and makes the
   * slave its stdio and controlling terminal (`stdioFds` are then unused).
   */
  consoleSocketFd?: number;
  /** With a terminal: bind the slave on /dev/console too (a container's init; never an exec). */
  consoleMount?: boolean;
}

/** What `spawn` returns: the child's pid (host namespace), its pidfd and the two sync pipe ends. */
export interface SpawnResult {
  pid: number;
  pidfd: number;
  /** Read end of the status pipe (non-blocking): READY / ERROR messages, EOF once execve succeeded. */
  statusFd: number;
  /** Write end of the start pipe: one byte releases an init that waits before execve. */
  startFd: number;
}

/** A message from the container init. */
export interface StatusMessage {
  kind: 'ready' | 'error';
  step: string;
  errno: number;
  index: number;
}

/** How a child ended. `exitCode` is 128+signal for a killed process, as a shell reports it. */
export interface ExitStatus {
  exitCode: number;
  signal: number;
}

/** Kinds of {@link LayerOp} (must match `OpKind` in addon/layer.cc). */
export const LayerOpKind = {
  dir: 1,
  file: 2,
  fileData: 3,
  symlink: 4,
  hardlink: 5,
  node: 6,
  whiteout: 7,
  opaque: 8,
  dirTimes: 9,
} as const;

/**
 * One filesystem operation of a layer, performed by the addon relative to the snapshot's directory fd. Paths are
 * relative and already lexically clean (no `..`, no leading `/`; `.` is the snapshot root). Short keys keep the
 * per-entry N-API cost down.
 */
export interface LayerOp {
  /** A {@link LayerOpKind}. */
  k: number;
  /** Path of the entry inside the snapshot. */
  p: string;
  /** Symlink text, or a hardlink's target path (relative, clean). */
  l?: string;
  /** Permission bits (07777), plus the S_IFMT type bits for device nodes and fifos. */
  m?: number;
  u?: number;
  g?: number;
  /** Device major / minor. */
  ma?: number;
  mi?: number;
  /** mtime, seconds and nanoseconds. */
  t?: number;
  n?: number;
  /** File ops: true when this op carries the file's last bytes (the file is then finished and closed). */
  f?: boolean;
  /** Extended attributes as a flat list: name, value, name, value... */
  x?: (string | Uint8Array)[];
  /** File data, written in order. The buffers must not be modified until the batch settles. */
  d?: Uint8Array[];
  /** Flat-mode opaque directories: names of children written by this layer, which survive. */
  keep?: string[];
}

/** A seccomp rule for libseccomp: one syscall (by name), the seccomp return value, and conditions that all hold. */
export interface NativeSeccompRule {
  name: string;
  action: number;
  conditions: { index: number; op: string; value: bigint; valueTwo: bigint }[];
}

/** A filter for libseccomp to compile: every rule already decided (lib/container/seccomp/compile.ts). */
export interface NativeSeccompFilter {
  defaultAction: number;
  /** Every architecture the program covers, by libseccomp name (`x86_64`, `x86`, `x32`...), native included or not. */
  architectures: string[];
  /** libseccomp's binary-tree layout, for long rule lists. */
  optimize: boolean;
  rules: NativeSeccompRule[];
}

/** How a batch of layer ops failed: `index` is the op, `syscall` the step, `errno` the reason. */
export interface LayerApplyFailure extends Error {
  errno?: number;
  syscall?: string;
  index?: number;
}

/** A digest computed on the thread pool: one `update` at a time, then `digest` once. */
export interface NativeHasher {
  update(buffers: Uint8Array[]): Promise<void>;
  /** Lowercase hex. */
  digest(): string;
}

/**
 * A gzip inflater on the thread pool (ISA-L when available, else zlib) that digests what it inflates. One `push`
 * at a time; each returns at most a few MiB of output (`drained` false: input is left, push again with none).
 * Multi-member streams are accepted; anything after a member that is not gzip, a bad CRC or a cut stream rejects.
 */
export interface NativeInflater {
  push(input: Uint8Array[] | null, end: boolean): Promise<{ out: Buffer[]; drained: boolean }>;
  /** Hex digest of all the output; call once, after the last push. */
  digest(): string;
  /** Which implementation inflates: 'isa-l' or 'zlib'. */
  readonly engine: string;
}

/**
 * One rtnetlink operation (addon/netlink.cc). Every name, address and MTU is decided by lib/network/; the addon
 * only encodes it. Addresses are dotted IPv4 strings, MACs `aa:bb:cc:dd:ee:ff`.
 */
export type NetlinkOp =
  | { op: 'bridge'; name: string; mtu?: number; up?: boolean; mac?: string }
  | { op: 'veth'; name: string; peer: string; peerNsFd?: number; master?: string; mtu?: number; up?: boolean; mac?: string; peerMac?: string }
  | { op: 'link'; name: string; up?: boolean; mtu?: number; master?: string; mac?: string }
  | { op: 'delLink'; name: string; ignoreMissing?: boolean }
  | { op: 'addr'; name: string; address: string; prefix: number; broadcast?: string }
  | { op: 'route'; name?: string; dst?: string; prefix: number; gateway?: string };

/** How a netlink batch failed: `index` is the op, `syscall` its description, `detail` the kernel's explanation. */
export interface NetlinkFailure extends Error {
  errno?: number;
  syscall?: string;
  index?: number;
  detail?: string;
}

interface Poller {
  close(): void;
  ref(): void;
  unref(): void;
}

interface Binding {
  spawn(plan: NativePlan): SpawnResult;
  setInitBinary(path: string): void;
  readStatus(fd: number): StatusMessage | null | undefined;
  waitid(pidfd: number): ExitStatus | null;
  pidfdSendSignal(pidfd: number, signal: number): void;
  pidfdOpen(pid: number): number;
  pipe(): [number, number];
  flock(fd: number, exclusive: boolean): boolean;
  socketpair(): [number, number];
  recvFd(socket: number): number | null;
  setWinsize(fd: number, rows: number, columns: number): void;
  dup(fd: number): number;
  makeRaw(fd: number): Buffer;
  restoreTermios(fd: number, saved: Buffer): void;
  openPty(): [number, number];
  attachDeviceFilter(cgroupFd: number, program: Buffer): void;
  openInRoot(root: string, path: string): number;
  stepNames(): string[];
  layerOpenRoot(path: string): number;
  layerApply(rootFd: number, ops: LayerOp[], pendingFd: number, flat: boolean): Promise<number>;
  lgetxattr(path: string, name: string): Buffer | null;
  usernsFd(uidMap: string, gidMap: string): number;
  idmapTree(path: string, usernsFd: number, recursive: boolean): number;
  readonlyTree(path: string): number;
  overlayTree(lowers: (number | string)[], upper: string, work: string): number;
  netlinkRun(fd: number, ops: NetlinkOp[]): Promise<void>;
  netnsCreate(): Promise<[number, number]>;
  netnsSocket(nsFd: number): Promise<number>;
  compileSeccomp(filter: NativeSeccompFilter): Buffer;
  seccompInfo(arch?: string, names?: string[]): { version: string; api: number; numbers?: number[] };
  Poller: new (fd: number, callback: (status: number) => void) => Poller;
  Hasher: new (algorithm: string) => NativeHasher;
  Inflater: (new (algorithm: string, engine: string) => NativeInflater) & { isalAvailable: boolean };
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if (JSON.parse(readFileSync(pkg, 'utf8')).name === 'berth') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new UnsupportedError('cannot find the berth package root to load the native addon');
    dir = parent;
  }
}

let binding: Binding | undefined;
let addonDir: string | undefined;

/** The path of an executable binding.gyp builds next to the addon (e.g. `berth-docker-init`); it may be missing. */
export function builtExecutable(name: string): string {
  load();
  return join(addonDir!, name);
}

function load(): Binding {
  if (binding) return binding;
  if (process.platform !== 'linux') throw new UnsupportedError(`berth runs containers on Linux only, not ${process.platform}`);
  if (!isMainThread) {
    // A container's parent-death signal follows the thread that created it, and the addon's handles belong to
    // the main event loop: containers made from a worker would die (or leak) with the worker.
    throw new UnsupportedError('berth must be used from the main thread, not from a worker thread');
  }
  const require = createRequire(import.meta.url);
  try {
    const gypBuild = require('node-gyp-build') as ((dir: string) => Binding) & { resolve(dir: string): string };
    const root = packageRoot();
    const loaded = gypBuild(root);
    // berth-init is built next to the addon; the addon seals a copy of it in memory for every container's init.
    addonDir = dirname(gypBuild.resolve(root));
    loaded.setInitBinary(join(addonDir, 'berth-init'));
    binding = loaded;
  } catch (cause) {
    throw new UnsupportedError(
      `the berth native addon is not built or cannot be loaded (${(cause as Error).message}); run "npm rebuild berth"`,
      { cause },
    );
  }
  return binding;
}

/** The addon, checked to be recent enough for seccomp (node-gyp-build keeps an old build until asked). */
function seccompBinding(): Binding {
  const b = load();
  if (typeof b.compileSeccomp !== 'function') {
    throw new UnsupportedError('the berth native addon was built before seccomp support: rebuild it with "npm run build:addon"');
  }
  return b;
}

/** The typed native API. Loaded lazily so that pure-TypeScript parts (validation, specs) work without it. */
export const native = {
  spawn: (plan: NativePlan): SpawnResult => load().spawn(plan),
  readStatus: (fd: number): StatusMessage | null | undefined => load().readStatus(fd),
  waitid: (pidfd: number): ExitStatus | null => load().waitid(pidfd),
  pidfdSendSignal: (pidfd: number, signal: number): void => load().pidfdSendSignal(pidfd, signal),
  pidfdOpen: (pid: number): number => load().pidfdOpen(pid),
  pipe: (): [number, number] => load().pipe(),
  flock: (fd: number, exclusive: boolean): boolean => load().flock(fd, exclusive),
  /** A connected pair of unix stream sockets (close-on-exec). */
  socketpair: (): [number, number] => load().socketpair(),
  /** The fd a peer sent over `socket` with SCM_RIGHTS (already sent: this never waits), or null if none came. */
  recvFd: (socket: number): number | null => load().recvFd(socket),
  /** Sets a terminal's window size; its foreground process group gets SIGWINCH. */
  setWinsize: (fd: number, rows: number, columns: number): void => load().setWinsize(fd, rows, columns),
  /** A close-on-exec copy of `fd` (same open file). */
  dup: (fd: number): number => load().dup(fd),
  /** Switches a terminal to raw mode (cfmakeraw: output processing off too); returns its settings before. */
  makeRaw: (fd: number): Buffer => load().makeRaw(fd),
  /** Puts back the settings {@link native.makeRaw} returned. */
  restoreTermios: (fd: number, saved: Buffer): void => load().restoreTermios(fd, saved),
  /** A new pty of the host's devpts: [master, slave], both close-on-exec (tests and tools drive the CLI with it). */
  openPty: (): [number, number] => load().openPty(),
  stepNames: (): string[] => load().stepNames(),
  /** Opens a file read-only as seen from inside `root` (symlinks confined to it, no FIFO blocking). */
  openInRoot: (root: string, path: string): number => load().openInRoot(root, path),
  /** Loads an eBPF device filter and attaches it to a cgroup v2 directory fd. */
  attachDeviceFilter: (cgroupFd: number, program: Buffer): void => load().attachDeviceFilter(cgroupFd, program),
  /** Opens the snapshot directory a layer is applied to; every {@link native.layerApply} op is relative to it. */
  layerOpenRoot: (path: string): number => load().layerOpenRoot(path),
  /**
   * Performs a batch of layer ops on the thread pool, in order. `pendingFd` is the file the previous batch left
   * open (-1 if none); resolves with the file this batch leaves open for the next one. `flat` applies whiteouts by
   * deleting instead of recording them for overlayfs. Rejects with a {@link LayerApplyFailure}; the fd of a file
   * left open is then closed.
   */
  layerApply: (rootFd: number, ops: LayerOp[], pendingFd: number, flat: boolean): Promise<number> =>
    load().layerApply(rootFd, ops, pendingFd, flat),
  /** An xattr of `path` itself (a final symlink is not followed), or null when it has none. */
  lgetxattr: (path: string, name: string): Buffer | null => load().lgetxattr(path, name),
  /** A sha256/sha512 digest whose updates run on the thread pool (large blobs keep the event loop free). */
  hasher: (algorithm: 'sha256' | 'sha512'): NativeHasher => new (load().Hasher)(algorithm),
  /**
   * A gzip inflater on the thread pool that digests its output with `algorithm` (a layer's DiffID). `engine`:
   * 'auto' uses ISA-L when libisal.so.2 loads, else zlib; 'isa-l' throws when ISA-L is not available.
   */
  inflater: (algorithm: 'sha256' | 'sha512' = 'sha256', engine: 'auto' | 'zlib' | 'isa-l' = 'auto'): NativeInflater =>
    new (load().Inflater)(algorithm, engine),
  /** Whether the addon can inflate with ISA-L (built with its header, and libisal.so.2 loads). */
  isalAvailable: (): boolean => load().Inflater.isalAvailable,
  /** An fd of a new user namespace with these maps (`inside outside count` lines), to idmap mounts with. */
  usernsFd: (uidMap: string, gidMap: string): number => load().usernsFd(uidMap, gidMap),
  /** A detached copy of the mount at `path`, idmapped by the user namespace `usernsFd`. */
  idmapTree: (path: string, usernsFd: number, recursive: boolean): number => load().idmapTree(path, usernsFd, recursive),
  /** A detached read-only (nosuid, nodev) bind of `path`, not idmapped: its files keep the host's owners. */
  readonlyTree: (path: string): number => load().readonlyTree(path),
  /** A detached overlay mount of `lowers` (mount fds or paths, top-most first) with its upper and work dirs. */
  overlayTree: (lowers: (number | string)[], upper: string, work: string): number => load().overlayTree(lowers, upper, work),
  /**
   * Runs rtnetlink ops in order on the thread pool, on socket `fd` (from {@link native.netnsCreate} or
   * {@link native.netnsSocket}), or on a fresh socket in this process's namespace when `fd` is -1. Rejects with a
   * {@link NetlinkFailure} naming the failed op; the ops before it stay done.
   */
  netlinkRun: (fd: number, ops: NetlinkOp[]): Promise<void> => load().netlinkRun(fd, ops),
  /** A new network namespace (made on a short-lived thread of its own): `[namespace fd, netlink socket in it]`. */
  netnsCreate: (): Promise<[number, number]> => load().netnsCreate(),
  /** A netlink socket inside the network namespace `nsFd` (opened from a short-lived thread that entered it). */
  netnsSocket: (nsFd: number): Promise<number> => load().netnsSocket(nsFd),
  /** Compiles a seccomp filter with libseccomp; the BPF program (struct sock_filter[], host byte order). */
  compileSeccomp: (filter: NativeSeccompFilter): Buffer => seccompBinding().compileSeccomp(filter),
  /**
   * libseccomp's version and API level; with `arch` and `names`, each syscall's number on that architecture (-1:
   * unknown to libseccomp; another negative number: not a syscall of that architecture).
   */
  seccompInfo: (arch?: string, names?: string[]) => seccompBinding().seccompInfo(arch, names),
  /** Calls `callback` once, on the event loop, when `fd` becomes readable (a pidfd: the process exited). */
  onReadable: (fd: number, callback: (status: number) => void): Poller => new (load().Poller)(fd, callback),
};
