// The init option (docker's --init): berth-docker-init as PID 1 forwards signals to the program, reaps orphaned
// zombies and passes the program's exit status on; in the library, with images and user namespaces, and through the
// berth command.
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Container } from '../lib/index.js';
import { collect } from '../lib/container/stdio.js';
import { initBinaryPath, IN_CONTAINER_INIT_PATH } from '../lib/container/init-process.js';
import { inspectContainer } from '../lib/cli/views.js';
import { cli, startCli } from './helpers/cli.js';
import { BUSYBOX } from './helpers/env.js';
import { cliWorld } from './helpers/cli-world.js';

const world = cliWorld('init');
const { root, rootfs } = world;
let env: Record<string, string>;

beforeAll(() => {
  env = world.env;
});

const base = { root, rootfs };

/** Runs `cmd` in the running container `c` and collects its output. */
async function execIn(c: Container, cmd: string[]) {
  const p = await c.exec({ cmd });
  const [stdout, stderr, exit] = await Promise.all([collect(p.stdout), collect(p.stderr), p.wait()]);
  return { stdout, stderr, exitCode: exit.exitCode };
}

/** The processes in the container's pid namespace (seen by an exec'd `cat`): pid, command name, state letter. */
async function processes(c: Container): Promise<{ pid: number; comm: string; state: string }[]> {
  const r = await execIn(c, ['sh', '-c', 'cat /proc/[0-9]*/stat 2>/dev/null']);
  return r.stdout.split('\n').filter(Boolean).map((l) => {
    const close = l.lastIndexOf(')');
    return { pid: Number(l.slice(0, l.indexOf(' '))), comm: l.slice(l.indexOf('(') + 1, close), state: l.slice(close + 2, close + 3) };
  });
}

