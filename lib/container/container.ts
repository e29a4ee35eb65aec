/**
 * The `Container` API: create → start → wait, signals, stop, remove, inspect, list. One container is one clone3()
 * of this process executing a plan (see plan.ts) in new namespaces and a cgroup; its exit is observed through a
 * pidfd on the event loop, never through SIGCHLD.
 * @module
 */
import { closeSync, constants as fsConstants, openSync, statSync, writeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import {
  AbortError,
  InvalidOptionsError,
  ContainerNotFoundError,
  ContainerStartError,
  ContainerStateError,
  RootfsError,
} from '../errors.js';
import { native, type NativePlan, type StatusMessage } from '../native.js';
import type { Cgroup, CgroupStats } from './cgroup/driver.js';
import { DOCKER_DEFAULT_DEVICE_RULES } from './cgroup/devices.js';
import { DEFAULT_STOP_SIGNAL, DEFAULT_STOP_TIMEOUT } from './defaults.js';
import { openEngine, type Engine } from './engine.js';
import {
  containerNameSchema, parseContainerOptions, terminalSizeSchema, toInvalidOptions, type ContainerOptions, type ValidContainerOptions,
} from './options.js';
import { processTable, type ContainerProcess } from './top.js';
import { execInContainer, type ExecOptions, type ExecProcess } from './exec.js';
import { namespacePaths, planFromSpec } from './plan.js';
import { parseOciSpec, specFromOptions, type OciSpec } from './spec.js';
import {
  isAlive, newContainerId, processStartTime, selfIdentity, type ContainerState,
} from './state.js';
import { collect, prepareStdio, safeClose, type StdioOption } from './stdio.js';
import { resolveUser } from './user.js';
import { applyImageConfig, imageRecord, overlayDirs, prepareImage, type ImageRootfs } from './image-rootfs.js';
import { layeredReader } from './layered-view.js';
import { SnapshotStore } from '../image/snapshot.js';
import type { IdMapping } from './userns/idmap.js';
import { specUserns } from './userns/plan.js';
import { reserveUserns, type UsernsRecord } from './userns/pool.js';
import { prepareUsernsRootfs, type UsernsRootfs } from './userns/rootfs.js';
import { detachEngineBinds } from './userns/engine-binds.js';
import { detachInitBinary, initBinaryPath, programArgs, wantsInit } from './init-process.js';
import {
  networkInfo, networkNamespace, prepareContainerNetwork, releaseContainerNetwork, renameContainerNetwork, type ContainerLookup,
  type ContainerNetworking, type ContainerNetworkRecord,
} from '../network/container-network.js';
import { containerEvent, forgetDeath, recordDeath } from './container-events.js';
import { planOutputs, startOutputs, type CapturedOutput, type StartedOutputs } from './logs/capture.js';
import { DEFAULT_LOG_CONFIG, logWriterDone, readLogs, type LogConfig, type LogEntry, type LogsOptions } from './logs/json-file.js';
import { spawnLogMonitor } from './logs/monitor.js';
import { hasShim, launchShim, madeByShim, ShimGoneError, shimResize, shimStart } from './shim/shim.js';
import {
  clearStoppedByUser, markStoppedByUser, nextBackoff, NO_RESTART, shouldRestart, stoppedByUser, withStartLock, type RestartPolicy,
} from './restart-policy.js';
import {
  previousLogWriterDone, requireRespawn, respawnRecord, respawnSpec, respawnStdio, sameProcess, snapshotLowers, type RespawnRecord,
} from './respawn.js';
import {
  checkTerminalStdio, ConsoleSocket, terminalReader, TerminalControl, terminalOutputPlan, type TerminalSize,
} from './terminal.js';
import { events, recordEvent, type BerthEvent, type EventsOptions } from '../journal/events.js';

/** How a container's process ended. */
export interface ExitInfo {
  /** The exit status, or 128 + signal number when a signal killed it (as a shell reports it). */
  exitCode: number;
  /** The signal that killed it (e.g. `SIGKILL`), or `null` when it exited by itself. */
  signal: NodeJS.Signals | null;
  /** Whether the kernel's OOM killer killed a process of the container (memory limit reached). */
  oomKilled: boolean;
}

/** A snapshot of a container's recorded state. */
export interface ContainerInfo {
  id: string;
  name: string;
  status: 'created' | 'running' | 'exited';
  /** Whether it runs frozen (`pause()`): its status stays `running`, as Docker's State.Running does. */
  paused: boolean;
  /** Host pid of the container's init while it runs. */
  pid: number | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  exitCode: number | null;
  oomKilled: boolean;
  /** Whether it keeps running after its owner process exits. */
  detached: boolean;
  /** Host pid of the Node process that created it. */
  ownerPid: number;
  rootfs: string;
  /** The program and its arguments. */
  command: string[];
  labels: Record<string, string>;
  /** Whether its program runs on a terminal (`tty: true`). */
  tty: boolean;
  /** Whether its stdin is a pipe its owner keeps open (`stdin: 'pipe'`; Docker's OpenStdin). */
  openStdin: boolean;
  /** The image reference it was created from, or `null` for a rootfs directory. */
  image: string | null;
  /** Ports and volumes the image declares (EXPOSE, VOLUME), recorded as Docker does. */
  exposedPorts: string[];
  volumes: string[];
  /** The cgroup path relative to each hierarchy root. */
  cgroup: string;
  /** The user namespace's maps (`auto`: allocated from the pool), or `null` without one. */
  userns: { uidMap: IdMapping[]; gidMap: IdMapping[]; auto: boolean } | null;
  /** Network mode, address on its network and published ports; null when created without the `network` option. */
  network: ContainerNetworkRecord | null;
  /** How its output is logged (`driver: 'none'` for records made before berth logged). */
  log: LogConfig;
  /** Whether it was created with the `init` option (Docker's HostConfig.Init); `command` is then the init's child. */
  init: boolean;
  /** Its restart policy (`{ name: 'no' }` when none was given). */
  restartPolicy: RestartPolicy;
  /** Restarts its policy made since it was last started by hand (Docker's RestartCount). */
  restartCount: number;
  /** Its owner is about to start its process again (a policy's delay, or the start itself); `status` is still `exited`. */
  restarting: boolean;
  /** Why the last restart by its policy failed (Docker's State.Error), or `''`. */
  error: string;
  /** The OCI runtime spec the container runs with. */
  spec: OciSpec;
}

/** Where the state root is, for the static methods. */
export interface RootOptions {
  /** State root directory. Default: `BERTH_ROOT` or /var/lib/berth. */
  root?: string;
}

/** Options for creating from a raw OCI runtime spec. */
export interface SpecCreateOptions extends RootOptions {
  name?: string;
  stdin?: StdioOption;
  stdout?: StdioOption;
  stderr?: StdioOption;
  detached?: boolean;
  signal?: AbortSignal;
}

/** Result of `Container.run()`. */
export interface RunResult extends ExitInfo {
  /** The container's id (already removed when `run` returns). */
  id: string;
  stdout: string;
  stderr: string;
}

const SIGNALS = osConstants.signals as Record<string, number>;

/** Converts `'SIGTERM'`, `'TERM'`, `15` to a signal number; throws for unknown names. */
export function signalNumber(signal: NodeJS.Signals | string | number): number {
  if (typeof signal === 'number') {
    if (!Number.isInteger(signal) || signal < 1 || signal > 64) throw new ContainerStateError(`invalid signal ${signal}`);
    return signal;
  }
  const upper = signal.toUpperCase();
  const n = SIGNALS[upper.startsWith('SIG') ? upper : `SIG${upper}`];
  if (n === undefined) throw new ContainerStateError(`unknown signal "${signal}"`);
  return n;
}

function signalName(n: number): NodeJS.Signals | null {
  if (!n) return null;
  return (Object.keys(SIGNALS).find((k) => SIGNALS[k] === n) as NodeJS.Signals | undefined) ?? null;
}

const ERRNO_NAMES = new Map(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));

function errnoName(n: number): string {
  return ERRNO_NAMES.get(n) ?? `errno ${n}`;
}

function describeErrno(n: number): string {
  const name = errnoName(n);
  const text: Record<string, string> = {
    EPERM: 'operation not permitted', ENOENT: 'no such file or directory', EACCES: 'permission denied',
    EINVAL: 'invalid argument', ENOTDIR: 'not a directory', ELOOP: 'refusing to follow a symlink',
    EBUSY: 'device or resource busy', ENOEXEC: 'exec format error', EROFS: 'read-only file system',
    ENODEV: 'no such device', EEXIST: 'file exists', ENOSPC: 'no space left on device', E2BIG: 'argument list too long',
  };
  return text[name] ? `${name} (${text[name]})` : name;
}

