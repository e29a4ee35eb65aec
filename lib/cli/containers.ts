/**
 * Container commands: run, create, start, stop, kill, restart, rm, ps, logs, top, pause, unpause, rename.
 * @module
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Container } from '../container/container.js';
import { ContainerStartError, ContainerStateError } from '../errors.js';
import { hasShim, launchShim, ShimGoneError, shimAttach, shimResize } from '../container/shim/shim.js';
import { DEFAULT_DETACH_KEYS, openSession, parseDetachKeys } from './terminal-session.js';
import { psTable } from '../container/top.js';
import { execCommand } from './exec.js';
import { portCommand, waitCommand } from './container-queries.js';
import { Flags, UsageError, type FlagSpec } from './args.js';
import type { Command, Context } from './command.js';
import { eachArg, ensureImage, printError } from './common.js';
import { CONTAINER_FLAGS, containerOptionsFromFlags } from './container-flags.js';
import { alignTable, formatRows } from './format.js';
import { psRow, PS_TABLE } from './views.js';
import { stateText } from './human.js';

/** Signals `berth run` passes on to the container (docker's sig-proxy: all but those about the CLI itself). */
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

async function get(ctx: Context, idOrName: string): Promise<Container> {
  return Container.get(idOrName, { root: ctx.config().root });
}

