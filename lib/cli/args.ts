/**
 * Command-line parsing with docker's conventions (spf13/pflag, as the docker CLI uses it): `--name value`,
 * `--name=value`, `-d`, grouped short flags `-dit`, a short flag's value attached (`-p8080:80`, `-e=X`) or
 * next, `--flag=false` for booleans, repeatable list flags, `--` to end the flags. Commands that run a program
 * (`run`, `create`) stop at the first argument that is not a flag, so the program's own flags stay its own.
 * @module
 */
import { BerthError } from '../errors.js';

/** A usage mistake: docker prints it with a pointer to `--help` and exits with status 125. */
export class UsageError extends BerthError {
  /** The command whose help to point at, e.g. `berth run`. */
  readonly command: string;

  constructor(command: string, message: string) {
    super('ERR_USAGE', message);
    this.command = command;
  }
}

/** A flag a command accepts. */
export interface FlagSpec {
  /** Long name without dashes. */
  long: string;
  /** One-letter short name. */
  short?: string;
  /** `bool` takes no value; `list` may be repeated (values collected in order). */
  type: 'bool' | 'string' | 'list';
  /** One line for --help. */
  help: string;
  /** What the value is called in --help (`string`, `list`, `bytes`, ...). */
  valueName?: string;
  /** The default shown in --help. */
  defaultText?: string;
}

/** What parsing produced. */
export interface ParsedArgs {
  /** By long name: `true` for booleans given, the last value for strings, every value for lists. */
  flags: Map<string, string | boolean | string[]>;
  /** Positional arguments. */
  args: string[];
  /** `--help` was given. */
  help: boolean;
}

/**
 * Parses `argv` against `flags`. `interspersed: false` makes the first positional argument end the flags.
 * `command` names the command in error messages.
 */
export function parseArgs(argv: readonly string[], flags: readonly FlagSpec[], command: string, interspersed = true): ParsedArgs {
  const byLong = new Map(flags.map((f) => [f.long, f]));
  const byShort = new Map(flags.filter((f) => f.short).map((f) => [f.short!, f]));
  const out: ParsedArgs = { flags: new Map(), args: [], help: false };
  const set = (f: FlagSpec, value: string | boolean) => {
    if (f.type === 'list') {
      const list = (out.flags.get(f.long) as string[] | undefined) ?? [];
      list.push(String(value));
      out.flags.set(f.long, list);
    } else out.flags.set(f.long, value);
  };
  const boolValue = (f: FlagSpec, text: string): boolean => {
    if (/^(1|t|true|TRUE|True)$/.test(text)) return true;
    if (/^(0|f|false|FALSE|False)$/.test(text)) return false;
    throw new UsageError(command, `invalid argument "${text}" for "--${f.long}" flag: strconv.ParseBool: parsing "${text}": invalid syntax`);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      const f = byLong.get(name);
      if (!f) {
        if (name === 'help') {
          out.help = true;
          continue;
        }
        throw new UsageError(command, `unknown flag: --${name}`);
      }
      if (f.type === 'bool') {
        set(f, eq < 0 ? true : boolValue(f, a.slice(eq + 1)));
      } else if (eq >= 0) {
        set(f, a.slice(eq + 1));
      } else {
        if (i + 1 >= argv.length) throw new UsageError(command, `flag needs an argument: --${name}`);
        set(f, argv[++i]!);
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const ch = a[j]!;
        const f = byShort.get(ch);
        if (!f) {
          if (ch === 'h') {
            out.help = true;
            continue;
          }
          throw new UsageError(command, `unknown shorthand flag: '${ch}' in ${a}`);
        }
        if (f.type === 'bool') {
          if (a[j + 1] === '=') {
            set(f, boolValue(f, a.slice(j + 2)));
            break;
          }
          set(f, true);
          continue;
        }
        // A value flag takes the rest of the group (`-p8080:80`, `-e=X`) or the next argument.
        let rest = a.slice(j + 1);
        if (rest.startsWith('=')) rest = rest.slice(1);
        if (rest !== '' || a[j + 1] === '=') set(f, rest);
        else if (i + 1 < argv.length) set(f, argv[++i]!);
        else throw new UsageError(command, `flag needs an argument: '${ch}' in -${ch}`);
        break;
      }
      continue;
    }
    out.args.push(a);
    if (!interspersed) {
      out.args.push(...argv.slice(i + 1));
      break;
    }
  }
  return out;
}

/** Typed access to parsed flags, with errors naming the flag. */
export class Flags {
  readonly #parsed: ParsedArgs;
  readonly #command: string;

  constructor(parsed: ParsedArgs, command: string) {
    this.#parsed = parsed;
    this.#command = command;
  }

  has(name: string): boolean {
    return this.#parsed.flags.has(name);
  }

  bool(name: string): boolean {
    return this.#parsed.flags.get(name) === true;
  }

  string(name: string): string | undefined {
    const v = this.#parsed.flags.get(name);
    return typeof v === 'string' ? v : undefined;
  }

  list(name: string): string[] {
    const v = this.#parsed.flags.get(name);
    return Array.isArray(v) ? v : [];
  }

  /** An integer flag; `undefined` when absent. */
  int(name: string): number | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    if (!/^-?\d+$/.test(v.trim())) throw new UsageError(this.#command, `invalid argument "${v}" for "--${name}" flag: not an integer`);
    return Number(v);
  }

  /** A decimal flag; `undefined` when absent. */
  number(name: string): number | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(this.#command, `invalid argument "${v}" for "--${name}" flag: not a number`);
    return n;
  }
}