/** Turns the init's `{step, errno, index}` into an error a user can act on. */
function startError(msg: StatusMessage, plan: NativePlan, spec: OciSpec): ContainerStartError {
  const err = errnoName(msg.errno);
  if (msg.step === 'exec') {
    const program = spec.process.args[0]!;
    if (msg.errno === 2 && msg.index < 0) {
      const notFound = program.includes('/')
        ? `exec: "${program}": no such file or directory`
        : `exec: "${program}": executable file not found in $PATH`;
      return new ContainerStartError('exec', err, program, notFound, 127);
    }
    const path = plan.execCandidates[msg.index] ?? program;
    const status = msg.errno === 13 || msg.errno === 8 ? 126 : msg.errno === 2 ? 127 : 126;
    return new ContainerStartError('exec', err, path, `exec: "${path}": ${describeErrno(msg.errno)}`, status);
  }
  let target: string | undefined;
  const i = msg.index;
  switch (msg.step) {
    case 'mount':
    case 'resolve mount target':
      target = plan.mounts?.[i]?.target;
      break;
    case 'create device':
      target = plan.devices?.[i]?.path;
      break;
    case 'create symlink':
      target = plan.symlinks?.[i]?.path;
      break;
    case 'mask path':
      target = plan.maskedPaths?.[i];
      break;
    case 'make path read-only':
      target = plan.readonlyPaths?.[i];
      break;
    case 'write sysctl':
      target = plan.sysctls?.[i]?.path.replace(/\//g, '.');
      break;
    case 'chdir':
      target = plan.cwd;
      break;
    case 'mount rootfs':
      target = plan.rootfs;
      break;
    default:
      target = undefined;
  }
  const what = target ? `${msg.step} ${target}` : msg.step;
  const hint = plan.seccomp?.length && !plan.noNewPrivs && SECCOMP_LOADED_BEFORE.has(msg.step)
    ? '; the seccomp profile is already in force at this step and must allow the syscalls the init makes before execve (see docs/security.md)'
    : '';
  return new ContainerStartError(msg.step, err, target, `container init failed: ${what}: ${describeErrno(msg.errno)}${hint}`, 125);
}

/** Setup steps the init takes after loading the seccomp filter (without no_new_privs; with it, only exec follows). */
const SECCOMP_LOADED_BEFORE = new Set([
  'drop bounding capabilities', 'set user', 'set capabilities', 'set no_new_privs', 'set parent death signal', 'chdir',
  'wait for start',
]);

/** Resolves once `fd` is readable (or rejects on abort). The poll handle keeps the process alive meanwhile. */
function readable(fd: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortError());
    const poller = native.onReadable(fd, (status) => {
      signal?.removeEventListener('abort', onAbort);
      if (status < 0) reject(new Error(`poll failed: ${status}`));
      else resolve();
    });
    const onAbort = () => {
      poller.close();
      reject(new AbortError());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Reads the next message of the status pipe: a message, or null at EOF (execve succeeded). */
async function nextStatus(fd: number, signal?: AbortSignal): Promise<StatusMessage | null> {
  for (;;) {
    const m = native.readStatus(fd);
    if (m !== undefined) return m;
    await readable(fd, signal);
  }
}

/** Live handles of one run of the container's process, held only by the process that owns the container. */
interface Owned {
  pidfd: number;
  statusFd: number | undefined;
  startFd: number | undefined;
  plan: NativePlan;
  exit: Promise<ExitInfo>;
  waiters: number;
  poller: { ref(): void; unref(): void; close(): void } | undefined;
  /** The program was let go (start written, or not waited for). */
  released: boolean;
  /** Settles once the start's outcome is known: true when the program was executed. */
  startOutcome: Promise<boolean>;
  settleStart(execd: boolean): void;
  /** When the program started (for the restart delay), ms since the epoch. */
  startedAtMs: number;
  /** Set at the exit: true once the container runs again in this process (its policy, or a start), false if not. */
  next: Promise<boolean> | undefined;
  settleNext?: (again: boolean) => void;
}

/** What one run of a container's process needs (see `#launch`). */
interface LaunchSetup {
  /** The options for its stdio, network and init (the recorded ones when it is started again). */
  o: RespawnRecord['options'];
  spec: OciSpec;
  /** The container whose network it joins (`network: 'container:<x>'`). */
  joined: { id: string } | undefined;
  userns: UsernsRecord | undefined;
  overlay: ReturnType<typeof overlayDirs> | undefined;
  usernsRootfs: UsernsRootfs | undefined;
  rawSpec: boolean;
  /** Leave the init blocked before execve until a start (else the program runs at once). */
  waitForStart: boolean;
  signal: AbortSignal | undefined;
  /** The caller's undo steps; the network's release is added. */
  undo: (() => void | Promise<void>)[];
  /** A new container (recorded as created; forgotten if this fails), not one started again. */
  fresh: boolean;
  /** The address it had before (kept if still free). */
  preferredIp?: string | undefined;
}

/** Looks containers up for `network: 'container:<x>'`. */
function containerLookup(engine: Engine): ContainerLookup {
  return (x) => {
    const cid = engine.root.resolve(x);
    const st = cid ? engine.root.readState(cid) : undefined;
    return st && { id: st.id, name: st.name, ...(st.process ? { process: st.process } : {}), status: reconcile(st).status };
  };
}

/** The cgroup settings of a spec: every container gets device rules, Docker's unless the spec brings its own. */
function cgroupResources(spec: OciSpec): NonNullable<NonNullable<OciSpec['linux']>['resources']> {
  const resources = { ...(spec.linux?.resources ?? {}) };
  resources.devices ??= DOCKER_DEFAULT_DEVICE_RULES.map((r) => ({ ...r }));
  return resources;
}

/** A policy restart gave up before it started anything: stopped by a user (`record`), or no longer this process's. */
class RestartCanceled extends Error {
  constructor(readonly record: boolean) {
    super('restart cancelled');
  }
}

/** `p`, or an AbortError once `signal` aborts. */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      if (signal.aborted) reject(new AbortError());
      signal.addEventListener('abort', () => reject(new AbortError()), { once: true });
    }),
  ]);
}

/** The number of a recorded stop signal, or undefined for a name this host does not know. */
function stopSignalNumber(signal: string | number): number | undefined {
  try {
    return signalNumber(signal);
  } catch {
    return undefined;
  }
}

/**
 * Starts an exited container the `berth` command made through a shim: its own when it lives (it starts it in
 * place), else a new one that takes the container over.
 */
async function startThroughShim(root: string, id: string, dir: string): Promise<void> {
  if (hasShim(dir)) {
    try {
      return await shimStart(dir);
    } catch (e) {
      if (!(e instanceof ShimGoneError)) throw e;
    }
  }
  const launched = await launchShim({ root, takeover: id, start: true, autoRemove: false });
  if (launched.startError) throw launched.startError;
}

/** One run of a container's process, as the shim follows it (see {@link runHandles}). */
export interface RunHandles {
  /** Identifies the run. */
  readonly key: object;
  /** Its exit. */
  readonly exit: Promise<ExitInfo>;
  /** After its exit: whether the container runs again in this process (see `Container.restarted()`). */
  next(): Promise<boolean>;
}

/**
 * Internal (the shim's, not part of the public API): starts a container's program in this process whoever made
 * it — a created one it owns, or an exited one (taken over), never through a shim.
 */
export let startHere: (c: Container, signal?: AbortSignal) => Promise<void>;

/** Internal (the shim's): the current run of a container this process owns, if any. */
export let runHandles: (c: Container) => RunHandles | undefined;

/**
 * A container: a process tree isolated in its own namespaces and cgroup, running from a root filesystem.
 *
 * ```ts
 * await using c = await Container.create({ rootfs: '/srv/busybox', cmd: ['echo', 'hi'] });
 * await c.start();
 * const { exitCode } = await c.wait();
 * ```
 */
export class Container implements AsyncDisposable {
  static {
    startHere = (c, signal) => {
      const options = signal ? { signal } : {};
      return c.#owned && c.#state.status !== 'exited' ? c.start(options) : c.#startAgain(signal);
    };
    runHandles = (c) => {
      const owned = c.#owned;
      if (!owned) return undefined;
      return {
        key: owned,
        exit: owned.exit,
        next: async () => {
          await owned.exit;
          return owned.next!;
        },
      };
    };
  }

  /** The 64-hex-character id. */
  readonly id: string;

  #streams: { stdin: Writable | null; stdout: Readable | null; stderr: Readable | null };
  #terminal: TerminalControl | undefined;

  /** The container's stdin when created with `stdin: 'pipe'` (with `tty`: typing into its terminal). */
  get stdin(): Writable | null {
    return this.#streams.stdin;
  }

  /** The container's stdout when created with `stdout: 'pipe'` (the default); with `tty`, its terminal's output. */
  get stdout(): Readable | null {
    return this.#streams.stdout;
  }

  /** The container's stderr when created with `stderr: 'pipe'` (the default); null with `tty` (it goes to stdout). */
  get stderr(): Readable | null {
    return this.#streams.stderr;
  }

  #engine: Engine;
  #state: ContainerState;
  #cgroup: Cgroup | undefined;
  #owned: Owned | undefined;
  #removed = false;
  #networking: ContainerNetworking | undefined;
  #networkReleased: Promise<void> | undefined;
  #output: CapturedOutput | undefined;
  /** The previous run's network, fully released (veths deleted, addresses freed). */
  #networkFreed: Promise<void> | undefined;
  /** The delay before a policy restart, when one is pending. */
  #pendingRestart: { timer: NodeJS.Timeout; cancel(): void } | undefined;
  /** The current restart delay (Docker's backoff; see restart-policy.ts). */
  #backoffMs = 0;
  /** Settles the exited run's `next` (see Owned). */
  #nextRun: ((again: boolean) => void) | undefined;
  /** A start of the process again under way in this process. */
  #respawning: Promise<void> | undefined;

