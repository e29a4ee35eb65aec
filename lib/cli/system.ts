/**
 * `berth events`, `version`, `info`, `inspect` and `system prune`.
 * @module
 */
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { Container } from '../container/container.js';
import { openEngine } from '../container/engine.js';
import { ContainerNotFoundError } from '../errors.js';
import { Image } from '../image/image.js';
import { events, type EventFilters, type EventType } from '../journal/events.js';
import { Network } from '../network/network.js';
import { UsageError } from './args.js';
import type { Command, Context } from './command.js';
import { printJson } from './common.js';
import { parseTemplate } from './format.js';
import { humanSize } from './human.js';
import { eventLine, eventView, inspectContainer, inspectImage, inspectNetwork } from './views.js';

/** The package version (package.json two levels above dist/lib/cli). */
export function berthVersion(): string {
  try {
    for (const up of ['../../../package.json', '../../package.json']) {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'berth' && pkg.version) return pkg.version;
    }
  } catch {
    // fall through
  }
  return 'unknown';
}

function arch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

/** Prints `value` per `--format`, or with `plain` when there is none. */
function formatted(ctx: Context, format: string | undefined, value: unknown, command: string, plain: () => string): void {
  if (format === 'json') printJson(ctx.stdout, value);
  else if (format) ctx.stdout.write(`${parseTemplate(format, command).render(value)}\n`);
  else ctx.stdout.write(plain());
}

const version: Command = {
  name: 'version',
  usage: '[OPTIONS]',
  summary: 'Show the berth version information',
  flags: [{ long: 'format', short: 'f', type: 'string', help: 'Format output using a custom template' }],
  args: { max: 0 },
  async run(ctx, f) {
    const v = berthVersion();
    const data = {
      Client: { Version: v, NodeVersion: process.version, Os: 'linux', Arch: arch() },
      Server: { Version: v, KernelVersion: release(), Os: 'linux', Arch: arch(), Engine: 'berth (in-process, no daemon)' },
    };
    formatted(ctx, f.string('format'), data, 'berth version', () =>
      [
        'Client:',
        ` Version:           ${v}`,
        ` Node version:      ${process.version}`,
        ` OS/Arch:           linux/${arch()}`,
        '',
        'Server:',
        ' Engine:',
        `  Version:          ${v} (in-process: each berth command is the engine, no daemon)`,
        `  Kernel Version:   ${release()}`,
        `  OS/Arch:          linux/${arch()}`,
        '',
      ].join('\n'));
    return 0;
  },
};

function osName(): string {
  try {
    return /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'Linux';
  } catch {
    return 'Linux';
  }
}

const info: Command = {
  name: 'info',
  usage: '[OPTIONS]',
  summary: 'Display system-wide information',
  flags: [{ long: 'format', short: 'f', type: 'string', help: 'Format output using a custom template' }],
  args: { max: 0 },
  async run(ctx, f) {
    const c = ctx.config();
    const engine = await openEngine(c.root);
    const containers = await Container.list({ root: c.root, all: true });
    const running = containers.filter((x) => x.status === 'running');
    const paused = running.filter((x) => x.paused).length;
    const images = await Image.list({ root: c.root });
    const data = {
      Containers: containers.length,
      ContainersRunning: running.length - paused,
      ContainersPaused: paused,
      ContainersStopped: containers.length - running.length,
      Images: images.length,
      Driver: 'overlay (berth snapshots)',
      LoggingDriver: c.log.driver ?? 'json-file',
      CgroupDriver: 'cgroupfs',
      CgroupVersion: String(engine.cgroups.version),
      KernelVersion: release(),
      OperatingSystem: osName(),
      OSType: 'linux',
      Architecture: arch(),
      NCPU: cpus().length,
      MemTotal: totalmem(),
      DockerRootDir: c.root,
      ServerVersion: berthVersion(),
      RegistryConfig: { Mirrors: c.registryMirrors, InsecureRegistryCIDRs: c.insecureRegistries },
      ConfigFiles: c.files,
    };
    formatted(ctx, f.string('format'), data, 'berth info', () =>
      [
        'Server:',
        ` Containers: ${data.Containers}`,
        `  Running: ${data.ContainersRunning}`,
        `  Paused: ${data.ContainersPaused}`,
        `  Stopped: ${data.ContainersStopped}`,
        ` Images: ${data.Images}`,
        ` Server Version: ${data.ServerVersion}`,
        ` Storage Driver: ${data.Driver}`,
        ` Logging Driver: ${data.LoggingDriver}`,
        ` Cgroup Driver: ${data.CgroupDriver}`,
        ` Cgroup Version: ${data.CgroupVersion}`,
        ` Kernel Version: ${data.KernelVersion}`,
        ` Operating System: ${data.OperatingSystem}`,
        ` OSType: linux`,
        ` Architecture: ${data.Architecture}`,
        ` CPUs: ${data.NCPU}`,
        ` Total Memory: ${humanSize(data.MemTotal)}`,
        ` Berth Root Dir: ${data.DockerRootDir}`,
        ...(c.files.length ? [` Config Files: ${c.files.join(', ')}`] : []),
        ...(c.insecureRegistries.length ? [' Insecure Registries:', ...c.insecureRegistries.map((r) => `  ${r}`)] : []),
        ...(c.registryMirrors.length ? [' Registry Mirrors:', ...c.registryMirrors.map((m) => `  ${m}`)] : []),
        '',
      ].join('\n'));
    return 0;
  },
};

