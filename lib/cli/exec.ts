/**
 * `berth exec`: runs a command in a running container, with this process's stdin (`-i`) and a terminal (`-t`)
 * when asked; with `-d` it is started and left running in the background (output discarded). Attached, the exec'd
 * process is this command's child and dies with it, so there are no detach keys. The exit status is the command's, 126 / 127 when it cannot be executed / is not found, 125 when
 * berth fails.
 * @module
 */
import { Container } from '../container/container.js';
import { ContainerStartError, InvalidOptionsError } from '../errors.js';
import { UsageError, type FlagSpec } from './args.js';
import type { Command } from './command.js';
import { openSession } from './terminal-session.js';

const EXEC_FLAGS: FlagSpec[] = [
  { long: 'env', short: 'e', type: 'list', help: 'Set environment variables', valueName: 'list' },
  { long: 'user', short: 'u', type: 'string', help: 'Username or UID (format: "<name|uid>[:<group|gid>]")' },
  { long: 'workdir', short: 'w', type: 'string', help: 'Working directory inside the container' },
  { long: 'detach', short: 'd', type: 'bool', help: 'Detached mode: run command in the background' },
  { long: 'interactive', short: 'i', type: 'bool', help: 'Keep STDIN open even if not attached' },
  { long: 'tty', short: 't', type: 'bool', help: 'Allocate a pseudo-TTY' },
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
    const detach = f.bool('detach');
    const tty = f.bool('tty') && !detach;
    const interactive = f.bool('interactive');
    if (tty && interactive && !ctx.stdin.isTTY) {
      ctx.stderr.write('the input device is not a TTY\n');
      return 1;
    }
    const [name, ...cmd] = args;
    const user = f.string('user');
    const workdir = f.string('workdir');
    try {
      const c = await Container.get(name!, { root: ctx.config().root });
      if (detach) {
        // docker exec -d: started, then left running (its output goes nowhere); this command returns at once.
        await c.exec({
          cmd, env: envEntries(f.list('env'), ctx.env), detached: true, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore',
          ...(user !== undefined ? { user } : {}), ...(workdir !== undefined ? { workdir } : {}),
        });
        return 0;
      }
      const out = ctx.stdout as { isTTY?: boolean; rows?: number; columns?: number };
      const p = await c.exec({
        ...(interactive ? { stdin: 'pipe' as const } : {}),
        ...(tty ? { tty: true, ...(out.isTTY && out.rows && out.columns ? { consoleSize: { rows: out.rows, columns: out.columns } } : {}) } : {}),
        cmd,
        env: envEntries(f.list('env'), ctx.env),
        ...(user !== undefined ? { user } : {}),
        ...(workdir !== undefined ? { workdir } : {}),
      });
      // With a terminal, keys (^C) reach the process through it; signals to this command are not proxied.
      const handlers = (tty ? [] : FORWARDED).map((sig) => {
        const h = () => p.kill(sig);
        process.on(sig, h);
        return [sig, h] as const;
      });
      const session = openSession(ctx, { tty, stdin: interactive, detachKeys: Buffer.alloc(0), onResize: (size) => p.resize(size) });
      if (session.input && p.stdin) {
        session.input.pipe(p.stdin);
        p.stdin.on('error', () => undefined); // the process exited with input pending
      }
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
        session.close();
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