/** Passes signals this process receives to the container until the returned function is called. */
function forwardSignals(ctx: Context, id: string): () => void {
  const handlers = FORWARDED.map((sig) => {
    const h = () => {
      void get(ctx, id).then((c) => c.kill(sig)).catch(() => undefined);
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  return () => {
    for (const [sig, h] of handlers) process.off(sig, h);
  };
}

/** How a command attaches to a container. */
interface AttachSpec {
  /** Start it right after attaching (`run`, `start -a` of a created container). */
  start: boolean;
  /** Its terminal (`-t`): this terminal goes raw and passes its size on; signals are not proxied (keys do it). */
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  proxySignals: boolean;
  detachKeys: Buffer;
}

/** Reads `--detach-keys` (docker's default ctrl-p,ctrl-q). */
function detachKeysOf(ctx: Context, f: Flags, command: string): Buffer {
  return parseDetachKeys(f.string('detach-keys') ?? ctx.config().detachKeys ?? DEFAULT_DETACH_KEYS, command);
}

/**
 * Attaches to a container through its shim and (with `start`) starts it: its output goes to this process's
 * stdout/stderr, this process's stdin to it (with `stdin`), signals go to it, and the result is docker's exit
 * status — the container's exit code, or 126 / 127 when its program could not be executed. Detaching (the
 * detach keys) leaves it running and returns 0.
 */
async function attachAndWait(ctx: Context, id: string, label: string, spec: AttachSpec): Promise<number> {
  const dir = join(ctx.config().root, 'containers', id);
  const stopForwarding = spec.proxySignals && !spec.tty ? forwardSignals(ctx, id) : () => undefined;
  const session = openSession(ctx, {
    tty: spec.tty,
    stdin: spec.stdin,
    detachKeys: spec.detachKeys,
    onResize: (size) => void shimResize(dir, size).catch(() => undefined),
  });
  try {
    const outcome = await shimAttach(dir, {
      start: spec.start,
      stdout: spec.stdout ? ctx.stdout : null,
      stderr: spec.stderr ? ctx.stderr : null,
      stdin: session.input,
      detach: session.detach,
      onStarted: () => {
        // The size may have changed since create.
        const size = session.size();
        if (size) void shimResize(dir, size).catch(() => undefined);
      },
    });
    if (outcome.detached) return 0;
    if (outcome.startError) {
      ctx.stderr.write(`${label}: ${outcome.startError.message}.\n`);
      return outcome.startError instanceof ContainerStartError ? outcome.startError.exitStatus : 125;
    }
    if (!outcome.exit) {
      ctx.stderr.write(`${label}: lost the connection to the container's shim; it may still be running (berth ps)\n`);
      return 125;
    }
    return outcome.exit.exitCode;
  } finally {
    session.close();
    stopForwarding();
  }
}

/** docker refuses `-i` with `-t` when stdin is not a terminal: raw keys cannot come from a pipe. */
function checkInputIsTerminal(ctx: Context, tty: boolean, stdin: boolean): void {
  if (tty && stdin && !ctx.stdin.isTTY) throw new InputNotTerminalError();
}

/** Prints why an attach cannot be made (docker's way for each) and returns its status, 1. */
function attachRefused(ctx: Context, e: unknown): number {
  if (e instanceof InputNotTerminalError) ctx.stderr.write(`${e.message}\n`);
  else printError(ctx, e);
  return 1;
}

/** `the input device is not a TTY` (docker's exit status 1). */
class InputNotTerminalError extends Error {
  constructor() {
    super('the input device is not a TTY');
  }
}

/** Waits (a bounded time) until a container's directory is gone. */
async function removed(dir: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (existsSync(dir) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/** `run` and `create`: flags to options, the image, then a shim that owns the container. */
async function createContainer(ctx: Context, f: Flags, args: string[], mode: 'create' | 'run' | 'detach'): Promise<number> {
  const label = 'berth';
  const command = mode === 'create' ? 'berth create' : 'berth run';
  const plan = containerOptionsFromFlags(f, args, ctx.config(), ctx.env, command);
  const tty = plan.options.tty === true;
  if (tty && ctx.stdout.isTTY) {
    const out = ctx.stdout as { rows?: number; columns?: number };
    if (out.rows && out.columns) plan.options.consoleSize = { rows: out.rows, columns: out.columns };
  }
  try {
    if (mode === 'run') checkInputIsTerminal(ctx, tty, plan.attach.stdin);
    const image = await ensureImage(ctx, plan.image, plan.pull, plan.platform);
    const options = { ...plan.options, image: image.reference, pull: 'never' as const };
    if (plan.publishAll) {
      const exposed = Object.keys(image.config.config?.ExposedPorts ?? {});
      const published = exposed.map((p) => {
        const [port, proto = 'tcp'] = p.split('/');
        return { container: Number(port), protocol: proto as 'tcp' | 'udp' };
      });
      options.ports = [...(options.ports ?? []), ...published];
    }
    const launched = await launchShim({
      root: ctx.config().root, options, start: mode === 'detach', autoRemove: plan.autoRemove,
      // docker run -i in the foreground: the container's stdin ends with this command's.
      stdinOnce: mode === 'run' && plan.attach.stdin,
    });
    if (mode === 'create') {
      ctx.stdout.write(`${launched.id}\n`);
      return 0;
    }
    if (mode === 'detach') {
      if (launched.startError) {
        ctx.stderr.write(`${label}: ${launched.startError.message}.\n`);
        return launched.startError instanceof ContainerStartError ? launched.startError.exitStatus : 125;
      }
      ctx.stdout.write(`${launched.id}\n`);
      return 0;
    }
    const status = await attachAndWait(ctx, launched.id, label, {
      start: true, tty, ...plan.attach, proxySignals: !f.has('sig-proxy') || f.bool('sig-proxy'),
      detachKeys: detachKeysOf(ctx, f, command),
    });
    // As docker's client with --rm: return once the container is gone, not merely exited (its shim removes it).
    if (plan.autoRemove) await removed(join(ctx.config().root, 'containers', launched.id), 10_000);
    return status;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    if (e instanceof InputNotTerminalError) {
      ctx.stderr.write(`${e.message}\n`);
      return 1;
    }
    ctx.stderr.write(`${label}: ${(e as Error).message}.\nSee '${command} --help'.\n`);
    return e instanceof ContainerStartError ? e.exitStatus : 125;
  }
}

const DETACH_KEYS_FLAG: FlagSpec = { long: 'detach-keys', type: 'string', help: 'Override the key sequence for detaching a container', valueName: 'string' };

const RUN_ONLY: FlagSpec[] = [
  { long: 'detach', short: 'd', type: 'bool', help: 'Run container in background and print container ID' },
  { long: 'sig-proxy', type: 'bool', help: 'Proxy received signals to the process (non-TTY mode only)', defaultText: 'true' },
  DETACH_KEYS_FLAG,
];

const run: Command = {
  name: 'run',
  usage: '[OPTIONS] IMAGE [COMMAND] [ARG...]',
  summary: 'Create and run a new container from an image',
  flags: [...RUN_ONLY, ...CONTAINER_FLAGS],
  interspersed: false,
  args: { min: 1 },
  run: (ctx, f, args) => createContainer(ctx, f, args, f.bool('detach') ? 'detach' : 'run'),
};

const create: Command = {
  name: 'create',
  usage: '[OPTIONS] IMAGE [COMMAND] [ARG...]',
  summary: 'Create a new container',
  flags: CONTAINER_FLAGS,
  interspersed: false,
  args: { min: 1 },
  run: (ctx, f, args) => createContainer(ctx, f, args, 'create'),
};

/**
 * Starts a created container, or an exited one again (through its shim, or a new shim that takes it over when its
 * shim is gone); a running one is left alone, as docker does.
 */
async function startOne(ctx: Context, arg: string): Promise<void> {
  const c = await get(ctx, arg);
  const info = await c.inspect();
  if (info.status === 'running') return;
  await c.start();
}

/**
 * Makes sure an exited container has a shim to attach to: its own while it lives, else a new one that takes the
 * container over (and starts it when the attached client asks).
 */
async function shimFor(ctx: Context, id: string): Promise<void> {
  if (hasShim(join(ctx.config().root, 'containers', id))) return;
  await launchShim({ root: ctx.config().root, takeover: id, start: false, autoRemove: false });
}

const start: Command = {
  name: 'start',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  summary: 'Start one or more stopped containers',
  flags: [
    { long: 'attach', short: 'a', type: 'bool', help: 'Attach STDOUT/STDERR and forward signals' },
    { long: 'interactive', short: 'i', type: 'bool', help: "Attach container's STDIN" },
    DETACH_KEYS_FLAG,
  ],
  args: { min: 1 },
  async run(ctx, f, args) {
    const interactive = f.bool('interactive');
    if (!f.bool('attach') && !interactive) return eachArg(ctx, args, (a) => startOne(ctx, a));
    if (args.length > 1) throw new UsageError('berth start', 'you cannot start and attach multiple containers at once');
    let c: Container;
    let info: Awaited<ReturnType<Container['inspect']>>;
    try {
      c = await get(ctx, args[0]!);
      info = await c.inspect();
      checkInputIsTerminal(ctx, info.tty, interactive && info.openStdin);
      // An exited container runs again under a shim; the attached client starts it, so no output is missed.
      if (info.status === 'exited') await shimFor(ctx, c.id);
    } catch (e) {
      return attachRefused(ctx, e);
    }
    const spec: AttachSpec = {
      start: info.status !== 'running', tty: info.tty, stdin: interactive && info.openStdin, stdout: true, stderr: true,
      proxySignals: true, detachKeys: detachKeysOf(ctx, f, 'berth start'),
    };
    try {
      return await attachAndWait(ctx, c.id, 'Error', spec);
    } catch (e) {
      // Its shim exited between the look and the attach (no restart was to follow): a new one takes it over.
      if (!(e instanceof ShimGoneError) || info.status !== 'exited') throw e;
      await shimFor(ctx, c.id);
      return attachAndWait(ctx, c.id, 'Error', spec);
    }
  },
};

/** The flags of `stop` and `restart`, and the stop options they give. */
const STOP_FLAGS: FlagSpec[] = [
  { long: 'time', short: 't', type: 'string', help: 'Seconds to wait before killing the container', valueName: 'int' },
  { long: 'timeout', type: 'string', help: 'Alias of --time', valueName: 'int' },
  { long: 'signal', short: 's', type: 'string', help: 'Signal to send to the container' },
];

function stopOptions(f: Flags): { timeout?: number; signal?: NodeJS.Signals } {
  const timeout = f.int('time') ?? f.int('timeout');
  const signal = f.string('signal');
  return { ...(timeout !== undefined ? { timeout } : {}), ...(signal ? { signal: signal as NodeJS.Signals } : {}) };
}

const stop: Command = {
  name: 'stop',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  summary: 'Stop one or more running containers',
  flags: STOP_FLAGS,
  args: { min: 1 },
  run(ctx, f, args) {
    return eachArg(ctx, args, async (a) => {
      await (await get(ctx, a)).stop(stopOptions(f));
    });
  },
};

const kill: Command = {
  name: 'kill',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  summary: 'Kill one or more running containers',
  flags: [{ long: 'signal', short: 's', type: 'string', help: 'Signal to send to the container', defaultText: '"KILL"' }],
  args: { min: 1 },
  run(ctx, f, args) {
    const signal = f.string('signal') ?? 'KILL';
    const sig = /^\d+$/.test(signal) ? Number(signal) : (signal as NodeJS.Signals);
    return eachArg(ctx, args, async (a) => {
      await (await get(ctx, a)).kill(sig);
    });
  },
};

const restart: Command = {
  name: 'restart',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  summary: 'Restart one or more containers',
  flags: STOP_FLAGS,
  args: { min: 1 },
  run(ctx, f, args) {
    return eachArg(ctx, args, async (a) => {
      await (await get(ctx, a)).restart(stopOptions(f));
    });
  },
};

const rm: Command = {
  name: 'rm',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  summary: 'Remove one or more containers',
  flags: [
    { long: 'force', short: 'f', type: 'bool', help: 'Force the removal of a running container (uses SIGKILL)' },
    { long: 'volumes', short: 'v', type: 'bool', help: 'Remove anonymous volumes associated with the container (there are none in berth yet)' },
  ],
  args: { min: 1 },
  run(ctx, f, args) {
    return eachArg(ctx, args, async (a) => {
      const c = await get(ctx, a);
      if (!f.bool('force') && (await c.inspect()).status === 'running') {
        throw new ContainerStateError(`cannot remove container "${a}": container is running: stop the container before removing or force remove`);
      }
      await c.remove({ force: f.bool('force') });
    });
  },
};

/** `ps --filter` keys berth understands. */
function psFilter(filters: string[]): (c: Awaited<ReturnType<typeof Container.list>>[number]) => boolean {
  const by = new Map<string, string[]>();
  for (const f of filters) {
    const eq = f.indexOf('=');
    if (eq < 0) throw new UsageError('berth ps', `bad format of filter (expected name=value): ${f}`);
    const key = f.slice(0, eq);
    if (!['id', 'name', 'status', 'label', 'ancestor', 'network'].includes(key)) throw new UsageError('berth ps', `invalid filter '${key}'`);
    by.set(key, [...(by.get(key) ?? []), f.slice(eq + 1)]);
  }
  const any = (key: string, test: (v: string) => boolean) => !by.has(key) || by.get(key)!.some(test);
  return (c) =>
    any('id', (v) => c.id.startsWith(v)) &&
    any('name', (v) => c.name.includes(v)) &&
    any('status', (v) => stateText(c) === v) &&
    any('label', (v) => {
      const eq = v.indexOf('=');
      return eq < 0 ? v in c.labels : c.labels[v.slice(0, eq)] === v.slice(eq + 1);
    }) &&
    any('ancestor', (v) => c.image !== null && (c.image === v || c.image.endsWith(`/${v}`) || c.image.endsWith(`/${v}:latest`) || c.image.endsWith(`/library/${v}:latest`))) &&
    any('network', (v) => c.network?.endpoint?.networkName === v || c.network?.mode === v || !!c.network?.networks?.some((n) => n.networkName === v));
}

const ps: Command = {
  name: 'ps',
  usage: '[OPTIONS]',
  summary: 'List containers',
  flags: [
    { long: 'all', short: 'a', type: 'bool', help: 'Show all containers (default shows just running)' },
    { long: 'quiet', short: 'q', type: 'bool', help: 'Only display container IDs' },
    { long: 'format', type: 'string', help: 'Format output using a custom template (table, table TEMPLATE, json, TEMPLATE)' },
    { long: 'no-trunc', type: 'bool', help: 'Don\'t truncate output' },
    { long: 'filter', short: 'f', type: 'list', help: 'Filter output based on conditions provided (id, name, status, label, ancestor, network)', valueName: 'filter' },
    { long: 'last', short: 'n', type: 'string', help: 'Show n last created containers (includes all states)', valueName: 'int' },
    { long: 'latest', short: 'l', type: 'bool', help: 'Show the latest created container (includes all states)' },
    { long: 'size', short: 's', type: 'bool', help: 'Display total file sizes (always 0B in berth so far)' },
  ],
  args: { max: 0 },
  async run(ctx, f) {
    const last = f.bool('latest') ? 1 : f.int('last');
    const all = f.bool('all') || last !== undefined || f.list('filter').some((x) => x.startsWith('status='));
    let list = (await Container.list({ root: ctx.config().root, all })).filter(psFilter(f.list('filter')));
    if (last !== undefined && last >= 0) list = list.slice(0, last);
    const full = f.bool('no-trunc');
    if (f.bool('quiet')) {
      for (const c of list) ctx.stdout.write(`${full ? c.id : c.id.slice(0, 12)}\n`);
      return 0;
    }
    ctx.stdout.write(formatRows(list.map((c) => psRow(c, full)), f.string('format'), 'berth ps', PS_TABLE));
    return 0;
  },
};

const logs: Command = {
  name: 'logs',
  usage: '[OPTIONS] CONTAINER',
  summary: 'Fetch the logs of a container',
  flags: [
    { long: 'follow', short: 'f', type: 'bool', help: 'Follow log output' },
    { long: 'tail', short: 'n', type: 'string', help: 'Number of lines to show from the end of the logs', defaultText: '"all"' },
    { long: 'timestamps', short: 't', type: 'bool', help: 'Show timestamps' },
    { long: 'since', type: 'string', help: 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)' },
    { long: 'until', type: 'string', help: 'Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)' },
    { long: 'details', type: 'bool', help: 'Show extra details provided to logs (berth records none)' },
  ],
  args: { min: 1, max: 1 },
  async run(ctx, f, args) {
    const tailText = f.string('tail') ?? 'all';
    if (tailText !== 'all' && !/^-?\d+$/.test(tailText)) throw new UsageError('berth logs', `invalid value for "tail": "${tailText}"`);
    const c = await get(ctx, args[0]!);
    const since = f.string('since');
    const until = f.string('until');
    for await (const e of c.logs({
      follow: f.bool('follow'),
      tail: tailText === 'all' ? 'all' : Number(tailText),
      timestamps: f.bool('timestamps'),
      ...(since !== undefined ? { since } : {}),
      ...(until !== undefined ? { until } : {}),
    })) {
      const out = e.stream === 'stdout' ? ctx.stdout : ctx.stderr;
      if (!out.write(e.log)) await new Promise((r) => out.once('drain', r));
    }
    return 0;
  },
};

const top: Command = {
  name: 'top',
  usage: 'CONTAINER',
  summary: 'Display the running processes of a container',
  args: { min: 1, max: 1 },
  async run(ctx, _f, args) {
    const c = await get(ctx, args[0]!);
    const t = psTable(c.top());
    ctx.stdout.write(alignTable([t.titles.join('\t'), ...t.processes.map((p) => p.join('\t'))]));
    return 0;
  },
};

const pause: Command = {
  name: 'pause',
  usage: 'CONTAINER [CONTAINER...]',
  summary: 'Pause all processes within one or more containers',
  args: { min: 1 },
  run: (ctx, _f, args) => eachArg(ctx, args, async (a) => (await get(ctx, a)).pause()),
};

const unpause: Command = {
  name: 'unpause',
  usage: 'CONTAINER [CONTAINER...]',
  summary: 'Unpause all processes within one or more containers',
  args: { min: 1 },
  run: (ctx, _f, args) => eachArg(ctx, args, async (a) => (await get(ctx, a)).unpause()),
};

const rename: Command = {
  name: 'rename',
  usage: 'CONTAINER NEW_NAME',
  summary: 'Rename a container',
  args: { min: 2, max: 2 },
  async run(ctx, _f, args) {
    await (await get(ctx, args[0]!)).rename(args[1]!);
    return 0;
  },
};

const attach: Command = {
  name: 'attach',
  usage: '[OPTIONS] CONTAINER',
  summary: 'Attach local standard input, output, and error streams to a running container',
  flags: [
    { long: 'no-stdin', type: 'bool', help: 'Do not attach STDIN' },
    { long: 'sig-proxy', type: 'bool', help: 'Proxy all received signals to the process (non-TTY mode only)', defaultText: 'true' },
    DETACH_KEYS_FLAG,
  ],
  args: { min: 1, max: 1 },
  async run(ctx, f, args) {
    let info: Awaited<ReturnType<Container['inspect']>>;
    try {
      info = await (await get(ctx, args[0]!)).inspect();
      if (info.status !== 'running') throw new ContainerStateError('You cannot attach to a stopped container, start it first');
      if (info.paused) throw new ContainerStateError('You cannot attach to a paused container, unpause it first');
      checkInputIsTerminal(ctx, info.tty, info.openStdin && !f.bool('no-stdin'));
    } catch (e) {
      return attachRefused(ctx, e);
    }
    return attachAndWait(ctx, info.id, 'Error', {
      start: false, tty: info.tty, stdin: info.openStdin && !f.bool('no-stdin'), stdout: true, stderr: true,
      proxySignals: !f.has('sig-proxy') || f.bool('sig-proxy'), detachKeys: detachKeysOf(ctx, f, 'berth attach'),
    });
  },
};

/** The container commands, in the order `berth --help` lists them. */
export const containerCommands: Command[] = [
  run, create, start, stop, kill, restart, rm, ps, logs, attach, top, pause, unpause, rename, execCommand, waitCommand, portCommand,
];

/** `container` management group (docker container ls, docker container rm, ...). */
export const containerGroup: Command = {
  name: 'container',
  usage: 'COMMAND',
  summary: 'Manage containers',
  subcommands: containerCommands.map((c) =>
    c === ps ? { ...ps, name: 'ls', aliases: ['ps', 'list'] } : c === rm ? { ...rm, aliases: ['remove'] } : c),
};
