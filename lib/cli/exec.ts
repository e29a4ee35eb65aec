/**
 * `berth exec`: runs a command in a running container, without a TTY (`-i` and `-t` are refused as not supported
 * yet). The exit status is the command's, 126 / 127 when it cannot be executed / is not found, 125 when berth fails.
 * @module
 */
import { Container } from '../container/container.js';
import { ContainerStartError, InvalidOptionsError } from '../errors.js';
import { UsageError, type FlagSpec } from './args.js';
import type { Command } from './command.js';

const EXEC_FLAGS: FlagSpec[] = [
  { long: 'env', short: 'e', type: 'list', help: 'Set environment variables', valueName: 'list' },
  { long: 'user', short: 'u', type: 'string', help: 'Username or UID (format: "<name|uid>[:<group|gid>]")' },
  { long: 'workdir', short: 'w', type: 'string', help: 'Working directory inside the container' },
  { long: 'detach', short: 'd', type: 'bool', help: 'Detached mode: run command in the background (not supported yet)' },
  { long: 'interactive', short: 'i', type: 'bool', help: 'Keep STDIN open even if not attached (not supported yet)' },
  { long: 'tty', short: 't', type: 'bool', help: 'Allocate a pseudo-TTY (not supported yet)' },
];

/** `-e KEY=value`, or `-e KEY` taken from this process's environment (left out when unset), as docker reads it. */
function envEntries(list: readonly string[], env: NodeJS.ProcessEnv): string[] {
  return list.flatMap((e) => (e.includes('=') ? [e] : env[e] === undefined ? [] : [`${e}=${env[e]}`]));
}

/** Signals berth exec passes on to the exec'd process. */
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/** `berth exec [OPTIONS] CONTAINER COMMAND [ARG...]`. */
export const execCommand: Command = {
  name: 'exec',
  usage: '[OPTIONS] CONTAINER COMMAND [ARG...]',
  summary: 'Execute a command in a running container',
  flags: EXEC_FLAGS,
  interspersed: false,
  args: { min: 2 },
  async run(ctx, f, args) {
    const command = 'berth exec';
    for (const [flag, what] of [['tty', 'a pseudo-TTY (-t, --tty)'], ['interactive', 'interactive stdin (-i, --interactive)'], ['detach', 'detached exec (-d, --detach)']] as const) {
      if (f.bool(flag)) throw new UsageError(command, `${what} is not supported by berth yet`);
    }
    const [name, ...cmd] = args;
    const user = f.string('user');
    const workdir = f.string('workdir');
    try {
      const c = await Container.get(name!, { root: ctx.config().root });
      const p = await c.exec({
        cmd,
        env: envEntries(f.list('env'), ctx.env),
        ...(user !== undefined ? { user } : {}),
        ...(workdir !== undefined ? { workdir } : {}),
      });
      const handlers = FORWARDED.map((sig) => {
        const h = () => p.kill(sig);
        process.on(sig, h);
        return [sig, h] as const;
      });
      try {
        // pipe(): a slow reader of berth's output slows the command down instead of filling memory.
        const copy = (from: NodeJS.ReadableStream | null, to: NodeJS.WritableStream) =>
          new Promise<void>((resolve) => {
            if (!from) return resolve();
            from.pipe(to, { end: false });
            from.on('end', resolve);
            from.on('error', () => resolve());
          });
        const [, , exit] = await Promise.all([copy(p.stdout, ctx.stdout), copy(p.stderr, ctx.stderr), p.wait()]);
        return exit.exitCode;
      } finally {
        for (const [sig, h] of handlers) process.off(sig, h);
      }
    } catch (e) {
      if (e instanceof UsageError) throw e;
      ctx.stderr.write(`Error response from berth: ${(e as Error).message}\n`);
      if (e instanceof ContainerStartError) return e.exitStatus;
      // An unknown user fails in docker's runtime, after the exec was accepted: 126 there too.
      if (e instanceof InvalidOptionsError && e.issues.some((i) => i.path === 'user')) return 126;
      return 125;
    }
  },
};
