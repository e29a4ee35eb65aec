#!/usr/bin/env node
/**
 * The `berth` command: docker's command line over the berth library, with no daemon — each command opens the
 * state root itself, and each container it creates is owned by a small shim process (lib/container/shim).
 *
 * Exit statuses are docker's: 0, 1 for a failed command, 125 when berth itself fails (a bad flag, a create
 * that fails), 126 when the container's program cannot be executed, 127 when it is not found, otherwise the
 * container's own exit status (`run`, `start -a`).
 * @module
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { UsageError, parseArgs, Flags, type FlagSpec } from './args.js';
import { ArgCountError, checkArgCount, helpText, type Command, type Context } from './command.js';
import { loadConfig, type CliConfig } from './config.js';
import { containerCommands, containerGroup } from './containers.js';
import { imageCommands, imageGroup } from './images.js';
import { networkGroup } from './networks.js';
import { berthVersion, systemCommands, systemGroup } from './system.js';

const GLOBAL_FLAGS: FlagSpec[] = [
  { long: 'root', type: 'string', help: 'The state root (default: $BERTH_ROOT, the config file\'s data-root, /var/lib/berth)' },
  { long: 'config', type: 'string', help: 'Read this config file instead of /etc/berth/config.json and ~/.config/berth/config.json' },
  { long: 'version', short: 'v', type: 'bool', help: 'Print version information and quit' },
];

/** Every command, as `berth --help` lists them. */
const COMMANDS: Command[] = [...containerCommands, ...imageCommands, ...systemCommands, containerGroup, imageGroup, networkGroup, systemGroup];

const ROOT: Command = {
  name: 'berth',
  usage: '[OPTIONS] COMMAND',
  summary: 'Docker\'s engine as a library, and this docker-like command line over it (no daemon)',
  flags: GLOBAL_FLAGS,
  subcommands: COMMANDS,
};

function find(list: readonly Command[], name: string): Command | undefined {
  return list.find((c) => c.name === name || c.aliases?.includes(name));
}

/** Runs `berth` with `argv` (without node and the script); resolves with the exit status. */
export async function main(argv: readonly string[], io: Omit<Context, 'config'>): Promise<number> {
  let config: CliConfig | undefined;
  let global: ReturnType<typeof parseArgs>;
  try {
    global = parseArgs(argv, GLOBAL_FLAGS, 'berth', false);
  } catch (e) {
    return usageFailure(io, e as UsageError);
  }
  const gf = new Flags(global, 'berth');
  const ctx: Context = {
    ...io,
    config: () => (config ??= loadConfig({ root: gf.string('root'), config: gf.string('config') }, io.env)),
  };
  if (gf.bool('version')) {
    io.stdout.write(`berth version ${berthVersion()}\n`);
    return 0;
  }
  const [name, ...rest] = global.args;
  if (name === undefined || name === 'help') {
    const target = name === 'help' && rest[0] ? find(COMMANDS, rest[0]) : undefined;
    io.stdout.write(helpText(target ?? ROOT, target ? `berth ${target.name}` : 'berth'));
    return 0;
  }
  if (global.help) {
    io.stdout.write(helpText(ROOT, 'berth'));
    return 0;
  }
  let cmd = find(COMMANDS, name);
  let path = `berth ${name}`;
  let args = rest;
  if (!cmd) {
    io.stderr.write(`berth: '${name}' is not a berth command.\nSee 'berth --help'\n`);
    return 1;
  }
  // A group: the next word picks the subcommand.
  while (cmd.subcommands?.length && !cmd.run) {
    const [sub, ...more] = args;
    if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
      io.stdout.write(helpText(cmd, path));
      return 0;
    }
    const next = find(cmd.subcommands, sub);
    if (!next) {
      io.stderr.write(`berth: '${sub}' is not a berth ${cmd.name} command.\nSee '${path} --help'\n`);
      return 1;
    }
    cmd = next;
    path = `${path} ${next.name}`;
    args = more;
  }
  try {
    const parsed = parseArgs(args, cmd.flags ?? [], path, cmd.interspersed ?? true);
    if (parsed.help) {
      io.stdout.write(helpText(cmd, path));
      return 0;
    }
    checkArgCount(cmd, path, parsed.args);
    return await cmd.run!(ctx, new Flags(parsed, path), parsed.args);
  } catch (e) {
    if (e instanceof UsageError) return usageFailure(io, e);
    // run and create report their own failures (125, 126, 127); elsewhere a failure is status 1.
    io.stderr.write(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

/** docker's way: the message, a pointer to --help, status 125 (1 for a wrong number of arguments). */
function usageFailure(io: Omit<Context, 'config'>, e: UsageError): number {
  if (e instanceof ArgCountError) {
    io.stderr.write(`berth: ${e.message}\n`);
    return 1;
  }
  io.stderr.write(`berth: ${e.message}\n\nRun '${e.command} --help' for more information\n`);
  return 125;
}

/** True when this module is the program (not imported by a test), also through npm's bin symlink. */
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // `berth logs x | head`: a reader that went away ends the command quietly, as it would end `docker logs`.
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(0);
      throw e;
    });
  }
  const status = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env });
  process.exit(status);
}
