/**
 * `docker exec` without a TTY: a new process inside a running container. It joins the container's namespaces
 * (setns from berth-init; the pid namespace by the parent around clone3) and its cgroup, and runs with the
 * container's security settings (capabilities, no_new_privs, the same seccomp program, rlimits). Nothing is
 * mounted and nothing of the container is re-created: the plan only says which namespaces and cgroup to join and
 * how to run the program. Its output is not logged (Docker does not log exec output either).
 * @module
 */
import { constants as fsConstants, openSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join, posix } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { z } from 'zod';
import { AbortError, ContainerStartError, ContainerStateError, InvalidOptionsError } from '../errors.js';
import { native, type NativePlan, type StatusMessage } from '../native.js';
import { CgroupV1Driver, CgroupV2Driver } from './cgroup/index.js';
import { CGROUP_PARENT, type Engine } from './engine.js';
import { terminalSizeSchema, toInvalidOptions } from './options.js';
import { planFromSpec } from './plan.js';
import type { OciSpec } from './spec.js';
import { isAlive, type ContainerState } from './state.js';
import { prepareStdio, safeClose } from './stdio.js';
import { resolveUser } from './user.js';
import { checkTerminalStdio, ConsoleSocket, TerminalControl, terminalReader, type TerminalSize } from './terminal.js';

/** Where one of the exec'd process's streams goes: a pipe (a Node stream), /dev/null, this process's own, or an fd. */
export type ExecStdio = 'pipe' | 'ignore' | 'inherit' | number;

/** What to run with {@link Container.exec}. */
export interface ExecOptions {
  /** The program and its arguments; the program is looked up in the container's PATH (its env merged with `env`). */
  cmd: string[];
  /** Added to (and overriding) the container's environment: `KEY=value` strings or an object. */
  env?: string[] | Record<string, string>;
  /** `user`, `uid`, `user:group` or `uid:gid`, resolved against the container's /etc/passwd and /etc/group. Default: the container's user. */
  user?: string;
  /** Absolute working directory inside the container (must exist). Default: the container's. */
  workdir?: string;
  /** Default `'ignore'` (/dev/null); `'pipe'` gives a writable {@link ExecProcess.stdin}. */
  stdin?: ExecStdio;
  /** Default `'pipe'`. */
  stdout?: ExecStdio;
  /** Default `'pipe'`. */
  stderr?: ExecStdio;
  /**
   * A pseudo-terminal (`docker exec -t`), opened in the container's devpts: it is the process's stdin, stdout,
   * stderr and controlling terminal. {@link ExecProcess.stdout} is its output (stderr included),
   * {@link ExecProcess.stdin} types into it when `stdin: 'pipe'`. stdio options other than `'pipe'` and
   * `'ignore'` are refused with it. `TERM=xterm` is set unless the environment has TERM.
   */
  tty?: boolean;
  /** The terminal's size when the process starts (default 24 × 80). */
  consoleSize?: TerminalSize;
  /**
   * Keeps running after this process exits (`docker exec -d`); by default an exec'd process dies with the process
   * that started it. It still dies with the container. Its stdio must not be `'pipe'` (no one would read it).
   */
  detached?: boolean;
  /** Kills the process (SIGKILL) when aborted. */
  signal?: AbortSignal;
}

/** How an exec'd process ended. */
export interface ExecExit {
  /** Its exit status, or 128 + signal number when a signal killed it. */
  exitCode: number;
  /** The signal that killed it, or `null`. */
  signal: NodeJS.Signals | null;
}

/** A process started by {@link Container.exec}. */
export interface ExecProcess {
  /** Host pid of the process. */
  readonly pid: number;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** Resolves when the process exits (it dies with the container, or when its `signal` aborts). */
  wait(): Promise<ExecExit>;
  /** Sends a signal (default SIGKILL); a no-op once it exited. */
  kill(signal?: NodeJS.Signals | number): void;
  /** Sets the terminal's size (`tty: true`); its foreground programs get SIGWINCH. */
  resize(size: TerminalSize): void;
}