/** `--filter key=value` for events. */
function eventFilters(list: string[]): EventFilters {
  const out: EventFilters = {};
  const keys = ['type', 'event', 'container', 'image', 'network', 'label'] as const;
  for (const item of list) {
    const eq = item.indexOf('=');
    const key = item.slice(0, eq) as (typeof keys)[number];
    if (eq < 0 || !keys.includes(key)) throw new UsageError('berth events', `invalid filter '${item}' (type, event, container, image, network, label)`);
    const value = item.slice(eq + 1);
    if (key === 'type') (out.type ??= []).push(value as EventType);
    else (out[key] ??= []).push(value);
  }
  return out;
}

const eventsCommand: Command = {
  name: 'events',
  usage: '[OPTIONS]',
  summary: 'Get real time events from the server',
  flags: [
    { long: 'filter', short: 'f', type: 'list', help: 'Filter output based on conditions provided (type, event, container, image, network, label)', valueName: 'filter' },
    { long: 'format', type: 'string', help: 'Format output using a custom template (json, TEMPLATE)' },
    { long: 'since', type: 'string', help: 'Show all events created since timestamp' },
    { long: 'until', type: 'string', help: 'Stream events until this timestamp' },
  ],
  args: { max: 0 },
  async run(ctx, f) {
    const format = f.string('format');
    const template = format && format !== 'json' ? parseTemplate(format, 'berth events') : undefined;
    const since = f.string('since');
    const until = f.string('until');
    for await (const e of events({
      root: ctx.config().root,
      filters: eventFilters(f.list('filter')),
      ...(since !== undefined ? { since } : {}),
      ...(until !== undefined ? { until } : {}),
    })) {
      const line = format === 'json' ? JSON.stringify(eventView(e)) : template ? template.render(eventView(e)) : eventLine(e);
      ctx.stdout.write(`${line}\n`);
    }
    return 0;
  },
};

/** `inspect`: containers first, then images, then networks, as docker looks them up. */
const inspect: Command = {
  name: 'inspect',
  usage: '[OPTIONS] NAME|ID [NAME|ID...]',
  summary: 'Return low-level information on berth objects',
  flags: [
    { long: 'format', short: 'f', type: 'string', help: 'Format output using a custom template' },
    { long: 'type', type: 'string', help: 'Only inspect objects of the given type (container, image, network)' },
    { long: 'size', short: 's', type: 'bool', help: 'Display total file sizes if the type is container (not computed by berth)' },
  ],
  args: { min: 1 },
  async run(ctx, f, args) {
    const root = ctx.config().root;
    const type = f.string('type');
    if (type !== undefined && !['container', 'image', 'network'].includes(type)) throw new UsageError('berth inspect', `"${type}" is not a valid value for --type`);
    const found: unknown[] = [];
    let status = 0;
    for (const a of args) {
      const tries: [string, () => Promise<unknown>][] = [
        ['container', async () => inspectContainer(await (await Container.get(a, { root })).inspect())],
        ['image', async () => inspectImage((await Image.get(a, { root })).inspect())],
        ['network', async () => inspectNetwork(await (await Network.get(a, { root })).inspect())],
      ];
      let hit: unknown;
      for (const [t, get] of tries) {
        if (type !== undefined && t !== type) continue;
        try {
          hit = await get();
          break;
        } catch {
          // not this kind (or not a valid name for it)
        }
      }
      if (hit === undefined) {
        ctx.stderr.write(`Error: No such object: ${a}\n`);
        status = 1;
      } else found.push(hit);
    }
    const format = f.string('format');
    if (format) {
      const t = parseTemplate(format, 'berth inspect');
      for (const x of found) ctx.stdout.write(`${t.render(x)}\n`);
    } else printJson(ctx.stdout, found);
    return status;
  },
};