/** Waits until `check` holds (polling every 100 ms), failing after 10 s with `what`. */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Resolves once `c` printed a line matching `re` on stdout. */
function printed(c: Container, re: RegExp): Promise<void> {
  let out = '';
  return new Promise((resolve) => {
    c.stdout!.on('data', (d) => {
      out += d;
      if (re.test(out)) resolve();
    });
  });
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('the init option', () => {
  it('runs berth-docker-init as PID 1, read-only at /sbin/docker-init, with the program as its child', async () => {
    const r = await Container.run({
      ...base, init: true,
      cmd: ['sh', '-c', 'tr "\\0" " " < /proc/1/cmdline; echo; echo self=$$ parent=$PPID; awk \'$5 == "/sbin/docker-init" {print $6}\' /proc/self/mountinfo'],
    });
    expect(r.exitCode).toBe(0);
    const [cmdline, ids, options] = r.stdout.split('\n');
    expect(cmdline).toBe(`${IN_CONTAINER_INIT_PATH} -- sh -c ${'tr "\\0" " " < /proc/1/cmdline; echo; echo self=$$ parent=$PPID; awk \'$5 == "/sbin/docker-init" {print $6}\' /proc/self/mountinfo'} `);
    expect(ids).toBe('self=2 parent=1');
    expect(options!.split(',')).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev']));
    // Without it the program itself is PID 1.
    const plain = await Container.run({ ...base, cmd: ['sh', '-c', 'echo self=$$'] });
    expect(plain.stdout).toBe('self=1\n');
  });

  it('records the program, not the init, as the command; inspect shows HostConfig.Init and hides the mount', async () => {
    await using c = await Container.create({ ...base, init: true, cmd: ['sleep', '5'], mounts: [{ type: 'tmpfs', target: '/scratch' }] });
    const info = await c.inspect();
    expect(info.init).toBe(true);
    expect(info.command).toEqual(['sleep', '5']);
    expect(info.spec.process.args).toEqual([IN_CONTAINER_INIT_PATH, '--', 'sleep', '5']);
    expect(info.spec.mounts?.at(-1)).toEqual({
      destination: IN_CONTAINER_INIT_PATH, type: 'bind', source: initBinaryPath(), options: ['bind', 'ro', 'nosuid', 'nodev'],
    });
    const view = inspectContainer(info) as { Path: string; Args: string[]; HostConfig: { Init: boolean }; Mounts: { Destination: string }[] };
    expect(view.Path).toBe('sleep');
    expect(view.Args).toEqual(['5']);
    expect(view.HostConfig.Init).toBe(true);
    expect(view.Mounts.map((m) => m.Destination)).toEqual(['/scratch']);
    await using plain = await Container.create({ ...base, cmd: ['sleep', '5'] });
    expect((await plain.inspect()).init).toBe(false);
    expect((inspectContainer(await plain.inspect()) as { HostConfig: { Init: boolean } }).HostConfig.Init).toBe(false);
  });

  it('reaps orphans re-parented to it, which a PID 1 that never waits leaves as zombies', async () => {
    // The program leaves three orphans that exit after 0.5 s, then becomes `sleep`, which never waits for anyone.
    const script = 'for i in 1 2 3; do sh -c "sleep 0.5 &"; done; exec sleep 100';
    await using plain = await Container.create({ ...base, cmd: ['sh', '-c', script] });
    await using withInit = await Container.create({ ...base, init: true, cmd: ['sh', '-c', script] });
    await plain.start();
    await withInit.start();
    const sleeps = async (c: Container) => (await processes(c)).filter((p) => p.comm === 'sleep');
    // Without an init the orphans stay zombies under PID 1 (the `sleep 100` it became): the check sees them.
    await until(async () => (await sleeps(plain)).filter((p) => p.state === 'Z').length === 3, 'three zombies under a PID 1 that never waits');
    // With it, once the orphans are gone only the program's `sleep 100` is left, and it is the init's child.
    await until(async () => (await sleeps(withInit)).length === 1, 'the orphans to be reaped');
    expect(await sleeps(withInit)).toEqual([{ pid: 2, comm: 'sleep', state: 'S' }]);
    // Orphans of an exec'd process go to the init as well (one off the exec's pipes: berth ends those with it).
    expect((await execIn(withInit, ['sh', '-c', 'sleep 0.5 </dev/null >/dev/null 2>&1 & echo started'])).stdout).toBe('started\n');
    expect((await sleeps(withInit)).length).toBe(2);
    await until(async () => (await sleeps(withInit)).length === 1, 'the exec\'s orphan to be reaped');
    expect((await processes(withInit)).filter((p) => p.state === 'Z')).toEqual([]);
  });

  it('forwards signals to the program: stop() ends a shell that as PID 1 would ignore SIGTERM', async () => {
    // Control: sh as PID 1 gets no default action for SIGTERM, so stop() has to wait for its SIGKILL.
    await using plain = await Container.create({ ...base, cmd: ['sh', '-c', 'echo up; sleep 100'] });
    const plainUp = printed(plain, /up/);
    await plain.start();
    await plainUp;
    let t = Date.now();
    expect(await plain.stop({ timeout: 1 })).toEqual({ exitCode: 137, signal: 'SIGKILL', oomKilled: false });
    expect(Date.now() - t).toBeGreaterThanOrEqual(900);

    await using c = await Container.create({ ...base, init: true, cmd: ['sh', '-c', 'echo up; sleep 100'] });
    const up = printed(c, /up/);
    await c.start();
    await up;
    t = Date.now();
    // The shell dies of the forwarded SIGTERM; the init exits with 128 + 15 by itself, long before a SIGKILL.
    expect(await c.stop({ timeout: 20 })).toEqual({ exitCode: 143, signal: null, oomKilled: false });
    expect(Date.now() - t).toBeLessThan(5000);
  });

  it('forwards signals from the host and from inside the container to a program that handles them', async () => {
    await using c = await Container.create({
      ...base, init: true,
      cmd: ['sh', '-c', 'n=0; trap "n=\\$((n+1)); echo usr1-\\$n" USR1; trap "echo bye; exit 7" INT; echo ready; while :; do sleep 0.05; done'],
    });
    const ready = printed(c, /ready/);
    const first = printed(c, /usr1-1/);
    const second = printed(c, /usr1-2/);
    const bye = printed(c, /bye/);
    await c.start();
    await ready;
    await c.kill('SIGUSR1');
    await first;
    // Sent to PID 1 from inside its own namespace: delivered because the init blocks (not ignores) it.
    expect((await execIn(c, ['kill', '-USR1', '1'])).exitCode).toBe(0);
    await second;
    await c.kill('SIGINT');
    await bye;
    expect(await c.wait()).toEqual({ exitCode: 7, signal: null, oomKilled: false });
  });

  it('exits with the program\'s status, 128 + N when signal N killed it', async () => {
    expect((await Container.run({ ...base, init: true, cmd: ['sh', '-c', 'exit 3'] })).exitCode).toBe(3);
    expect((await Container.run({ ...base, init: true, cmd: ['true'] })).exitCode).toBe(0);
    const killed = await Container.run({ ...base, init: true, cmd: ['sh', '-c', 'kill -KILL $$'] });
    expect(killed).toMatchObject({ exitCode: 137, signal: null });
    expect((await Container.run({ ...base, init: true, cmd: ['sh', '-c', 'kill -USR2 $$'] })).exitCode).toBe(128 + 12);
  });

  it('reports a program it cannot run: 127 when missing, 126 when not executable', async () => {
    const missing = await Container.run({ ...base, init: true, cmd: ['nosuch'] });
    expect(missing.exitCode).toBe(127);
    expect(missing.stderr).toBe('berth-init: exec nosuch: No such file or directory\n');
    const dir = await Container.run({ ...base, init: true, cmd: ['/etc'] });
    expect(dir.exitCode).toBe(126);
    expect(dir.stderr).toBe('berth-init: exec /etc: Permission denied\n');
  });

  it('works in an image without /sbin, with a read-only rootfs', async () => {
    const image = `${world.registry.host}/library/busybox`;
    const r = await Container.run({
      root, image, init: true, readonlyRootfs: true,
      cmd: ['sh', '-c', 'tr "\\0" " " < /proc/1/cmdline; echo; ls /sbin; touch /x 2>/dev/null || echo ro'],
    });
    expect(r.stdout).toBe(`${IN_CONTAINER_INIT_PATH} -- sh -c tr "\\0" " " < /proc/1/cmdline; echo; ls /sbin; touch /x 2>/dev/null || echo ro \ndocker-init\nro\n`);
    // A rootfs directory without /sbin gets the mount point created, as for any bind target.
    const bare = mkdtempSync(join(tmpdir(), 'berth-test-init-bare-'));
    try {
      cpSync(join(BUSYBOX, 'bin'), join(bare, 'bin'), { recursive: true, verbatimSymlinks: true });
      const b = await Container.run({ root, rootfs: bare, init: true, readonlyRootfs: true, cmd: ['sh', '-c', 'echo $$'] });
      expect(b).toMatchObject({ exitCode: 0, stdout: '2\n' });
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  });

  it('works in a user namespace, where the container\'s root can neither write nor chmod the host\'s binary', async () => {
    const binary = initBinaryPath();
    const before = { sum: sha256(binary), mode: statSync(binary).mode };
    // SYS_ADMIN in its own user namespace lets it try to remount the bind read-write. chmod to the mode the file
    // already has and an empty append keep this harmless even if they succeeded.
    const mode = (before.mode & 0o7777).toString(8);
    const r = await Container.run({
      ...base, init: true, userns: 'auto', capAdd: ['SYS_ADMIN'],
      cmd: ['sh', '-c', [
        'echo self=$$',
        'ls -ln /sbin/docker-init | awk \'{print "owner=" $3}\'',
        'mount -o remount,bind,rw /sbin/docker-init && echo remounted',
        `chmod ${mode} /sbin/docker-init 2>&1 || echo chmod-refused`,
        '(: >> /sbin/docker-init) || echo write-refused',
      ].join('; ')],
    });
    expect(r.stdout).toMatch(/^self=2\nowner=65534\n/);
    expect(r.stdout).toContain('chmod-refused');
    expect(r.stdout).toContain('write-refused');
    // Remounted read-write, the file is still not the container root's: refused for want of permission (a file
    // the container owned would only be protected while it runs, by ETXTBSY).
    if (r.stdout.includes('remounted')) {
      expect(r.stdout).toMatch(/chmod: .*Operation not permitted/);
      expect(r.stderr).toMatch(/can't create \/sbin\/docker-init: Permission denied/);
    }
    expect({ sum: sha256(binary), mode: statSync(binary).mode }).toEqual(before);
  });

  it('is left out, as by docker, in the host\'s pid namespace', async () => {
    await using c = await Container.create({ ...base, init: true, namespaces: { pid: 'host' }, cmd: ['true'] });
    const info = await c.inspect();
    expect(info.spec.process.args).toEqual(['true']);
    expect(info.spec.mounts?.some((m) => m.destination === IN_CONTAINER_INIT_PATH)).toBe(false);
  });
});

describe('berth run/create --init', () => {
  it('runs the init, passes exit statuses and exec failures on', async () => {
    const r = await cli(['run', '--rm', '--init', 'busybox', 'sh', '-c', 'tr "\\0" " " < /proc/1/cmdline; echo; echo $$'], env);
    expect(r).toMatchObject({ code: 0, stdout: `${IN_CONTAINER_INIT_PATH} -- sh -c tr "\\0" " " < /proc/1/cmdline; echo; echo $$ \n2\n` });
    expect((await cli(['run', '--rm', '--init', 'busybox', 'sh', '-c', 'exit 3'], env)).code).toBe(3);
    const missing = await cli(['run', '--rm', '--init', 'busybox', 'nosuch'], env);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain('berth-init: exec nosuch: No such file or directory');
    // Without --init the program is PID 1.
    expect((await cli(['run', '--rm', 'busybox', 'sh', '-c', 'echo $$'], env)).stdout).toBe('1\n');
  });

  it('stops a detached shell promptly; inspect shows Init, Path and Args as docker does', async () => {
    expect((await cli(['create', '--init', '--name', 'init-made', 'busybox', 'sleep', '7'], env)).code).toBe(0);
    expect((await cli(['inspect', '-f', '{{.HostConfig.Init}} {{.Path}} {{json .Args}}', 'init-made'], env)).stdout).toBe('true sleep ["7"]\n');
    expect((await cli(['rm', 'init-made'], env)).code).toBe(0);

    const run = startCli(['run', '--init', '--name', 'init-run', 'busybox', 'sh', '-c', 'echo up; sleep 100'], env);
    await run.waitFor(/up/);
    const t = Date.now();
    expect((await cli(['stop', 'init-run'], env)).code).toBe(0); // docker's default timeout: 10 s
    expect(Date.now() - t).toBeLessThan(5000);
    expect((await run.done).code).toBe(143);
    expect((await cli(['inspect', '-f', '{{.State.ExitCode}} {{.HostConfig.Init}}', 'init-run'], env)).stdout).toBe('143 true\n');
    expect((await cli(['rm', 'init-run'], env)).code).toBe(0);
  });

  it('takes "init" from the config file, and --init=false overrides it', async () => {
    const config = join(world.home, 'init-config.json');
    writeFileSync(config, JSON.stringify({ init: true }));
    const withConfig = { ...env, BERTH_CONFIG: config };
    expect((await cli(['run', '--rm', 'busybox', 'sh', '-c', 'echo $$'], withConfig)).stdout).toBe('2\n');
    expect((await cli(['run', '--rm', '--init=false', 'busybox', 'sh', '-c', 'echo $$'], withConfig)).stdout).toBe('1\n');
  });
});