const stdioSchema = z.union([z.enum(['pipe', 'ignore', 'inherit']), z.number().int().nonnegative()]);
const execSchema = z
  .object({
    cmd: z.array(z.string().refine((s) => !s.includes('\0'), 'must not contain NUL bytes')).min(1, 'give the program to run'),
    env: z
      .union([
        z.array(z.string().regex(/^[^=\0]+=[^\0]*$/, 'must look like KEY=value')),
        z.record(z.string().regex(/^[^=\0]+$/, 'must not contain "="'), z.string().refine((s) => !s.includes('\0'), 'must not contain NUL bytes')),
      ])
      .optional(),
    user: z.string().min(1).regex(/^[^\0:]+(:[^\0:]+)?$/, 'must be user, uid, user:group or uid:gid').optional(),
    workdir: z.string().refine((s) => s.startsWith('/') && !s.includes('\0'), 'must be an absolute path').optional(),
    stdin: stdioSchema.optional(),
    stdout: stdioSchema.optional(),
    stderr: stdioSchema.optional(),
    tty: z.boolean().optional(),
    consoleSize: terminalSizeSchema.optional(),
    detached: z.boolean().optional(),
    signal: z.instanceof(AbortSignal).optional(),
  })
  .strict();

/** /proc/<pid>/ns names of the OCI namespace types. */
const NS_FILES: Record<string, string> = {
  mount: 'mnt', uts: 'uts', ipc: 'ipc', network: 'net', pid: 'pid', cgroup: 'cgroup', user: 'user', time: 'time',
};

/** The container's env with `extra` merged in: a key given again replaces the container's value in place. */
export function mergeEnv(base: readonly string[], extra: ExecOptions['env']): string[] {
  const list = Array.isArray(extra) ? extra : Object.entries(extra ?? {}).map(([k, v]) => `${k}=${v}`);
  const out = [...base];
  for (const entry of list) {
    const key = entry.slice(0, entry.indexOf('='));
    const i = out.findIndex((e) => e.slice(0, e.indexOf('=')) === key);
    if (i >= 0) out[i] = entry;
    else out.push(entry);
  }
  return out;
}

/**
 * The spec the exec'd process runs with: the container's process settings (caps, rlimits, no_new_privs, umask)
 * and seccomp profile, with its own args, env, user and cwd, and nothing that would build a container (no
 * namespaces to create, no mounts, no hostname, no sysctls).
 */
function execSpec(spec: OciSpec, process: OciSpec['process']): OciSpec {
  return {
    ociVersion: spec.ociVersion,
    root: { path: spec.root.path },
    process,
    linux: { namespaces: [], ...(spec.linux?.seccomp ? { seccomp: spec.linux.seccomp } : {}) },
  } as OciSpec;
}

/** The fds that put a process into the container's cgroup: v2 a directory fd for CLONE_INTO_CGROUP, v1 cgroup.procs files. */
function openCgroup(engine: Engine, state: ContainerState): { dirFd?: number; procsFds: number[] } {
  const drv = engine.cgroups;
  if (drv instanceof CgroupV2Driver) {
    return { dirFd: openSync(join(drv.mountPoint, CGROUP_PARENT, state.cgroup), fsConstants.O_RDONLY | fsConstants.O_DIRECTORY), procsFds: [] };
  }
  const fds: number[] = [];
  try {
    const hierarchies = drv instanceof CgroupV1Driver ? drv.hierarchies : engine.hierarchies;
    for (const h of hierarchies) fds.push(openSync(join(h.mountPoint, CGROUP_PARENT, state.cgroup, 'cgroup.procs'), fsConstants.O_WRONLY));
  } catch (e) {
    for (const fd of fds) safeClose(fd);
    throw new ContainerStateError(`cannot join the cgroup of container ${state.name}: ${(e as Error).message}`);
  }
  return { procsFds: fds };
}

const SIGNALS = osConstants.signals as Record<string, number>;
const signalName = (n: number) => (n ? ((Object.keys(SIGNALS).find((k) => SIGNALS[k] === n) as NodeJS.Signals) ?? null) : null);
const ERRNO_NAMES = new Map(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));

/** The init's status message for a failed exec, as `docker exec` reports it (126 not executable, 127 not found). */
function execError(msg: StatusMessage, plan: NativePlan, program: string): ContainerStartError {
  const err = ERRNO_NAMES.get(msg.errno) ?? `errno ${msg.errno}`;
  if (msg.step === 'exec') {
    if (msg.errno === 2 && msg.index < 0) {
      const text = program.includes('/')
        ? `exec: "${program}": no such file or directory`
        : `exec: "${program}": executable file not found in $PATH`;
      return new ContainerStartError('exec', err, program, text, 127);
    }
    const path = plan.execCandidates[msg.index] ?? program;
    const why = msg.errno === 13 ? 'permission denied' : msg.errno === 8 ? 'exec format error' : err;
    return new ContainerStartError('exec', err, path, `exec: "${path}": ${why}`, msg.errno === 2 ? 127 : 126);
  }
  const target = msg.step === 'chdir' ? plan.cwd : undefined;
  const text = `exec failed: ${msg.step}${target ? ` ${target}` : ''}: ${err}`;
  // A missing working directory is the user's mistake in docker's eyes too (exit 126 there: the runtime failed).
  return new ContainerStartError(msg.step, err, target, text, msg.step === 'chdir' ? 126 : 125);
}

