// Interactive use of the berth command through a real terminal: `run -it` (typing, the screen, ^C, resize),
// `exec -it`, stdin without a terminal (`-i`), `attach`, detach keys, `start -ai`, and the library's tty option.
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { Container } from '../lib/index.js';
import { cli, startCli } from './helpers/cli.js';
import { startPty } from './helpers/pty.js';
import { cliWorld } from './helpers/cli-world.js';

const world = cliWorld('cli-tty');
const { root, rootfs } = world;
let env: Record<string, string>;

beforeAll(async () => {
  env = world.env;
  expect((await cli(['pull', 'busybox'], env)).code).toBe(0);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** busybox sh's prompt at the end of the screen, maybe followed by its line editor's escape sequences. */
const PROMPT = /# (?:\x1b\[[0-9;]*[A-Za-z]|\r|\/ # )*$/;
/** Typed at the shell: a foreground program that reports the terminal's size when it gets SIGWINCH. */
const WAIT_FOR_WINCH = 'sh -c \'w() { echo WINCH $(stty size); exit 0; }; trap w WINCH; echo armed; while :; do sleep 0.05; done\'\r';

describe('berth run -it', () => {
  it('gives an interactive shell on a terminal: typing, the screen, ^C, resize, exit status', async () => {
    const s = startPty(['run', '--rm', '-it', '--name', 'shell', 'busybox', 'sh'], env, { rows: 30, columns: 100 });
    await s.waitFor(PROMPT);
    // The container's own terminal, of this window's size, in its own devpts.
    s.type('echo $((6*7)); tty; stty size; echo TERM=$TERM\r');
    await s.waitFor(/42\r\n\/dev\/pts\/0\r\n30 100\r\nTERM=xterm\r\n/);
    // The terminal echoes what is typed (the container's line discipline, in raw mode here).
    expect(s.screen()).toContain('echo $((6*7))');

    // Resizing the window reaches the foreground program (SIGWINCH through the shim to the container's terminal).
    let mark = s.screen().length;
    s.type(WAIT_FOR_WINCH);
    await s.waitFor(/armed\r\n/, 15_000, mark);
    s.resize(40, 132);
    await s.waitFor(/WINCH 40 132\r\n/, 15_000, mark);

    // ^C interrupts the foreground program in the container, not berth.
    mark = s.screen().length;
    s.type('sleep 100; echo after\r');
    await sleep(500);
    s.type('\x03');
    await s.waitFor(/\^C/, 15_000, mark);
    s.type('echo still here\r');
    await s.waitFor(/still here\r\n/, 15_000, mark);
    expect(s.screen().slice(mark)).not.toMatch(/\nafter\r\n/);

    s.type('exit 7\r');
    const r = await s.done;
    expect(r.code).toBe(7);
  });

  it('detaches with ctrl-p ctrl-q, leaving the container running; attach brings the terminal back', async () => {
    const s = startPty(['run', '-it', '--name', 'detachable', 'busybox', 'sh'], env);
    await s.waitFor(PROMPT);
    const mark = s.screen().length;
    s.type('echo before > /mark\r');
    await s.waitFor(PROMPT, 15_000, mark + 1);
    s.type('\x10\x11');
    const r = await s.done;
    expect(r.code).toBe(0);
    const ps = await cli(['ps', '--format', '{{.Names}} {{.State}}'], env);
    expect(ps.stdout).toContain('detachable running');

    const a = startPty(['attach', 'detachable'], env);
    await sleep(500);
    a.type('cat /mark; exit 3\r');
    await a.waitFor(/before\r\n/);
    expect((await a.done).code).toBe(3);
    expect((await cli(['rm', 'detachable'], env)).code).toBe(0);
  });

  it('refuses -it when stdin is not a terminal, as docker does', async () => {
    const r = await cli(['run', '--rm', '-it', 'busybox', 'true'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('the input device is not a TTY\n');
  });

  it('-t without a terminal around still gives the program one (output with CR LF)', async () => {
    const r = await cli(['run', '--rm', '-t', 'busybox', 'sh', '-c', 'tty; echo out; echo err >&2'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('/dev/pts/0\r\nout\r\nerr\r\n');
    expect(r.stderr).toBe('');
  });
});

describe('berth run -it --init', () => {
  it('^C reaches the program through the init, which exits with its status', async () => {
    const s = startPty(['run', '--rm', '-it', '--init', 'busybox', 'sh', '-c', 'trap "echo caught; exit 6" INT; echo ready; while :; do sleep 0.05; done'], env);
    await s.waitFor(/ready\r\n/);
    s.type('\x03');
    await s.waitFor(/caught\r\n/);
    expect((await s.done).code).toBe(6);
  });
});

describe('stdin without a terminal', () => {
  it('run -i passes piped input and its end (EOF)', async () => {
    const r = await cli(['run', '--rm', '-i', 'busybox', 'sh', '-c', 'wc -l; echo done'], env, 'a\nb\nc\n');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('3\ndone\n');
  });

  it('run without -i gives the program no input', async () => {
    const r = await cli(['run', '--rm', 'busybox', 'sh', '-c', 'cat; echo rc=$?'], env, 'ignored\n');
    expect(r.stdout).toBe('rc=0\n');
  });

  it('create -i then start -ai: typed input reaches the program', async () => {
    const created = await cli(['create', '-i', '--name', 'later', 'busybox', 'sh', '-c', 'read x; echo got:$x'], env);
    expect(created.code).toBe(0);
    const r = await cli(['start', '-ai', 'later'], env, 'hello\n');
    expect(r.stdout).toBe('got:hello\n');
    expect(r.code).toBe(0);
    expect((await cli(['rm', 'later'], env)).code).toBe(0);
  });

  it('attach -i to a detached container: input goes in, output comes out, the exit status is the container\'s', async () => {
    const started = await cli(['run', '-d', '-i', '--name', 'reader', 'busybox', 'sh', '-c', 'while read l; do echo "<$l>"; [ "$l" = quit ] && exit 5; done'], env);
    expect(started.code).toBe(0);
    const a = startCli(['attach', 'reader'], env, 'one\nquit\n');
    const r = await a.done;
    expect(r.stdout).toBe('<one>\n<quit>\n');
    expect(r.code).toBe(5);
    const stopped = await cli(['attach', 'reader'], env);
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain('You cannot attach to a stopped container, start it first');
    expect((await cli(['rm', 'reader'], env)).code).toBe(0);
  });
});

describe('berth exec -it', () => {
  it('runs a shell in a running container on its own terminal', async () => {
    expect((await cli(['run', '-d', '--name', 'host', 'busybox', 'sleep', '300'], env)).code).toBe(0);
    try {
      const s = startPty(['exec', '-it', 'host', 'sh'], env, { rows: 20, columns: 70 });
      await s.waitFor(PROMPT);
      s.type('tty; stty size\r');
      await s.waitFor(/\/dev\/pts\/\d+\r\n20 70\r\n/);
      let mark = s.screen().length;
      s.type(WAIT_FOR_WINCH);
      await s.waitFor(/armed\r\n/, 15_000, mark);
      s.resize(33, 101);
      await s.waitFor(/WINCH 33 101\r\n/, 15_000, mark);
      mark = s.screen().length;
      s.type('sleep 100\r');
      await sleep(300);
      s.type('\x03');
      await s.waitFor(/\^C/, 15_000, mark);
      s.type('exit 4\r');
      expect((await s.done).code).toBe(4);
      // exec -i without a terminal: piped input and EOF.
      const r = await cli(['exec', '-i', 'host', 'sh', '-c', 'tr a-z A-Z'], env, 'shout\n');
      expect(r.stdout).toBe('SHOUT\n');
    } finally {
      await cli(['rm', '-f', 'host'], env);
    }
  });
});

describe('the library: tty option', () => {
  it('gives the program a terminal in the container\'s devpts, with /dev/console, a size and resize', async () => {
    await using c = await Container.create({
      root, rootfs, cmd: ['sh', '-c', 'tty; stty size; ls -l /dev/console; trap "stty size; exit 9" WINCH; echo ready; read x; echo got:$x; while :; do sleep 0.05; done'],
      tty: true, stdin: 'pipe', consoleSize: { rows: 12, columns: 34 },
    });
    expect(c.stderr).toBeNull();
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    await c.start();
    for (let i = 0; i < 100 && !out.includes('ready'); i++) await sleep(50);
    c.stdin!.write('typed\r');
    for (let i = 0; i < 100 && !out.includes('got:typed'); i++) await sleep(50);
    await c.resize({ rows: 50, columns: 60 });
    const exit = await c.wait();
    expect(exit.exitCode).toBe(9);
    expect(out).toMatch(/^\/dev\/pts\/0\r\n12 34\r\ncrw--w---- +1 root +5 +136, +0 .* \/dev\/console\r\nready\r\ntyped\r\ngot:typed\r\n50 60\r\n$/);
    const logs: string[] = [];
    for await (const e of c.logs()) logs.push(`${e.stream}:${e.log}`);
    expect(logs.join('')).toContain('stdout:got:typed');
    expect(logs.some((l) => l.startsWith('stderr'))).toBe(false);
  });

  it('works for run(), in a user namespace, and for a non-root user of an exec', async () => {
    const r = await Container.run({ root, rootfs, cmd: ['sh', '-c', 'tty; echo err >&2; exit 3'], tty: true });
    expect(r).toMatchObject({ exitCode: 3, stdout: '/dev/pts/0\r\nerr\r\n', stderr: '' });
    await using c = await Container.create({ root, rootfs, cmd: ['sleep', '30'], userns: 'auto', tty: true });
    await c.start();
    const p = await c.exec({ cmd: ['sh', '-c', 'tty; id -u; stat -c %u $(tty)'], tty: true, user: '1000' });
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    expect((await p.wait()).exitCode).toBe(0);
    for (let i = 0; i < 40 && !/\r\n.*\r\n.*\r\n/.test(out); i++) await sleep(50);
    // The exec's own terminal (pts/1: the init has pts/0), owned by the exec's user inside the namespace.
    expect(out).toBe('/dev/pts/1\r\n1000\r\n1000\r\n');
  });

  it('drives the interactive shell example (examples/shell.ts) on a terminal', async () => {
    const example = fileURLToPath(new URL('../dist/examples/shell.js', import.meta.url));
    const s = startPty([rootfs], {}, { rows: 25, columns: 90 }, example);
    await s.waitFor(PROMPT);
    s.type('hostname; stty size; exit 3\r');
    // (Node's raw mode keeps the terminal's output processing: CR LF from the container shows as CR CR LF.)
    await s.waitFor(/shell\r?\r\n25 90\r?\r\n/);
    const r = await s.done;
    expect(r.screen).toContain('[shell exited with 3]');
    expect(r.code).toBe(3);
  });

  it('refuses stdio choices a terminal cannot honour', async () => {
    await expect(Container.create({ root, rootfs, cmd: ['true'], tty: true, stdout: 'inherit' })).rejects.toThrow(/with tty, stdout must be 'pipe' or 'ignore'/);
    await using c = await Container.create({ root, rootfs, cmd: ['true'] });
    await expect(c.resize({ rows: 10, columns: 10 })).rejects.toThrow(/has no terminal/);
  });
});
