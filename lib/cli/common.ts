/**
 * Pieces several commands share: running an action over each argument (docker prints each success and each
 * failure and exits 1 if any failed), JSON output as docker indents it, and pulling with progress.
 * @module
 */
import type { Writable } from 'node:stream';
import { Image, ImageNotFoundError } from '../image/image.js';
import type { PullEvent } from '../image/pull.js';
import { parseReference } from '../image/reference.js';
import type { Command, Context } from './command.js';
import { parseTemplate } from './format.js';
import { PullProgress } from './progress.js';

/** Prints an error the way commands other than `run` do. */
export function printError(ctx: Context, e: unknown): void {
  ctx.stderr.write(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
}

/**
 * Runs `action` for each argument; prints the argument (or what `action` returns) after each success and the
 * error after each failure. Resolves with docker's status: 0, or 1 when anything failed.
 */
export async function eachArg(ctx: Context, args: readonly string[], action: (arg: string) => Promise<string | void>): Promise<number> {
  let status = 0;
  for (const arg of args) {
    try {
      const shown = await action(arg);
      ctx.stdout.write(`${shown ?? arg}\n`);
    } catch (e) {
      printError(ctx, e);
      status = 1;
    }
  }
  return status;
}

/** JSON as docker's inspect prints it (four-space indent). */
export function printJson(out: Writable, value: unknown): void {
  out.write(`${JSON.stringify(value, null, 4)}\n`);
}

/** The registry settings of the config, as Image.pull options. */
export function registryOptions(ctx: Context, platform?: string): { root: string; mirrors?: string[]; insecureRegistries?: string[]; platform?: string } {
  const c = ctx.config();
  return {
    root: c.root,
    ...(c.registryMirrors.length ? { mirrors: c.registryMirrors } : {}),
    ...(c.insecureRegistries.length ? { insecureRegistries: c.insecureRegistries } : {}),
    ...(platform ? { platform } : {}),
  };
}

/**
 * Pulls `reference` writing docker's progress output to `out` (bars on a terminal, status lines otherwise):
 * `Using default tag`, `<tag>: Pulling from <repo>`, per-layer lines, `Digest:` and `Status:`.
 */
export async function pullWithProgress(ctx: Context, reference: string, out: Writable & { isTTY?: boolean }, platform?: string, quiet = false): Promise<Image> {
  const ref = parseReference(reference);
  const given = reference.slice(reference.lastIndexOf('/') + 1);
  const say = (line: string) => {
    if (!quiet) out.write(`${line}\n`);
  };
  if (!given.includes(':') && !given.includes('@')) say('Using default tag: latest');
  say(`${ref.digest ?? ref.tag}: Pulling from ${ref.domain === 'docker.io' ? ref.path : ref.repository}`);
  const progress = new PullProgress(out);
  const pulling = Image.pullEvents(reference, registryOptions(ctx, platform));
  let done: Extract<PullEvent, { type: 'done' }> | undefined;
  for await (const e of pulling) {
    if (e.type === 'done') done = e;
    else if (!quiet) progress.event(e);
  }
  const image = await pulling.image;
  say(`Digest: ${done?.digest ?? image.digest}`);
  say(`Status: ${progress.downloaded ? 'Downloaded newer image' : 'Image is up to date'} for ${ref.familiar}`);
  return image;
}

/** The image for `run`/`create`, pulled per `--pull` (progress on stderr, as docker run prints it). */
export async function ensureImage(ctx: Context, reference: string, pull: 'missing' | 'always' | 'never', platform?: string): Promise<Image> {
  if (pull === 'always') return pullWithProgress(ctx, reference, ctx.stderr, platform);
  try {
    return await Image.get(reference, { root: ctx.config().root });
  } catch (e) {
    if (!(e instanceof ImageNotFoundError) || pull === 'never') throw e;
  }
  ctx.stderr.write(`Unable to find image '${parseReference(reference).familiar}' locally\n`);
  return pullWithProgress(ctx, reference, ctx.stderr, platform);
}

/**
 * `<group> inspect [-f FORMAT] NAME...`: each name looked up and shown by `view` (docker's JSON array, or the
 * template per object); a name that fails is reported and makes the status 1, the others are still shown.
 */
export function inspectCommand(what: string, group: string, view: (ctx: Context, name: string) => Promise<unknown>): Command {
  return {
    name: 'inspect',
    usage: `[OPTIONS] ${what.toUpperCase()} [${what.toUpperCase()}...]`,
    summary: `Display detailed information on one or more ${what}s`,
    flags: [{ long: 'format', short: 'f', type: 'string', help: 'Format output using a custom template' }],
    args: { min: 1 },
    async run(ctx, f, args) {
      const found: unknown[] = [];
      let status = 0;
      for (const a of args) {
        try {
          found.push(await view(ctx, a));
        } catch (e) {
          ctx.stderr.write(`Error: ${(e as Error).message}\n`);
          status = 1;
        }
      }
      const format = f.string('format');
      if (format) {
        const t = parseTemplate(format, `berth ${group} inspect`);
        for (const x of found) ctx.stdout.write(`${t.render(x)}\n`);
      } else printJson(ctx.stdout, found);
      return status;
    },
  };
}