/** Reads one line from stdin (`y` to go on); anything else, or no terminal input at all, means no. */
async function confirm(ctx: Context, question: string): Promise<boolean> {
  ctx.stdout.write(`${question} [y/N] `);
  const answer = await new Promise<string>((resolve) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString();
      if (text.includes('\n')) done();
    };
    const done = () => {
      ctx.stdin.off('data', onData);
      ctx.stdin.off('end', done);
      (ctx.stdin as NodeJS.ReadStream).pause?.();
      resolve(text.split('\n')[0]!.trim());
    };
    ctx.stdin.on('data', onData);
    ctx.stdin.once('end', done);
  });
  return /^y(es)?$/i.test(answer);
}

const prune: Command = {
  name: 'prune',
  usage: '[OPTIONS]',
  summary: 'Remove unused data',
  flags: [
    { long: 'all', short: 'a', type: 'bool', help: 'Remove all unused images not just dangling ones' },
    { long: 'force', short: 'f', type: 'bool', help: 'Do not prompt for confirmation' },
    { long: 'volumes', type: 'bool', help: 'Prune anonymous volumes (berth has none yet)' },
  ],
  args: { max: 0 },
  async run(ctx, f) {
    const root = ctx.config().root;
    if (!f.bool('force')) {
      ctx.stdout.write([
        'WARNING! This will remove:',
        '  - all stopped containers',
        '  - all networks not used by at least one container',
        f.bool('all') ? '  - all images without at least one container associated to them' : '  - all dangling images (berth keeps none)',
        '',
        '',
      ].join('\n'));
      if (!(await confirm(ctx, 'Are you sure you want to continue?'))) return 0;
    }
    const removed: string[] = [];
    for (const c of await Container.list({ root, all: true })) {
      if (c.status === 'running' || c.restarting) continue; // a restarting container counts as running (docker's)
      try {
        await (await Container.get(c.id, { root })).remove();
        removed.push(c.id);
      } catch (e) {
        if (!(e instanceof ContainerNotFoundError)) ctx.stderr.write(`Error: ${(e as Error).message}\n`);
      }
    }
    if (removed.length) ctx.stdout.write(`Deleted Containers:\n${removed.join('\n')}\n\n`);
    const networks: string[] = [];
    for (const n of await Network.list({ root })) {
      if (n.name === 'bridge' || n.containers.length > 0) continue;
      try {
        await (await Network.get(n.id, { root })).remove();
        networks.push(n.name);
      } catch {
        // in use after all
      }
    }
    if (networks.length) ctx.stdout.write(`Deleted Networks:\n${networks.join('\n')}\n\n`);
    const untagged: string[] = [];
    if (f.bool('all')) {
      const used = new Set((await Container.list({ root, all: true })).map((c) => c.image).filter(Boolean));
      for (const i of await Image.list({ root })) {
        if (used.has(i.reference)) continue;
        await (await Image.get(i.reference, { root })).remove();
        untagged.push(i.familiar);
      }
      if (untagged.length) ctx.stdout.write(`Deleted Images:\n${untagged.map((u) => `untagged: ${u}`).join('\n')}\n\n`);
    }
    const gc = await Image.gc({ root });
    ctx.stdout.write(`Total reclaimed space: ${humanSize(gc.freedBytes)}\n`);
    return 0;
  },
};

/** Top-level commands about the whole engine. */
export const systemCommands: Command[] = [eventsCommand, inspect, version, info];

/** `system` management group. */
export const systemGroup: Command = {
  name: 'system',
  usage: 'COMMAND',
  summary: 'Manage berth',
  subcommands: [prune, { ...eventsCommand }, { ...info }],
};