/** Reads the next status message: a message, or null at EOF (execve succeeded). */
async function nextStatus(fd: number): Promise<StatusMessage | null> {
  for (;;) {
    const m = native.readStatus(fd);
    if (m !== undefined) return m;
    await new Promise<void>((resolve, reject) => {
      const poller = native.onReadable(fd, (status) => {
        poller.close();
        if (status < 0) reject(new Error(`poll failed: ${status}`));
        else resolve();
      });
    });
  }
}

/**
 * Starts `options.cmd` inside the running container `state` (the caller checked it runs). Resolves once the
 * program was exec'd; throws `ContainerStartError` (exitStatus 126/127/125) when it could not be.
 */
export async function execInContainer(engine: Engine, state: ContainerState, options: ExecOptions): Promise<ExecProcess> {
  const parsed = execSchema.safeParse(options);
  if (!parsed.success) throw toInvalidOptions('exec options', parsed.error);
  const o = parsed.data;
  if (o.signal?.aborted) throw new AbortError();
  const init = state.process;
  const notRunning = () => new ContainerStateError(`container ${state.name} is not running: start it before exec`);
  if (!init || !isAlive(init)) throw notRunning();
  const spec = state.spec as OciSpec;
  const procRoot = `/proc/${init.pid}`;

  const user = o.user !== undefined
    ? resolveUser(`${procRoot}/root`, o.user)
    : { uid: spec.process.user.uid, gid: spec.process.user.gid, additionalGids: spec.process.user.additionalGids ?? [] };
  if (o.tty) checkTerminalStdio(o);
  if (o.detached && (o.tty || [o.stdin, o.stdout ?? 'pipe', o.stderr ?? 'pipe'].includes('pipe'))) {
    throw new InvalidOptionsError('exec options', [{ path: 'detached', message: "a detached exec has no terminal and no 'pipe' stdio: give 'ignore', 'inherit' or an fd" }]);
  }
  let env = mergeEnv(spec.process.env ?? [], o.env);
  if (o.tty && !env.some((e) => e.startsWith('TERM='))) env = [...env, 'TERM=xterm'];
  const process: OciSpec['process'] = {
    ...spec.process,
    terminal: o.tty ?? false,
    args: o.cmd,
    env,
    cwd: o.workdir ? posix.normalize(o.workdir) : spec.process.cwd,
    user: { ...spec.process.user, uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
  };

  // The init's namespaces, opened while its identity is checked on both sides (no pid reuse in between). User
  // last: the host's root joins the others with its own privileges, then becomes the container's root.
  const types = (spec.linux?.namespaces ?? []).map((n) => n.type).filter((t) => NS_FILES[t]);
  const ordered = [...types.filter((t) => t !== 'user'), ...types.filter((t) => t === 'user')];
  const nsFds: { type: string; fd: number }[] = [];
  let cgroup: { dirFd?: number; procsFds: number[] } | undefined;
  let stdio: ReturnType<typeof prepareStdio> | undefined;
  let consoleSocket: ConsoleSocket | undefined;
  let spawned: ReturnType<typeof native.spawn>;
  let plan: NativePlan;
  try {
    for (const t of ordered) nsFds.push({ type: t, fd: openSync(`${procRoot}/ns/${NS_FILES[t]}`, fsConstants.O_RDONLY) });
    cgroup = openCgroup(engine, state);
    if (!isAlive(init)) throw notRunning();
    stdio = prepareStdio(o.tty ? ['ignore', 'ignore', 'ignore'] : [o.stdin ?? 'ignore', o.stdout ?? 'pipe', o.stderr ?? 'pipe']);
    if (o.tty) consoleSocket = new ConsoleSocket();
    plan = planFromSpec(execSpec(spec, process), {
      cgroupVersion: engine.cgroups.version,
      cgroupHierarchies: [],
      ...(cgroup.dirFd !== undefined ? { cgroupDirFd: cgroup.dirFd } : {}),
      cgroupProcsFds: cgroup.procsFds,
      namespaceFds: nsFds,
      stdioFds: stdio.childFds,
      // The exec'd process dies with the process that started it, as a container does with its owner, unless
      // detached: then it is reparented to the host's init (or subreaper), which reaps it.
      parentDeathSignal: o.detached ? 0 : 9,
      waitForStart: false,
      seccompCacheDir: join(engine.root.path, 'seccomp-cache'),
      ...(consoleSocket ? { consoleSocketFd: consoleSocket.child } : {}),
    });
    try {
      spawned = native.spawn(plan);
    } catch (e) {
      // clone3 into a pid namespace whose init just died fails (ENOMEM): say what happened.
      if (!isAlive(init)) throw notRunning();
      const err = e as Error & { errno?: number; syscall?: string };
      if (err.errno === undefined) throw e;
      const name = ERRNO_NAMES.get(err.errno) ?? `errno ${err.errno}`;
      throw new ContainerStartError(err.syscall ?? 'spawn', name, undefined, `cannot start the exec'd process: ${err.syscall}: ${name}`, 125);
    }
  } catch (e) {
    if (stdio) {
      for (const s of [stdio.stdin, stdio.stdout, stdio.stderr]) s?.destroy();
      for (const fd of stdio.closeOnFailure) safeClose(fd);
    }
    consoleSocket?.close();
    throw e;
  } finally {
    for (const n of nsFds) safeClose(n.fd);
    safeClose(cgroup?.dirFd);
    for (const fd of cgroup?.procsFds ?? []) safeClose(fd);
    for (const fd of stdio?.closeAfterSpawn ?? []) safeClose(fd);
    consoleSocket?.closeChild();
  }
  safeClose(spawned.startFd);
  const streams = stdio!;

  let exited = false;
  let poller: { ref(): void; unref(): void; close(): void } | undefined;
  const exit = new Promise<ExecExit>((resolve) => {
    poller = native.onReadable(spawned.pidfd, () => {
      poller?.close();
      poller = undefined;
      const status = native.waitid(spawned.pidfd) ?? { exitCode: -1, signal: 0 };
      exited = true;
      safeClose(spawned.pidfd);
      o.signal?.removeEventListener('abort', onAbort);
      resolve({ exitCode: status.exitCode, signal: signalName(status.signal) });
    });
  });
  const kill = (signal: NodeJS.Signals | number = 'SIGKILL') => {
    if (exited) return;
    const n = typeof signal === 'number' ? signal : SIGNALS[signal.toUpperCase().startsWith('SIG') ? signal.toUpperCase() : `SIG${signal.toUpperCase()}`];
    if (n === undefined) throw new ContainerStateError(`unknown signal "${signal}"`);
    try {
      native.pidfdSendSignal(spawned.pidfd, n);
    } catch {
      // already gone
    }
  };
  const onAbort = () => kill('SIGKILL');
  o.signal?.addEventListener('abort', onAbort, { once: true });

  let msg: StatusMessage | null;
  try {
    msg = await nextStatus(spawned.statusFd);
  } finally {
    safeClose(spawned.statusFd);
  }
  if (msg) {
    await exit;
    consoleSocket?.close();
    for (const s of [streams.stdin, streams.stdout, streams.stderr]) s?.destroy();
    throw msg.kind === 'error'
      ? execError(msg, plan, o.cmd[0]!)
      : new ContainerStartError('sync', 'EPROTO', undefined, 'unexpected message from the exec init', 125);
  }
  if (o.signal?.aborted) {
    await exit;
    consoleSocket?.close();
    throw new AbortError();
  }
  // The terminal's master was sent before the exec that the status pipe just reported.
  let terminal: { control: TerminalControl; output: Readable | null } | undefined;
  if (consoleSocket) {
    try {
      const master = consoleSocket.receive();
      native.setWinsize(master, o.consoleSize?.rows ?? 24, o.consoleSize?.columns ?? 80);
      const control = new TerminalControl(master, o.stdin === 'pipe');
      terminal = { control, output: terminalReader(master, o.stdout ?? 'pipe') };
      void exit.then(() => control.close());
    } catch (e) {
      kill('SIGKILL');
      await exit;
      throw e;
    }
  }
  return {
    pid: spawned.pid,
    stdin: terminal ? terminal.control.input : streams.stdin,
    stdout: terminal ? terminal.output : streams.stdout,
    stderr: terminal ? null : streams.stderr,
    wait: () => exit,
    kill,
    resize(size: TerminalSize) {
      if (!terminal) throw new ContainerStateError('this process has no terminal (exec it with tty: true)');
      const parsed = terminalSizeSchema.safeParse(size);
      if (!parsed.success) throw toInvalidOptions('terminal size', parsed.error);
      if (!exited) terminal.control.resize(parsed.data);
    },
  };
}