  private constructor(
    engine: Engine,
    state: ContainerState,
    cgroup: Cgroup | undefined,
    owned: Owned | undefined,
    streams: { stdin: Writable | null; stdout: Readable | null; stderr: Readable | null },
  ) {
    this.#engine = engine;
    this.#state = state;
    this.#cgroup = cgroup;
    this.#owned = owned;
    this.id = state.id;
    this.#streams = streams;
  }

  /**
   * Creates a container: namespaces, mounts, cgroup and stdio are set up and its init waits just before execve.
   * Call {@link Container.start} to run the program. Throws `InvalidOptionsError` for bad options (naming the
   * field), `RootfsError` for a missing rootfs, `ContainerStartError` when the setup fails in the kernel.
   */
  static async create(options: ContainerOptions & RootOptions & { signal?: AbortSignal }): Promise<Container> {
    const { root, signal, ...rest } = options;
    const o = parseContainerOptions(rest);
    return Container.#create(o, root, signal, true);
  }

  /**
   * Creates a container from a raw OCI runtime spec (config.json), as `runc create` would. `spec.root.path` is
   * the rootfs (absolute).
   */
  static async createFromSpec(spec: unknown, options: SpecCreateOptions = {}): Promise<Container> {
    const parsed = parseOciSpec(spec);
    if (!parsed.root.path.startsWith('/')) {
      throw new RootfsError(`root.path must be absolute when there is no bundle directory (got "${parsed.root.path}")`);
    }
    const o = parseContainerOptions({
      rootfs: parsed.root.path,
      cmd: parsed.process.args,
      ...(options.name ? { name: options.name } : {}),
      ...(options.stdin !== undefined ? { stdin: options.stdin } : {}),
      ...(options.stdout !== undefined ? { stdout: options.stdout } : {}),
      ...(options.stderr !== undefined ? { stderr: options.stderr } : {}),
      ...(options.detached !== undefined ? { detached: options.detached } : {}),
    });
    return Container.#create(o, options.root, options.signal, true, parsed);
  }

