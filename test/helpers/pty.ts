/**
 * Runs the built `berth` command on a terminal of its own, as a person at a terminal would: a new pty from the
 * host's devpts, the command as its session leader with the pty as controlling terminal (util-linux `setsid -c`),
 * so that raw mode, ^C and SIGWINCH on resize behave as they do in a real terminal window. The test reads the
 * screen (everything written to the terminal), types, and resizes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import { ReadStream } from 'node:tty';
import { native } from '../../lib/native.js';
import { CLI } from './cli.js';

/** A CLI process on a terminal. */
export interface PtySession {
  child: ChildProcess;
  /** Everything the terminal showed so far (output and echoed input, with the terminal's CR LF). */
  screen(): string;
  /** Types bytes at the keyboard. */
  type(text: string): void;
  /** Resizes the terminal window (the command gets SIGWINCH). */
  resize(rows: number, columns: number): void;
  /** Resolves once the screen (from `from`, default the start) matches `re`; rejects after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs?: number, from?: number): Promise<void>;
  /** Resolves with the exit status when the command exited and the terminal showed all its output. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; screen: string }>;
}

/** Starts `berth args...` (or another Node `script`) on a new terminal of `rows` × `columns`. */
export function startPty(args: readonly string[], env: Record<string, string>, size = { rows: 24, columns: 80 }, script = CLI): PtySession {
  const [master, slave] = native.openPty();
  native.setWinsize(master, size.rows, size.columns);
  let child: ChildProcess;
  try {
    child = spawn('setsid', ['-c', process.execPath, script, ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TERM: 'xterm', ...env },
      stdio: [slave, slave, slave],
    });
  } finally {
    closeSync(slave);
  }
  const term = new ReadStream(master);
  let screen = '';
  const watchers: { re: RegExp; from: number; resolve: () => void }[] = [];
  const check = () => {
    for (const w of [...watchers]) {
      if (w.re.test(screen.slice(w.from))) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  term.on('data', (d: Buffer) => {
    const text = d.toString('utf8');
    screen += text;
    // A real terminal answers a cursor position request (busybox's line editor asks, and waits for it).
    if (text.includes('\x1b[6n')) term.write('\x1b[1;1R');
    check();
  });
  const ended = new Promise<void>((resolve) => {
    term.on('error', () => resolve()); // EIO: the command and its children closed the terminal
    term.on('end', () => resolve());
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const done = (async () => {
    const status = await exited;
    await Promise.race([ended, new Promise((r) => setTimeout(r, 2000))]);
    term.destroy();
    return { ...status, screen };
  })();
  return {
    child,
    screen: () => screen,
    type: (text) => void term.write(text),
    resize: (rows, columns) => native.setWinsize(master, rows, columns),
    waitFor(re, timeoutMs = 15_000, from = 0) {
      if (re.test(screen.slice(from))) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} on the terminal: ${JSON.stringify(screen.slice(from))}`)), timeoutMs);
        watchers.push({ re, from, resolve: () => { clearTimeout(timer); resolve(); } });
      });
    },
    done,
  };
}
