/**
 * What a `berth` command is: its name, usage line, flags and the function that runs it; and how `--help` shows
 * it (docker's layout).
 * @module
 */
import type { Writable } from 'node:stream';
import { Flags, UsageError, type FlagSpec } from './args.js';
import type { CliConfig } from './config.js';

/** What every command gets. */
export interface Context {
  /** Settings from flags, environment and config files (loaded on first use). */
  config(): CliConfig;
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

/** A command (or a group of subcommands, like `network`). */
export interface Command {
  name: string;
  /** Other names, e.g. `ls` for `list`. */
  aliases?: string[];
  /** After `berth <name> `, e.g. `[OPTIONS] CONTAINER [CONTAINER...]`. */
  usage: string;
  /** One line: what it does. */
  summary: string;
  flags?: FlagSpec[];
  /** Whether flags may follow positional arguments (default true; false for `run`, whose program has its own). */
  interspersed?: boolean;
  /** Positional argument count. */
  args?: { min?: number; max?: number };
  /** Runs it; resolves with the exit status. */
  run?: (ctx: Context, flags: Flags, args: string[]) => Promise<number>;
  subcommands?: Command[];
}

/** The help flag docker gives every command. */
const HELP_FLAG: FlagSpec = { long: 'help', type: 'bool', help: 'Print usage' };

/** `--help` text for `cmd`, reached as `path` (e.g. `berth network ls`). */
export function helpText(cmd: Command, path: string): string {
  const lines = [`Usage:  ${path} ${cmd.usage}`.trimEnd(), '', cmd.summary];
  if (cmd.aliases?.length) lines.push('', 'Aliases:', `  ${[path, ...cmd.aliases.map((a) => path.replace(/\S+$/, a))].join(', ')}`);
  if (cmd.subcommands?.length) {
    lines.push('', 'Commands:');
    const w = Math.max(...cmd.subcommands.map((s) => s.name.length));
    for (const s of cmd.subcommands) lines.push(`  ${s.name.padEnd(w)}  ${s.summary}`);
    lines.push('', `Run '${path} COMMAND --help' for more information on a command.`);
  }
  const flags = [...(cmd.flags ?? []), ...(cmd.flags?.some((f) => f.long === 'help') ? [] : [HELP_FLAG])];
  if (!cmd.subcommands?.length || (cmd.flags?.length ?? 0) > 0) {
    lines.push('', 'Options:');
    const left = flags.map((f) => {
      const name = `${f.short ? `-${f.short}, ` : '    '}--${f.long}`;
      return f.type === 'bool' ? name : `${name} ${f.valueName ?? f.type}`;
    });
    const w = Math.max(...left.map((l) => l.length));
    flags.forEach((f, i) => lines.push(`  ${left[i]!.padEnd(w)}   ${f.help}${f.defaultText ? ` (default ${f.defaultText})` : ''}`));
  }
  return `${lines.join('\n')}\n`;
}

/** Checks the positional argument count as docker does ("requires at least 1 argument"). */
export function checkArgCount(cmd: Command, path: string, args: readonly string[]): void {
  const { min = 0, max = Infinity } = cmd.args ?? {};
  const plural = (n: number) => `${n} argument${n === 1 ? '' : 's'}`;
  let problem: string | undefined;
  if (min === max && args.length !== min) problem = `"${path}" requires exactly ${plural(min)}.`;
  else if (args.length < min) problem = `"${path}" requires at least ${plural(min)}.`;
  else if (args.length > max) problem = max === 0 ? `"${path}" accepts no arguments.` : `"${path}" requires at most ${plural(max)}.`;
  if (problem) throw new ArgCountError(path, `${problem}\nSee '${path} --help'.\n\nUsage:  ${path} ${cmd.usage}\n\n${cmd.summary}`);
}

/** Wrong number of arguments: docker exits with status 1 for these (125 is for flag errors). */
export class ArgCountError extends UsageError {}