  /**
   * Runs a container to completion and returns its exit status and collected output, then removes it
   * (like `docker run --rm`). stdin is /dev/null unless given.
   */
  static async run(options: ContainerOptions & RootOptions & { signal?: AbortSignal }): Promise<RunResult> {
    const { root, signal, ...rest } = options;
    const o = parseContainerOptions({ stdin: 'ignore', ...rest });
    const c = await Container.#create(o, root, signal, false);
    try {
      const onAbort = () => c.kill('SIGKILL').catch(() => undefined);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const [stdout, stderr] = await Promise.all([collect(c.stdout), collect(c.stderr), c.#started()]);
        const exit = await c.wait();
        if (signal?.aborted) throw new AbortError();
        return { id: c.id, ...exit, stdout, stderr };
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    } finally {
      await c.remove({ force: true });
    }
  }

  static async #create(
    o: ValidContainerOptions,
    rootPath: string | undefined,
    signal: AbortSignal | undefined,
    waitForStart: boolean,
    rawSpec?: OciSpec,
  ): Promise<Container> {
    if (signal?.aborted) throw new AbortError();
    const engine = await openEngine(rootPath);
    // For an image: snapshots are held (shared lock, gc waits) until the container's state names them.
    let releaseSnapshots: () => void = () => undefined;
    if (o.image !== undefined) {
      releaseSnapshots = await new SnapshotStore(engine.root.path).lock(false);
    }
    try {
      return await Container.#createLocked(o, engine, signal, waitForStart, rawSpec);
    } finally {
      releaseSnapshots();
    }
  }

  static async #createLocked(
    o: ValidContainerOptions,
    engine: Engine,
    signal: AbortSignal | undefined,
    waitForStart: boolean,
    rawSpec: OciSpec | undefined,
  ): Promise<Container> {
    const id = newContainerId();
    const name = o.name ?? `berth-${id.slice(0, 12)}`;
    const owner = selfIdentity();
    const respawn = respawnRecord(o, rawSpec !== undefined, owner);
    const netns = networkNamespace(o, containerLookup(engine));
    if (o.network !== undefined) o = { ...o, namespaces: { ...o.namespaces, network: netns.namespace } };
    let image: ImageRootfs | undefined;
    if (o.image !== undefined) {
      image = await prepareImage(o, engine.root.path, signal);
      o = applyImageConfig(o, image.image);
      if (o.entrypoint!.length + o.cmd!.length === 0) {
        throw new InvalidOptionsError('container options', [{ path: 'cmd', message: `the image ${o.image} has no command: give cmd` }]);
      }
    } else checkRootfs(o.rootfs!);
    engine.root.createContainerDir(id, owner);
    const undo: (() => void | Promise<void>)[] = [() => void engine.root.removeContainerDir(id)];
    let overlay: ReturnType<typeof overlayDirs> | undefined;
    let userns: UsernsRecord | undefined;
    let usernsRootfs: UsernsRootfs | undefined;
    let spec: OciSpec;
    try {
      // A user namespace's range is reserved (and recorded in the container's directory) first; its rootfs is
      // an idmapped overlay of the image's snapshots or of the rootfs directory. A raw spec's root is used as is.
      const request = o.userns ?? (rawSpec ? specUserns(rawSpec) : undefined);
      if (request) userns = await reserveUserns(engine.root, id, request);
      if (userns && !rawSpec) {
        usernsRootfs = image
          ? prepareUsernsRootfs(engine.root.containerDir(id), image.lowers, userns, 'image')
          : prepareUsernsRootfs(engine.root.containerDir(id), [o.rootfs!], userns, 'lower');
      } else if (image) overlay = overlayDirs(engine.root.containerDir(id), image.lowers);
      const containerRoot = usernsRootfs?.rootPath ?? overlay?.rootPath ?? o.rootfs!;
      const user = rawSpec ? undefined : resolveUser(image ? layeredReader(image.lowers) : o.rootfs!, o.user, o.groupAdd);
      spec = rawSpec ?? specFromOptions(o, { id, user: user!, rootPath: containerRoot, ...(userns ? { userns } : {}) });
    } catch (e) {
      usernsRootfs?.close();
      engine.root.removeContainerDir(id);
      throw e;
    }
    undo.push(() => usernsRootfs?.close());
    const cleanup = async () => {
      for (const f of undo.reverse()) await f();
    };
    try {
      engine.root.reserveName(name, id);
      undo.push(() => engine.root.releaseName(name, id));

      const cgroup = engine.cgroups.create(id, cgroupResources(spec));
      undo.push(() => cgroup.destroy());

      const state: ContainerState = {
        id,
        name,
        createdAt: new Date().toISOString(),
        status: 'created',
        owner,
        detached: o.detached ?? false,
        cgroup: id,
        cgroupVersion: engine.cgroups.version,
        stopSignal: o.stopSignal ?? DEFAULT_STOP_SIGNAL,
        stopTimeout: o.stopTimeout ?? DEFAULT_STOP_TIMEOUT,
        labels: { ...(o.labels ?? {}) },
        ...(o.stdin === 'pipe' ? { openStdin: true } : {}),
        ...(image ? { image: imageRecord(image) } : {}),
        ...(userns ? { userns } : {}),
        ...(o.init !== undefined && !rawSpec ? { init: o.init } : {}),
        ...(o.restartPolicy && o.restartPolicy.name !== 'no' ? { restartPolicy: o.restartPolicy } : {}),
        log: logConfigOf(o.log),
        respawn,
        spec,
      };
      const container = new Container(engine, state, cgroup, undefined, { stdin: null, stdout: null, stderr: null });
      await container.#launch({
        o, spec, joined: netns.joined, userns, overlay, usernsRootfs, rawSpec: rawSpec !== undefined, waitForStart, signal, undo,
        fresh: true,
      });
      return container;
    } catch (e) {
      await cleanup();
      throw e;
    }
  }

  /**
   * Spawns a run of the container's process: its stdio (pipes and log capture, or a terminal), its network, the
   * init (blocked before execve unless `waitForStart` is false), the exit watch; records the state. Shared by a new
   * container and an exited one started again (`fresh: false`: same id, name, directory, spec and cgroup path).
   * Sets this object's run fields. On failure the init is killed and reaped, and the caller's `undo` (to which the
   * network's release is added) is the caller's to run.
   */
  async #launch(s: LaunchSetup): Promise<void> {
    const engine = this.#engine;
    const state = this.#state;
    const { id, name, owner } = state;
    const cgroup = this.#cgroup!;
    const { o, spec, undo, waitForStart, signal, usernsRootfs } = s;
    const containerDir = engine.root.containerDir(id);
    state.spec = spec;

    const detachedDefault: StdioOption = o.detached ? 'ignore' : 'pipe';
    const logConfig = state.log ?? logConfigOf(o.log);
    // A terminal's master arrives from the init after the spawn: its output is taken once the init is ready.
    const terminal = spec.process.terminal === true;
    if (terminal) checkTerminalStdio(o);
    const pipesPlan = planOutputs({ stdout: o.stdout ?? detachedDefault, stderr: o.stderr ?? detachedDefault }, o.detached ?? false, logConfig);
    const outPlan = terminal ? terminalOutputPlan(o.stdout ?? detachedDefault, o.detached ?? false, logConfig) : pipesPlan;
    const stdio = prepareStdio(terminal ? ['ignore', 'ignore', 'ignore'] : [o.stdin ?? 'ignore', ...pipesPlan.plans]);
    let outputs: StartedOutputs | undefined;
    let consoleSocket: ConsoleSocket | undefined;
    try {
      if (terminal) consoleSocket = new ConsoleSocket();
      else outputs = startOutputs(containerDir, id, logConfig, outPlan.roles, stdio.captured);
    } catch (e) {
      for (const st of [stdio.stdin, stdio.stdout, stdio.stderr]) st?.destroy();
      for (const fd of stdio.closeAfterSpawn) safeClose(fd);
      throw e;
    }
    let terminalStreams: { control: TerminalControl; stdout: Readable | null } | undefined;
    const destroyStreams = () => {
      for (const st of [stdio.stdin, stdio.stdout, stdio.stderr]) st?.destroy();
      outputs?.destroy();
      consoleSocket?.close();
      terminalStreams?.control.close();
      terminalStreams?.stdout?.destroy();
    };
    const nsFds: { type: string; fd: number }[] = [];
    let spawned;
    let plan: NativePlan;
    let networking: ContainerNetworking | undefined;
    let closeEngineBinds = () => undefined as void;
    let closeInitBinary = () => undefined as void;
    try {
      networking = await prepareContainerNetwork({
        root: engine.root.path, containerId: id, containerName: name, hostname: spec.hostname, owner, options: o, joined: s.joined,
        userns: s.userns !== undefined, preferredIp: s.preferredIp,
      });
      if (networking) {
        const net = networking;
        undo.push(async () => {
          await net.closePorts();
          await releaseContainerNetwork(engine.root.path, id, net.record);
        });
        if (net.nsFd !== undefined) nsFds.push({ type: 'network', fd: net.nsFd });
        spec.mounts = [...(spec.mounts ?? []), ...net.mounts];
        state.network = net.record;
        if (state.respawn) state.respawn.networkMounts = net.mounts.length;
      }
      for (const n of namespacePaths(spec)) nsFds.push({ type: n.type, fd: openSync(n.path, fsConstants.O_RDONLY) });
      plan = planFromSpec(spec, {
        cgroupVersion: engine.cgroups.version,
        cgroupHierarchies: engine.hierarchies,
        ...(cgroup.cloneIntoFd !== undefined ? { cgroupDirFd: cgroup.cloneIntoFd } : {}),
        cgroupProcsFds: cgroup.procsFds,
        namespaceFds: nsFds,
        stdioFds: stdio.childFds,
        parentDeathSignal: o.detached ? 0 : 9,
        // A namespace wired after the clone must be ready before the program runs, and a terminal's size set:
        // the init waits for it.
        waitForStart: waitForStart || networking?.wireInto !== undefined || terminal,
        ...(consoleSocket ? { consoleSocketFd: consoleSocket.child } : {}),
        createCwd: !s.rawSpec,
        ...(s.overlay ? { rootfsOverlay: s.overlay.overlay } : {}),
        ...(usernsRootfs ? { rootfsTreeFd: usernsRootfs.treeFd } : {}),
        seccompCacheDir: join(engine.root.path, 'seccomp-cache'),
      });
      if (s.userns && networking) closeEngineBinds = detachEngineBinds(plan, networking.mounts.map((m) => m.source), s.userns);
      if (s.userns && !s.rawSpec && wantsInit(o)) closeInitBinary = detachInitBinary(plan, initBinaryPath());
      spawned = spawnOrExplain(plan);
    } catch (e) {
      destroyStreams();
      throw e;
    } finally {
      for (const fd of stdio.closeAfterSpawn) safeClose(fd);
      consoleSocket?.closeChild();
      for (const n of nsFds) safeClose(n.fd);
      closeEngineBinds();
      closeInitBinary();
      usernsRootfs?.close();
      cgroup.releaseSpawnFds();
    }
    state.process = { pid: spawned.pid, startTime: processStartTime(spawned.pid) ?? 0 };

    const wired = networking?.wireInto;
    let settleStart!: (execd: boolean) => void;
    const owned: Owned = {
      pidfd: spawned.pidfd,
      statusFd: spawned.statusFd,
      startFd: spawned.startFd,
      plan,
      exit: undefined as unknown as Promise<ExitInfo>,
      waiters: 0,
      poller: undefined,
      // Without waiting for a start (run()), the program is released at once (or right after the setup below).
      released: !waitForStart,
      startOutcome: new Promise<boolean>((resolve) => (settleStart = resolve)),
      settleStart: (execd) => settleStart(execd),
      startedAtMs: 0,
      next: undefined,
    };
    this.#owned = owned;
    this.#streams = {
      stdin: stdio.stdin,
      stdout: outputs?.output?.stdout ?? stdio.stdout,
      stderr: outputs?.output?.stderr ?? stdio.stderr,
    };
    this.#networking = networking;
    this.#networkReleased = undefined;
    this.#networkFreed = undefined;
    this.#output = outputs?.output;
    this.#terminal = undefined;
    owned.exit = this.#watchExit();

    if (wired) {
      try {
        await wired(spawned.pid);
      } catch (e) {
        await this.#abandon(s.fresh);
        destroyStreams();
        throw e;
      }
    }
    if (waitForStart || wired || terminal) {
      let msg: StatusMessage | null;
      try {
        msg = await nextStatus(spawned.statusFd, signal);
      } catch (e) {
        await this.#abandon(s.fresh);
        destroyStreams();
        throw e;
      }
      if (msg?.kind !== 'ready') {
        const silent = plan.seccomp?.length
          ? ' without saying why: a seccomp profile that refuses write() keeps it from reporting the step that failed'
          : '';
        const err = msg ? startError(msg, plan, spec) : new ContainerStartError('sync', 'EPIPE', undefined, `container init exited during setup${silent}`, 125);
        await this.#abandon(s.fresh);
        destroyStreams();
        throw err;
      }
    }
    if (consoleSocket) {
      try {
        const master = consoleSocket.receive();
        const size = spec.process.consoleSize;
        native.setWinsize(master, size?.height ?? 24, size?.width ?? 80);
        const control = new TerminalControl(master, o.stdin === 'pipe');
        if (outPlan.roles.stdout === 'direct') {
          terminalStreams = { control, stdout: terminalReader(master, o.stdout ?? detachedDefault) };
        } else {
          terminalStreams = { control, stdout: null };
          outputs = startOutputs(containerDir, id, logConfig, outPlan.roles, { stdout: master });
        }
      } catch (e) {
        await this.#abandon(s.fresh);
        destroyStreams();
        throw e;
      }
      this.#terminal = terminalStreams.control;
      this.#output = outputs?.output;
      this.#streams = {
        stdin: terminalStreams.control.input,
        stdout: outputs?.output?.stdout ?? terminalStreams.stdout,
        stderr: null,
      };
    }
    if ((wired || terminal) && !waitForStart) {
      // run(): the program starts at once, now that its network is wired and its terminal set up.
      writeSync(spawned.startFd, 'x');
      safeClose(spawned.startFd);
      owned.startFd = undefined;
    }
    if (outputs && outputs.monitorStreams.length > 0) {
      // A detached container's output outlives this process: its log monitor takes the pipes over.
      try {
        spawnLogMonitor(
          { root: engine.root.path, id, log: logConfig, streams: outputs.monitorStreams, init: state.process, owner },
          outputs.monitorFds,
        );
      } finally {
        outputs.releaseMonitorFds();
      }
    }
    delete state.restarting;
    if (s.fresh) {
      engine.root.writeState(state);
      containerEvent(engine.root.path, state, 'create');
    } else {
      this.#persist();
    }
    if (state.network?.endpoint) {
      const ep = state.network.endpoint;
      recordEvent(engine.root.path, 'network', 'connect', ep.networkId, { name: ep.networkName, container: id, type: 'bridge' });
    }
  }

  /** Re-attaches to an existing container of the state root, by id, unique id prefix, or name. */
  static async get(idOrName: string, options: RootOptions = {}): Promise<Container> {
    const engine = await openEngine(options.root);
    const id = engine.root.resolve(idOrName);
    const state = id ? engine.root.readState(id) : undefined;
    if (!state) throw new ContainerNotFoundError(idOrName);
    const live = ownedContainers.get(state.id);
    if (live && !live.#removed) return live;
    return new Container(engine, state, engine.cgroups.open(state.cgroup), undefined, { stdin: null, stdout: null, stderr: null });
  }

  /** Lists the containers of the state root (running, restarting and created ones; exited too with `all`). */
  static async list(options: RootOptions & { all?: boolean } = {}): Promise<ContainerInfo[]> {
    const engine = await openEngine(options.root);
    const out: ContainerInfo[] = [];
    for (const id of engine.root.listIds()) {
      const state = engine.root.readState(id);
      if (!state) continue;
      const current = reconcile(state);
      const info = infoFromState(engine.root.path, current, current.status === 'running' && isPaused(engine, current));
      if (options.all || info.status !== 'exited' || info.restarting) out.push(info);
    }
    return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  /**
   * The events of the state root (`docker events`): containers created, started, killed, dead, paused, renamed,
   * destroyed; images pulled, tagged and removed; networks created and removed, containers connected. Any process
   * sharing the root sees them. Without `since` only new events come; the iteration ends at `until`, when
   * `signal` aborts, or when the loop breaks. See {@link EventsOptions} for filters.
   */
  static events(options: EventsOptions = {}): AsyncGenerator<BerthEvent> {
    return events(options);
  }

  /** The unique name (generated when not given; changed by {@link Container.rename}). */
  get name(): string {
    return this.#state.name;
  }

  /** Host pid of the container's init (`null` once it exited). */
  get pid(): number | null {
    return this.#state.status === 'exited' ? null : (this.#state.process?.pid ?? null);
  }

  /**
   * Starts the container's program (`docker start`).
   *
   * A created container's init, blocked before execve, is released: only the creating process can do this, or any
   * process for a container made by the `berth` command (its shim starts it when asked).
   *
   * An exited container's process is started again: same id, name, config, writable layer (what it wrote is still
   * there), log (appended to) and labels; a new process, cgroup, stdio (new {@link Container.stdin} /
   * {@link Container.stdout} / {@link Container.stderr} streams) or terminal, and network (its address kept when
   * still free, ports published again). Its owner does it, or — when the owner is gone — this process, which then
   * owns it; a container the `berth` command made is started by its shim (a new one when its shim is gone). As a
   * start by hand in Docker, it resets the restart count. Throws `ContainerStateError` when it runs already, when
   * another live process owns it, or for records made before berth could start a process again;
   * `ContainerStartError` when the new process cannot start.
   */
  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#removed) throw new ContainerNotFoundError(this.name);
    const owned = this.#owned;
    const dir = this.#engine.root.containerDir(this.id);
    if (!owned) {
      if (this.#currentStatus() === 'exited') {
        // A container the berth command made stays with a shim: its own (it starts it in place) or a new one.
        if (madeByShim(dir)) return startThroughShim(this.#engine.root.path, this.id, dir);
        return this.#startAgain(options.signal);
      }
      // A container the berth command made is owned by its shim, which starts it when asked.
      if (hasShim(dir)) return shimStart(dir);
      throw new ContainerStateError(`container ${this.name} was created by process ${this.#state.owner.pid}; only it can start it`);
    }
    if (this.#state.status === 'exited') return this.#startAgain(options.signal);
    if (this.#state.status !== 'created' || owned.startFd === undefined) {
      throw new ContainerStateError(`container ${this.name} is ${this.#state.status}: it is started already`);
    }
    clearStoppedByUser(dir); // a stop asked for while it was created does not outlive this start
    await this.#release(options.signal);
  }

  /** Lets the created init go: the program starts (or its start fails). */
  async #release(signal?: AbortSignal): Promise<void> {
    const owned = this.#owned!;
    try {
      writeSync(owned.startFd!, 'x');
      owned.released = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EPIPE') throw e;
      // The init is gone (killed while created): there is nothing to start.
      safeClose(owned.statusFd);
      owned.statusFd = undefined;
      await this.wait();
      throw new ContainerStateError(`container ${this.name} exited before it was started`);
    } finally {
      safeClose(owned.startFd);
      owned.startFd = undefined;
    }
    await this.#started(signal);
  }

  /** A start by hand of an exited container (in this process): cancels a pending policy restart, starts it now. */
  async #startAgain(signal?: AbortSignal): Promise<void> {
    const previous = this.#owned;
    this.#pendingRestart?.cancel();
    const run = this.#respawn('manual', signal);
    this.#respawning = run.then(() => undefined, () => undefined);
    try {
      await run;
      this.#backoffMs = 0;
      previous?.settleNext?.(true);
    } catch (e) {
      previous?.settleNext?.(false);
      throw e;
    } finally {
      this.#respawning = undefined;
    }
  }

  /**
   * Starts an exited container's process again in this process, which becomes its owner: claims it under the start
   * lock (refused while another live process owns it), lets go of what the previous run left (network, output,
   * death record), sets up rootfs, cgroup, stdio and network anew (`#launch`) and releases the program.
   */
  async #respawn(trigger: 'manual' | 'policy', signal?: AbortSignal): Promise<void> {
    const engine = this.#engine;
    const root = engine.root.path;
    const dir = engine.root.containerDir(this.id);
    const self = selfIdentity();
    let prev!: ContainerState;
    let record!: RespawnRecord;
    try {
      await withStartLock(dir, () => {
        const current = engine.root.readState(this.id);
        if (!current || this.#removed) throw new ContainerNotFoundError(this.name);
        const status = reconcile(current).status;
        const mine = sameProcess(current.owner, self);
        if (trigger === 'policy') {
          // Stopped by a user meanwhile, or not ours to start any more: no restart (and nothing to record).
          if (status !== 'exited' || !mine) throw new RestartCanceled(false);
          if (stoppedByUser(dir)) throw new RestartCanceled(true);
        }
        if (status !== 'exited') throw new ContainerStateError(`container ${current.name} is ${status}: it is started already`);
        if (!mine && isAlive(current.owner)) {
          throw new ContainerStateError(`container ${current.name} belongs to process ${current.owner.pid}, which is alive: only it can start it again`);
        }
        record = requireRespawn(current);
        if (trigger === 'manual') clearStoppedByUser(dir);
        prev = current;
        const { process: _previousProcess, ...rest } = current;
        const claimed: ContainerState = { ...rest, owner: self, restarting: true, ...(trigger === 'manual' ? { restartCount: 0 } : {}) };
        engine.root.writeOwnedState(claimed);
        this.#state = claimed;
      });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ContainerNotFoundError(this.name);
      throw e;
    }
    const state = this.#state;
    ownedContainers.set(this.id, this);
    const undo: (() => void | Promise<void>)[] = [];
    let usernsRootfs: UsernsRootfs | undefined;
    try {
      // What the previous run left: its network (also when a dead owner left it), its output, its death record.
      await this.#networkFreed?.catch(() => undefined);
      await this.#output?.finish();
      this.#terminal?.close();
      await releaseContainerNetwork(root, this.id, prev.network).catch(() => undefined);
      recordDeath(root, prev, { exitCode: prev.exitCode, oomKilled: prev.oomKilled });
      forgetDeath(root, this.id);
      await previousLogWriterDone(dir);

      const same = sameProcess(record.creator, self);
      const o: RespawnRecord['options'] = {
        ...record.options,
        stdin: respawnStdio(record.options.stdin, same),
        stdout: respawnStdio(record.options.stdout, same),
        stderr: respawnStdio(record.options.stderr, same),
      };
      // The image's snapshots are held (shared lock: gc waits) while the overlay is set up on them.
      const releaseSnapshots = state.image ? await new SnapshotStore(root).lock(false) : () => undefined;
      try {
        const lowers = state.image ? snapshotLowers(root, state.image.chainIds, state.image.reference) : undefined;
        if (!lowers) checkRootfs(o.rootfs!);
        let overlay: ReturnType<typeof overlayDirs> | undefined;
        if (state.userns && !record.rawSpec) {
          usernsRootfs = prepareUsernsRootfs(dir, lowers ?? [o.rootfs!], state.userns, lowers ? 'image' : 'lower');
        } else if (lowers) overlay = overlayDirs(dir, lowers);
        // container:<x> joins x's namespace as it is now (x must run).
        const netns = networkNamespace(o, containerLookup(engine));
        const joinedPath = o.network?.startsWith('container:') && typeof netns.namespace === 'object' ? netns.namespace.path : undefined;
        const spec = respawnSpec(state.spec as OciSpec, record, joinedPath);
        // A new cgroup at the same path: nothing of the last run is left in it, and its counters (OOM kills) restart.
        const old = this.#cgroup ?? engine.cgroups.open(state.cgroup);
        await old?.destroy();
        this.#cgroup = engine.cgroups.create(state.cgroup, cgroupResources(spec));
        delete state.exitCode;
        delete state.signal;
        delete state.oomKilled;
        delete state.error;
        state.status = 'created';
        await this.#launch({
          o, spec, joined: netns.joined, userns: state.userns ? { ...state.userns } : undefined, overlay, usernsRootfs,
          rawSpec: record.rawSpec, waitForStart: true, signal, undo, fresh: false, preferredIp: prev.network?.endpoint?.ipAddress,
        });
      } finally {
        releaseSnapshots();
      }
    } catch (e) {
      usernsRootfs?.close();
      for (const f of undo.reverse()) await Promise.resolve().then(f).catch(() => undefined);
      state.status = 'exited';
      delete state.restarting;
      // Nothing ran: the last run's exit stays, and a caller that never got a process does not keep the container.
      if (state.exitCode === undefined) Object.assign(state, { exitCode: prev.exitCode, signal: prev.signal, oomKilled: prev.oomKilled });
      if (!this.#owned) state.owner = prev.owner;
      state.error = (e as Error).message;
      this.#persist();
      throw e;
    }
    await this.#release(signal);
  }

  /**
   * After an exit: the restart policy's decision, its delay and the restart. Resolves what `restarted()` tells, or
   * `'superseded'` when a start, stop or removal cancelled the delay (that one settles it).
   */
  async #afterExit(owned: Owned, exit: ExitInfo): Promise<boolean | 'superseded'> {
    const execd = await owned.startOutcome;
    if (this.#owned !== owned) return 'superseded';
    if (!execd || this.#removed) return false;
    const count = this.#state.restartCount ?? 0;
    const facts = { exitCode: exit.exitCode, manuallyStopped: stoppedByUser(this.#engine.root.containerDir(this.id)), restartCount: count };
    if (!shouldRestart(this.#state.restartPolicy, facts)) return false;
    this.#backoffMs = nextBackoff(this.#backoffMs, Date.now() - owned.startedAtMs);
    this.#state.restartCount = count + 1;
    this.#state.restarting = true;
    this.#persist();
    const dir = this.#engine.root.containerDir(this.id);
    const go = await new Promise<'go' | 'cancelled' | 'stopped'>((resolve) => {
      const end = (how: 'go' | 'cancelled' | 'stopped') => {
        clearTimeout(timer);
        clearInterval(watch);
        this.#pendingRestart = undefined;
        resolve(how);
      };
      const timer = setTimeout(() => end('go'), this.#backoffMs);
      // Another process's stop or removal marks the container: noticed within 50 ms, not only when the delay ends.
      const watch = setInterval(() => stoppedByUser(dir) && end('stopped'), 50);
      // The delay alone does not keep this process alive (wait() and restarted() do): a process that is done
      // takes its containers with it, and a restart now would only be killed again.
      timer.unref();
      watch.unref();
      this.#pendingRestart = { timer, cancel: () => end('cancelled') };
    });
    if (go === 'cancelled') return 'superseded';
    if (go === 'stopped') {
      delete this.#state.restarting;
      this.#persist();
      return false;
    }
    const run = this.#respawn('policy');
    this.#respawning = run.then(() => undefined, () => undefined);
    try {
      await run;
      return true;
    } catch (e) {
      if (!(e instanceof RestartCanceled) || e.record) {
        delete this.#state.restarting;
        if (!(e instanceof RestartCanceled) && !(e instanceof ContainerNotFoundError)) this.#state.error = (e as Error).message;
        this.#persist();
      }
      return false;
    } finally {
      this.#respawning = undefined;
    }
  }

  /**
   * The status once a start under way (here, or by the owner in another process) is over: a stop or removal that
   * marked the container waits for it (a pending restart sees the mark and gives up; one already starting
   * finishes, and is then stopped like any running container). Waits 10 s at most.
   */
  async #statusAfterStart(): Promise<ContainerState['status']> {
    await this.#respawning;
    for (let i = 0; i < 500 && !this.#owned && reconcile(this.#state).restarting; i++) {
      await new Promise((r) => setTimeout(r, 20));
      this.#currentStatus();
    }
    return this.#currentStatus();
  }

  /** Cancels a pending policy restart (a stop, kill or removal): no restart follows the last exit. */
  #abortPendingRestart(): void {
    if (!this.#pendingRestart) return;
    this.#pendingRestart.cancel();
    delete this.#state.restarting;
    this.#persist();
    this.#owned?.settleNext?.(false);
  }

  /**
   * After the program's current (or last) run: waits for its exit, then resolves `true` once the container's
   * program runs again — started by its restart policy, or by a `start()` in this process — and `false` when no
   * restart follows (policy `no`, retries used up, stopped or removed, or the restart failed: see
   * `inspect().error`). Only the owner process knows; elsewhere it throws `ContainerStateError`.
   *
   * ```ts
   * do await c.wait(); while (await c.restarted());
   * ```
   */
  async restarted(options: { signal?: AbortSignal } = {}): Promise<boolean> {
    const owned = this.#owned;
    if (!owned) {
      throw new ContainerStateError(`container ${this.name} is owned by process ${this.#state.owner.pid}: only it knows when it restarts`);
    }
    owned.waiters++;
    owned.poller?.ref();
    try {
      await abortable(owned.exit, options.signal);
    } finally {
      if (--owned.waiters === 0) owned.poller?.unref();
    }
    this.#pendingRestart?.timer.ref();
    return abortable(owned.next!, options.signal);
  }

  /**
   * Restarts the container as `docker restart` does: stops it when it runs (`stop()` with these options: its stop
   * signal, then SIGKILL after `timeout` seconds), then starts it (`start()`: a created container is started, an
   * exited one runs again). Records the `restart` event.
   */
  async restart(options: { timeout?: number; signal?: NodeJS.Signals | number } = {}): Promise<void> {
    if (this.#currentStatus() === 'running') await this.stop(options);
    await this.start();
    const state = this.#owned ? this.#state : (this.#engine.root.readState(this.id) ?? this.#state);
    containerEvent(this.#engine.root.path, state, 'restart');
  }

  /** Waits for the init's verdict after release: execve succeeded (EOF) or failed (an error message). */
  async #started(signal?: AbortSignal): Promise<void> {
    const owned = this.#owned!;
    if (owned.statusFd === undefined) return;
    let msg: StatusMessage | null;
    try {
      msg = await nextStatus(owned.statusFd, signal);
    } catch (e) {
      owned.settleStart(false);
      throw e;
    } finally {
      safeClose(owned.statusFd);
      owned.statusFd = undefined;
    }
    if (owned.startFd !== undefined) {
      // Fast path (run): the init never waited; nothing to release.
      safeClose(owned.startFd);
      owned.startFd = undefined;
    }
    if (msg) {
      owned.settleStart(false);
      const err = msg.kind === 'error' ? startError(msg, owned.plan, this.#state.spec as OciSpec) : undefined;
      await this.wait();
      this.#state.status = 'exited';
      this.#persist();
      throw err ?? new ContainerStartError('sync', 'EPROTO', undefined, 'unexpected message from container init', 125);
    }
    owned.startedAtMs = Date.now();
    this.#state.status = this.#state.status === 'exited' ? 'exited' : 'running';
    this.#state.startedAt = new Date().toISOString();
    this.#persist();
    containerEvent(this.#engine.root.path, this.#state, 'start');
    owned.settleStart(true);
  }

  /**
   * Waits until the container's init exits. A `Container` obtained with `get()` in another process can still
   * wait, but the exit code is then unknown (`-1`): only the creating process can reap the init. While a restart
   * by its policy is pending, the container counts as running (as in Docker): this waits for the next run's exit.
   */
  async wait(options: { signal?: AbortSignal } = {}): Promise<ExitInfo> {
    let owned = this.#owned;
    if (owned) {
      if (this.#state.status === 'exited' && this.#state.restarting && owned.next) {
        this.#pendingRestart?.timer.ref();
        if ((await abortable(owned.next, options.signal)) && this.#owned) owned = this.#owned;
      }
      owned.waiters++;
      owned.poller?.ref();
      try {
        return await abortable(owned.exit, options.signal);
      } finally {
        if (--owned.waiters === 0) owned.poller?.unref();
      }
    }
    let state = reconcile(this.#engine.root.readState(this.id) ?? this.#state);
    // Its owner is starting it again (a policy's delay): wait for that run.
    for (let i = 0; i < 6000 && state.status === 'exited' && state.restarting && isAlive(state.owner); i++) {
      await abortable(new Promise((r) => setTimeout(r, 20)), options.signal);
      state = reconcile(this.#engine.root.readState(this.id) ?? state);
    }
    if (state.status !== 'exited' && state.process && isAlive(state.process)) {
      const fd = native.pidfdOpen(state.process.pid);
      try {
        await readable(fd, options.signal);
      } finally {
        closeSync(fd);
      }
    }
    // The owner (a live process: the creator, or the shim of a container the berth command made) reaps the init
    // and records how it ended; give it a moment, so that other processes learn the real exit status too.
    let after = this.#engine.root.readState(this.id) ?? state;
    for (let i = 0; i < 500 && after.status !== 'exited' && isAlive(after.owner); i++) {
      await new Promise((r) => setTimeout(r, 10));
      const fresh = this.#engine.root.readState(this.id);
      if (!fresh) break;
      after = fresh;
    }
    return { exitCode: after.exitCode ?? -1, signal: after.signal ? signalName(after.signal) : null, oomKilled: after.oomKilled ?? false };
  }

  /**
   * Sends a signal to the container's init (default SIGKILL). Like `docker kill`, refused for a container that
   * is not running (created or exited): a created init would drop it. SIGKILL and the container's stop signal
   * count as a deliberate stop, as in Docker: its restart policy does not start it again.
   */
  async kill(signal: NodeJS.Signals | number = 'SIGKILL'): Promise<void> {
    const n = signalNumber(signal);
    const status = this.#currentStatus();
    if (status === 'created') {
      throw new ContainerStateError(`container ${this.name} is not running (created): start it or remove it`);
    }
    if (status === 'running' && (n === 9 || n === stopSignalNumber(this.#state.stopSignal))) {
      markStoppedByUser(this.#engine.root.containerDir(this.id));
    }
    await this.#signal(n);
    containerEvent(this.#engine.root.path, this.#state, 'kill', { signal: String(n) });
  }

  async #signal(n: number): Promise<void> {
    await this.#sendSignal(n);
    // A frozen process keeps SIGKILL pending (cgroup v1) until thawed: kill means dead now, paused or not.
    if (n === 9 && this.#frozen()) await this.#cgroup!.setFrozen(false).catch(() => undefined);
  }

  #frozen(): boolean {
    try {
      return !this.#removed && (this.#cgroup?.isFrozen() ?? false);
    } catch {
      return false;
    }
  }

  async #sendSignal(n: number): Promise<void> {
    if (this.#owned) {
      if (this.#state.status === 'exited') throw new ContainerStateError(`container ${this.name} is not running`);
      native.pidfdSendSignal(this.#owned.pidfd, n);
      return;
    }
    const state = this.#engine.root.readState(this.id);
    if (!state?.process || !isAlive(state.process)) throw new ContainerStateError(`container ${this.name} is not running`);
    const fd = native.pidfdOpen(state.process.pid);
    try {
      // The pidfd was opened after checking the start time; verify again to close the pid-reuse window.
      if (!isAlive(state.process)) throw new ContainerStateError(`container ${this.name} is not running`);
      native.pidfdSendSignal(fd, n);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Stops the container as `docker stop` does: the stop signal (image/option, default SIGTERM), then SIGKILL
   * after `timeout` seconds (default 10) if it is still running. Resolves with its exit. A deliberate stop: its
   * restart policy does not start it again (a pending restart is cancelled), until it is started by hand.
   */
  async stop(options: { timeout?: number; signal?: NodeJS.Signals | number } = {}): Promise<ExitInfo> {
    markStoppedByUser(this.#engine.root.containerDir(this.id));
    this.#abortPendingRestart();
    const status = await this.#statusAfterStart();
    if (status !== 'running') {
      if (status === 'created') {
        try {
          await this.#signal(9);
        } catch (e) {
          // A created init (or one a start under way just made) is killed; gone already is as good.
          if (!(e instanceof ContainerStateError)) throw e;
        }
      }
      return this.wait();
    }
    const timeout = options.timeout ?? this.#state.stopTimeout;
    try {
      await this.kill(options.signal ?? (this.#state.stopSignal as NodeJS.Signals | number));
    } catch (e) {
      if (!(e instanceof ContainerStateError)) throw e;
    }
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeout * 1000);
    let exit: ExitInfo;
    try {
      exit = await this.wait({ signal: ac.signal });
    } catch (e) {
      if (!(e instanceof AbortError)) throw e;
      await this.#signal(9).then(
        () => containerEvent(this.#engine.root.path, this.#state, 'kill', { signal: '9' }),
        () => undefined,
      );
      exit = await this.wait();
    } finally {
      clearTimeout(timer);
    }
    containerEvent(this.#engine.root.path, this.#state, 'stop');
    return exit;
  }

  /**
   * Removes the container: its cgroup, its record and its name. A running container is refused unless `force`,
   * which kills it first (as `docker rm -f`). Its restart policy does not start it again meanwhile.
   */
  async remove(options: { force?: boolean } = {}): Promise<void> {
    if (this.#removed) return;
    let status = this.#currentStatus();
    if (status === 'running' && !options.force) {
      throw new ContainerStateError(`container ${this.name} is running: stop it first or remove with { force: true }`);
    }
    if (reconcile(this.#state).restarting && !options.force) {
      throw new ContainerStateError(`container ${this.name} is restarting (its restart policy): stop it first or remove with { force: true }`);
    }
    markStoppedByUser(this.#engine.root.containerDir(this.id));
    this.#abortPendingRestart();
    status = await this.#statusAfterStart();
    if (status !== 'exited') {
      await this.#signal(9).then(
        () => status === 'running' && containerEvent(this.#engine.root.path, this.#state, 'kill', { signal: '9' }),
        () => undefined,
      );
      await this.wait();
    }
    this.#removed = true;
    ownedContainers.delete(this.id);
    if (this.#owned) {
      await this.#owned.exit.catch(() => undefined);
      safeClose(this.#owned.statusFd);
      safeClose(this.#owned.startFd);
      this.#owned.statusFd = this.#owned.startFd = undefined;
    }
    await this.#releaseNetwork();
    await this.#output?.finish();
    await this.#cgroup?.destroy();
    // Another process may have renamed it: release the name it has now.
    const current = this.#engine.root.readState(this.id);
    if (current) this.#state.name = current.name;
    // Its death was recorded by its owner, unless the owner is gone (then nobody else will).
    if (current) recordDeath(this.#engine.root.path, current, { exitCode: current.exitCode, oomKilled: current.oomKilled });
    if (this.#engine.root.removeContainerDir(this.id)) containerEvent(this.#engine.root.path, this.#state, 'destroy');
    this.#engine.root.releaseName(this.name, this.id);
  }

  /** The container's recorded state. */
  async inspect(): Promise<ContainerInfo> {
    if (!this.#owned) {
      const fresh = this.#engine.root.readState(this.id);
      if (!fresh) throw new ContainerNotFoundError(this.id);
      this.#state = fresh;
    }
    const state = reconcile(this.#state);
    return infoFromState(this.#engine.root.path, state, state.status === 'running' && this.#frozen());
  }

  /**
   * The container's logged output (`docker logs`): stdout and stderr lines in the order they were read, from the
   * json-file log in its directory, so any process sharing the state root can read them, also after the owner
   * exited. With `follow`, new lines keep coming until the container stops (and its log writer finished).
   * Throws `ContainerStateError` for a container created with `log: { driver: 'none' }`.
   *
   * ```ts
   * for await (const { stream, log } of c.logs({ follow: true, tail: 10 })) process[stream].write(log);
   * ```
   */
  logs(options: LogsOptions = {}): AsyncGenerator<LogEntry> {
    const state = this.#owned ? this.#state : (this.#engine.root.readState(this.id) ?? this.#state);
    const config = state.log;
    if (!config || config.driver === 'none') {
      throw new ContainerStateError(`container ${this.name} was created with logging off (log driver "none"): there is nothing to read`);
    }
    const dir = this.#engine.root.containerDir(this.id);
    return readLogs(dir, this.id, config, options, () => {
      const status = this.#removed ? 'exited' : this.#currentStatus();
      return status === 'exited' && logWriterDone(dir);
    });
  }

  /**
   * The processes running in the container (`docker top`): every process of its cgroup, with the fields `ps -ef`
   * shows (host pids and users). `psTable()` from this module's exports turns them into Docker's table.
   */
  top(): ContainerProcess[] {
    if (this.#currentStatus() !== 'running') throw new ContainerStateError(`container ${this.name} is not running`);
    return processTable(this.#liveCgroup().pids());
  }

  /**
   * Runs another process inside the running container (`docker exec`, without a TTY): it joins the container's
   * namespaces and cgroup and runs with its capabilities, seccomp profile, no_new_privs and rlimits, as the
   * container's user (or `user`), with its env merged with `env`, in its working directory (or `workdir`). Any
   * process sharing the state root may exec, not only the owner. Resolves once the program runs; throws
   * `ContainerStateError` when the container is not running or paused, and `ContainerStartError` with
   * `exitStatus` 127 (not found) or 126 (not executable, bad workdir) when it cannot be started. Its output is not
   * logged. The process dies with the container, and with this process.
   *
   * ```ts
   * const p = await c.exec({ cmd: ['cat', '/etc/hostname'] });
   * p.stdout!.pipe(process.stdout);
   * const { exitCode } = await p.wait();
   * ```
   */
  async exec(options: ExecOptions): Promise<ExecProcess> {
    if (this.#removed || this.#currentStatus() !== 'running') {
      throw new ContainerStateError(`container ${this.name} is not running: start it before exec`);
    }
    if (this.#frozen()) throw new ContainerStateError(`container ${this.name} is paused: unpause it before exec`);
    return execInContainer(this.#engine, this.#state, options);
  }

  /**
   * Sets the size of the container's terminal (`tty: true`; `docker container resize`): its foreground programs
   * get SIGWINCH. Works from the creating process, or from any process for a container made by the `berth`
   * command (through its shim).
   */
  async resize(size: TerminalSize): Promise<void> {
    const parsed = terminalSizeSchema.safeParse(size);
    if (!parsed.success) throw toInvalidOptions('terminal size', parsed.error);
    if (!(this.#state.spec as OciSpec).process.terminal) {
      throw new ContainerStateError(`container ${this.name} has no terminal (create it with tty: true)`);
    }
    if (this.#currentStatus() !== 'running') throw new ContainerStateError(`container ${this.name} is not running`);
    if (this.#terminal) return this.#terminal.resize(parsed.data);
    const dir = this.#engine.root.containerDir(this.id);
    if (!this.#owned && hasShim(dir)) return shimResize(dir, parsed.data);
    throw new ContainerStateError(`container ${this.name} was created by process ${this.#state.owner.pid}; only it holds its terminal`);
  }

  /**
   * Freezes every process of the container (`docker pause`) with the cgroup freezer (v1 `freezer.state`, v2
   * `cgroup.freeze`): they stop being scheduled, without being signalled, until {@link Container.unpause}.
   */
  async pause(): Promise<void> {
    if (this.#currentStatus() !== 'running') throw new ContainerStateError(`container ${this.name} is not running`);
    const cgroup = this.#liveCgroup();
    if (cgroup.isFrozen()) throw new ContainerStateError(`container ${this.name} is already paused`);
    await cgroup.setFrozen(true);
    containerEvent(this.#engine.root.path, this.#state, 'pause');
  }

  /** Thaws a paused container (`docker unpause`). */
  async unpause(): Promise<void> {
    const cgroup = this.#liveCgroup();
    if (this.#currentStatus() !== 'running' || !cgroup.isFrozen()) throw new ContainerStateError(`container ${this.name} is not paused`);
    await cgroup.setFrozen(false);
    containerEvent(this.#engine.root.path, this.#state, 'unpause');
  }

  /** Whether the container is paused (its cgroup frozen). */
  get paused(): boolean {
    return this.#frozen();
  }

  /**
   * Gives the container another name (`docker rename`), in the state root and on its network (other containers'
   * hosts files). Throws `NameConflictError` when another container has the name.
   */
  async rename(newName: string): Promise<void> {
    const parsed = containerNameSchema.safeParse(newName);
    if (!parsed.success) throw toInvalidOptions('name', parsed.error);
    const current = this.#engine.root.readState(this.id);
    if (!current || this.#removed) throw new ContainerNotFoundError(this.name);
    if (current.name === newName) throw new ContainerStateError(`container ${newName} already has this name: give another one`);
    const old = this.#engine.root.renameContainer(this.id, newName);
    this.#state.name = newName;
    await renameContainerNetwork(this.#engine.root.path, this.id, current.network, old, newName).catch(() => undefined);
    containerEvent(this.#engine.root.path, this.#state, 'rename', { oldName: old });
  }

  #liveCgroup(): Cgroup {
    if (!this.#cgroup || this.#removed) throw new ContainerStateError(`container ${this.name} has no cgroup (removed?)`);
    return this.#cgroup;
  }

  /** Memory, CPU and pids usage from the container's cgroup. */
  stats(): CgroupStats {
    if (!this.#cgroup || this.#removed) throw new ContainerStateError(`container ${this.name} has no cgroup (removed?)`);
    return this.#cgroup.stats();
  }

  /** Removes the container, killing it if needed (`await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const s of [this.stdin, this.stdout, this.stderr]) s?.destroy();
    await this.remove({ force: true });
  }

  #currentStatus(): ContainerState['status'] {
    if (this.#owned) return this.#state.status;
    const state = this.#engine.root.readState(this.id);
    if (state) this.#state = state;
    return reconcile(this.#state).status;
  }

  #persist(): void {
    if (this.#removed) return;
    try {
      this.#engine.root.writeOwnedState(this.#state);
    } catch (e) {
      // The names lock stayed busy (another process stuck holding it): record the state anyway, as before renames
      // existed, rather than lose an exit status.
      if ((e as { code?: string }).code !== 'ERR_LOCK_TIMEOUT') throw e;
      this.#engine.root.writeState(this.#state);
    }
  }

  /** Observes the init's exit on a pidfd; records it once. */
  #watchExit(): Promise<ExitInfo> {
    const owned = this.#owned!;
    ownedContainers.set(this.id, this);
    return new Promise<ExitInfo>((resolve) => {
      const poller = native.onReadable(owned.pidfd, () => {
        owned.poller = undefined;
        const status = native.waitid(owned.pidfd) ?? { exitCode: -1, signal: 0 };
        safeClose(owned.pidfd);
        const oomKilled = this.#cgroup ? safeOom(this.#cgroup) : false;
        const exit: ExitInfo = { exitCode: status.exitCode, signal: signalName(status.signal), oomKilled };
        Object.assign(this.#state, {
          status: 'exited',
          finishedAt: new Date().toISOString(),
          exitCode: status.exitCode,
          signal: status.signal,
          oomKilled,
        });
        this.#persist();
        this.#terminal?.close();
        recordDeath(this.#engine.root.path, this.#state, exit);
        // Ports close and the address is freed when the container stops (as Docker); remove() awaits it.
        void this.#releaseNetwork();
        if (!owned.released) owned.settleStart(false);
        // Its restart policy decides (after the start's outcome is known) whether it runs again.
        owned.next = new Promise<boolean>((settle) => (owned.settleNext = settle));
        void this.#afterExit(owned, exit).then(
          (again) => again !== 'superseded' && owned.settleNext!(again),
          () => owned.settleNext!(false),
        );
        resolve(exit);
      });
      // Watching alone does not keep Node alive: only wait() does. A process that exits without waiting takes
      // its (non-detached) containers with it through the parent death signal.
      poller.unref();
      owned.poller = poller;
    });
  }

  /**
   * Closes published ports (once; the exit and remove() both ask) and starts freeing the network address. Deleting
   * a veth takes the kernel ~15 ms, so that part finishes in the background (it keeps the process alive until
   * done); the address is only handed out again once its veth is gone.
   */
  #releaseNetwork(): Promise<void> {
    this.#networkReleased ??= (async () => {
      await this.#networking?.closePorts();
      const ep = this.#state.network?.endpoint;
      // A start of the process again waits for all of it (#networkFreed).
      this.#networkFreed = releaseContainerNetwork(this.#engine.root.path, this.id, this.#state.network).then(
        () => void (ep && recordEvent(this.#engine.root.path, 'network', 'disconnect', ep.networkId, { name: ep.networkName, container: this.id, type: 'bridge' })),
        () => undefined,
      );
    })();
    return this.#networkReleased;
  }

  /**
   * Setup failed or was aborted: kill the init, reap it, drop everything (`forget`: the container is being created,
   * so it is forgotten; else it stays, exited).
   */
  async #abandon(forget: boolean): Promise<void> {
    const owned = this.#owned!;
    owned.settleStart(false);
    try {
      native.pidfdSendSignal(owned.pidfd, 9);
    } catch {
      // already gone
    }
    owned.poller?.ref();
    await owned.exit;
    safeClose(owned.statusFd);
    safeClose(owned.startFd);
    owned.statusFd = owned.startFd = undefined;
    if (!forget) return;
    this.#removed = true;
    ownedContainers.delete(this.id);
  }
}

/** The log settings from the options, with berth's defaults (see DEFAULT_LOG_CONFIG). */
function logConfigOf(log: ValidContainerOptions['log']): LogConfig {
  return {
    driver: log?.driver ?? DEFAULT_LOG_CONFIG.driver,
    maxSize: log?.maxSize ?? DEFAULT_LOG_CONFIG.maxSize,
    maxFile: log?.maxFile ?? DEFAULT_LOG_CONFIG.maxFile,
  };
}

/** Calls the executor; a failure of clone3 itself (before any container code ran) becomes a BerthError. */
function spawnOrExplain(plan: NativePlan): ReturnType<typeof native.spawn> {
  try {
    return native.spawn(plan);
  } catch (e) {
    const err = e as Error & { errno?: number; syscall?: string };
    if (err.errno === undefined) throw e;
    const name = errnoName(err.errno);
    const hint = name === 'EPERM'
      ? ': creating namespaces needs root (CAP_SYS_ADMIN); run as root'
      : name === 'ENOSPC' || name === 'EAGAIN'
        ? ': the host is out of namespaces or processes (check user.max_*_namespaces and pid limits)'
        : '';
    throw new ContainerStartError(err.syscall ?? 'spawn', name, undefined, `cannot start the container init: ${err.syscall}: ${describeErrno(err.errno)}${hint}`, 125);
  }
}

/** Containers created by this process, so `get()` returns the object that can reap them. */
const ownedContainers = new Map<string, Container>();

function safeOom(cgroup: Cgroup): boolean {
  try {
    return cgroup.oomKilled();
  } catch {
    return false;
  }
}

function checkRootfs(rootfs: string): void {
  let st;
  try {
    st = statSync(rootfs);
  } catch {
    throw new RootfsError(`rootfs ${rootfs} does not exist`);
  }
  if (!st.isDirectory()) throw new RootfsError(`rootfs ${rootfs} is not a directory`);
}

/** A record's status corrected by what the kernel says (an owner may have died without writing "exited"). */
function reconcile(state: ContainerState): ContainerState {
  if (ownedContainers.has(state.id)) return state;
  if (state.status !== 'exited' && state.process && !isAlive(state.process)) {
    return { ...state, status: 'exited', restarting: false };
  }
  // Nobody is left to start it again.
  if (state.restarting && !isAlive(state.owner)) return { ...state, restarting: false };
  return state;
}

/** Whether a running container's cgroup is frozen. */
function isPaused(engine: Engine, s: ContainerState): boolean {
  try {
    return engine.cgroups.open(s.cgroup)?.isFrozen() ?? false;
  } catch {
    return false;
  }
}

/** A record's ports, unless the process that served them (the owner) is gone. */
function withoutDeadPorts(network: ContainerNetworkRecord | null, s: ContainerState): ContainerNetworkRecord | null {
  if (!network?.ports?.length || isAlive(s.owner)) return network;
  return { ...network, ports: [] };
}

function infoFromState(root: string, s: ContainerState, paused: boolean): ContainerInfo {
  const spec = s.spec as OciSpec;
  return {
    id: s.id,
    name: s.name,
    status: s.status,
    paused,
    pid: s.status === 'exited' ? null : (s.process?.pid ?? null),
    createdAt: s.createdAt,
    startedAt: s.startedAt ?? null,
    finishedAt: s.finishedAt ?? null,
    exitCode: s.exitCode ?? null,
    oomKilled: s.oomKilled ?? false,
    detached: s.detached,
    ownerPid: s.owner.pid,
    rootfs: spec.root.path,
    command: programArgs(spec, s.init),
    labels: s.labels,
    tty: spec.process.terminal === true,
    openStdin: s.openStdin ?? false,
    image: s.image?.reference ?? null,
    exposedPorts: s.image?.exposedPorts ?? [],
    volumes: s.image?.volumes ?? [],
    cgroup: s.cgroup,
    userns: s.userns ? { uidMap: s.userns.uidMap, gidMap: s.userns.gidMap, auto: s.userns.auto } : null,
    // Published ports are served by the owner: gone with it.
    network: withoutDeadPorts(networkInfo(root, s.id, s.network), s),
    log: s.log ?? { driver: 'none', maxSize: 0, maxFile: 1 },
    init: s.init ?? false,
    restartPolicy: s.restartPolicy ?? { ...NO_RESTART },
    restartCount: s.restartCount ?? 0,
    restarting: s.restarting ?? false,
    error: s.error ?? '',
    spec,
  };
}

