// create/start/wait/kill/stop/remove/inspect/list, exit codes and signals, errors, owner death.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import {
  Container,
  ContainerStartError,
  ContainerStateError,
  InvalidOptionsError,
  NameConflictError,
  RootfsError,
} from '../lib/index.js';
import { berthCgroups, tempRoot } from './helpers/env.js';

const { root, rootfs: BUSYBOX, cleanup } = tempRoot('lifecycle');
afterAll(cleanup);
const base = { root, rootfs: BUSYBOX };

describe('exit status', () => {
  it('propagates exit codes', async () => {
    expect((await Container.run({ ...base, cmd: ['sh', '-c', 'exit 42'] })).exitCode).toBe(42);
    expect((await Container.run({ ...base, cmd: ['true'] })).exitCode).toBe(0);
  });

  it('reports the signal that killed the init', async () => {
    await using c = await Container.create({ ...base, cmd: ['sleep', '1000'] });
    await c.start();
    await c.kill('SIGKILL');
    const exit = await c.wait();
    expect(exit).toEqual({ exitCode: 137, signal: 'SIGKILL', oomKilled: false });
  });

  it('delivers signals the program handles', async () => {
    await using c = await Container.create({
      ...base,
      cmd: ['sh', '-c', 'trap "echo got-term; exit 3" TERM; echo ready; while :; do sleep 0.05; done'],
    });
    await c.start();
    await new Promise<void>((resolve) => c.stdout!.once('data', () => resolve()));
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    await c.kill('SIGTERM');
    expect((await c.wait()).exitCode).toBe(3);
    await new Promise((r) => setTimeout(r, 50));
    expect(out).toContain('got-term');
  });
});

describe('create/start split', () => {
  it('creates the init blocked before execve and runs the program only on start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-split-'));
    try {
      await using c = await Container.create({
        ...base,
        cmd: ['sh', '-c', 'echo started > /out/marker'],
        mounts: [{ type: 'bind', source: dir, target: '/out' }],
      });
      expect(c.pid).toBeGreaterThan(0);
      expect(existsSync(`/proc/${c.pid}`)).toBe(true);
      expect((await c.inspect()).status).toBe('created');
      await new Promise((r) => setTimeout(r, 100));
      expect(existsSync(join(dir, 'marker'))).toBe(false);
      await c.start();
      expect((await c.wait()).exitCode).toBe(0);
      expect(readFileSync(join(dir, 'marker'), 'utf8')).toBe('started\n');
      expect((await c.inspect()).status).toBe('exited');
      // Started again (docker start of an exited container): the program runs once more.
      rmSync(join(dir, 'marker'));
      await c.start();
      expect((await c.wait()).exitCode).toBe(0);
      expect(readFileSync(join(dir, 'marker'), 'utf8')).toBe('started\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('removing a created container never runs it', async () => {
    const c = await Container.create({ ...base, cmd: ['true'] });
    const pid = c.pid!;
    await c.remove();
    expect(existsSync(`/proc/${pid}`)).toBe(false);
  });
});

describe('stop', () => {
  it('sends SIGTERM, then SIGKILL after the timeout', async () => {
    // sleep as pid 1 has no SIGTERM handler, so the kernel ignores SIGTERM for it: stop must escalate.
    await using c = await Container.create({ ...base, cmd: ['sleep', '1000'] });
    await c.start();
    const t0 = Date.now();
    const exit = await c.stop({ timeout: 1 });
    const took = Date.now() - t0;
    expect(exit.signal).toBe('SIGKILL');
    expect(took).toBeGreaterThanOrEqual(900);
  });

  it('returns as soon as the program exits on SIGTERM', async () => {
    await using c = await Container.create({
      ...base,
      cmd: ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 0.05; done'],
      stopTimeout: 30,
    });
    await c.start();
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    expect((await c.stop()).exitCode).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

describe('errors', () => {
  it('reports a missing executable as Docker does', async () => {
    const err = await Container.run({ ...base, cmd: ['nosuch'] }).catch((e) => e);
    expect(err).toBeInstanceOf(ContainerStartError);
    expect(err.code).toBe('ERR_EXEC_NOT_FOUND');
    expect(err.message).toBe('exec: "nosuch": executable file not found in $PATH');
    expect(err.exitStatus).toBe(127);
    const abs = await Container.run({ ...base, cmd: ['/no/such/bin'] }).catch((e) => e);
    expect(abs.message).toBe('exec: "/no/such/bin": no such file or directory');
  });

  it('reports a file that is not executable with exit status 126', async () => {
    const rootfs = mkdtempSync(join(tmpdir(), 'berth-noexec-'));
    try {
      mkdirSync(join(rootfs, 'bin'));
      writeFileSync(join(rootfs, 'bin', 'script'), '#!/bin/sh\necho hi\n');
      chmodSync(join(rootfs, 'bin', 'script'), 0o644);
      const err = await Container.run({ root, rootfs, cmd: ['/bin/script'] }).catch((e) => e);
      expect(err).toBeInstanceOf(ContainerStartError);
      expect(err.exitStatus).toBe(126);
      expect(err.message).toContain('permission denied');
    } finally {
      rmSync(rootfs, { recursive: true, force: true });
    }
  });

  it('reports a missing rootfs', async () => {
    const err = await Container.run({ root, rootfs: '/nonexistent/rootfs', cmd: ['true'] }).catch((e) => e);
    expect(err).toBeInstanceOf(RootfsError);
    expect(err.message).toContain('/nonexistent/rootfs');
  });

  it('names each bad option and why', async () => {
    const err = await Container.create({
      ...base,
      cmd: ['true'],
      hostname: 'not a hostname!',
      capAdd: ['CAP_NOPE'],
      resources: { memory: 'lots' as never },
    }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidOptionsError);
    expect(err.code).toBe('ERR_INVALID_OPTIONS');
    const paths = err.issues.map((i: { path: string }) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['hostname', 'capAdd.0', 'resources.memory']));
    expect(err.message).toContain('unknown capability');
    await expect(Container.create({ ...base, cmd: [] })).rejects.toThrow(/command must not be empty/);
    await expect(Container.create({ ...base, cmd: ['true'], workdir: 'relative' })).rejects.toThrow(/workdir: must be an absolute path/);
    await expect(Container.create({ ...base, cmd: ['true'], bogus: 1 } as never)).rejects.toThrow(InvalidOptionsError);
  });

  it('reports a failing setup step with its path and errno', async () => {
    const err = await Container.run({
      ...base,
      cmd: ['true'],
      mounts: [{ type: 'bind', source: '/nonexistent/source', target: '/mnt' }],
    }).catch((e) => e);
    expect(err).toBeInstanceOf(ContainerStartError);
    expect(err.message).toBe('container init failed: mount /mnt: ENOENT (no such file or directory)');
    expect(err.step).toBe('mount');
  });

  it('refuses a name that is taken', async () => {
    await using a = await Container.create({ ...base, cmd: ['true'], name: 'taken-name' });
    const err = await Container.create({ ...base, cmd: ['true'], name: 'taken-name' }).catch((e) => e);
    expect(err).toBeInstanceOf(NameConflictError);
    expect(err.message).toContain(a.id);
  });
});

describe('state', () => {
  it('inspects, lists and finds containers by name and id prefix', async () => {
    await using c = await Container.create({ ...base, cmd: ['sleep', '100'], name: 'listed', labels: { app: 'x' } });
    await c.start();
    const info = await c.inspect();
    expect(info).toMatchObject({ name: 'listed', status: 'running', labels: { app: 'x' }, command: ['sleep', '100'] });
    expect(info.pid).toBe(c.pid);
    const list = await Container.list({ root });
    expect(list.map((i) => i.id)).toContain(c.id);
    expect((await Container.get('listed', { root })).id).toBe(c.id);
    expect((await Container.get(c.id.slice(0, 12), { root })).id).toBe(c.id);
    await expect(c.remove()).rejects.toThrow(/running/);
    await c.remove({ force: true });
    expect((await Container.list({ root, all: true })).map((i) => i.id)).not.toContain(c.id);
  });

  it('keeps Node\'s own child_process working while containers run', async () => {
    await using c = await Container.create({ ...base, cmd: ['sleep', '100'] });
    await c.start();
    const { stdout } = await promisify(execFile)('/bin/sh', ['-c', 'echo from-node; exit 0']);
    expect(stdout).toBe('from-node\n');
    const code = await new Promise((resolve) => spawn('/bin/sh', ['-c', 'exit 7']).on('exit', resolve));
    expect(code).toBe(7);
    await c.kill();
    expect((await c.wait()).signal).toBe('SIGKILL');
  });

  it('dies with its owner process, and the next owner cleans up what is left', async () => {
    // A separate Node process creates a running container, then is killed with SIGKILL.
    const script = `
      import { Container } from ${JSON.stringify(new URL('../dist/lib/index.js', import.meta.url).pathname)};
      const c = await Container.create({ root: ${JSON.stringify(root)}, rootfs: ${JSON.stringify(BUSYBOX)}, cmd: ['sleep', '1000'], name: 'orphan' });
      await c.start();
      console.log(c.pid + ' ' + c.id);
      setInterval(() => {}, 1000);
    `;
    const dir = mkdtempSync(join(tmpdir(), 'berth-owner-'));
    // The compiled library (npm test builds it first): plain node cannot load TypeScript on Node 20.
    const file = join(dir, 'owner.mjs');
    writeFileSync(file, script);
    try {
      const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'inherit'] });
      const line = await new Promise<string>((resolve, reject) => {
        let buf = '';
        child.stdout.on('data', (d) => {
          buf += d;
          if (buf.includes('\n')) resolve(buf.trim());
        });
        child.on('exit', (code) => reject(new Error(`owner exited early with ${code}`)));
      });
      const [pidText, id] = line.split(' ');
      const pid = Number(pidText);
      expect(existsSync(`/proc/${pid}`)).toBe(true);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      // The kernel kills the container (parent death signal); poll briefly for it to be gone.
      for (let i = 0; i < 100 && existsSync(`/proc/${pid}/stat`) && !/\) Z/.test(safeRead(`/proc/${pid}/stat`)); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(!existsSync(`/proc/${pid}/stat`) || /\) Z/.test(safeRead(`/proc/${pid}/stat`))).toBe(true);
      // Its record and cgroup are still there until an owner opens the root again.
      expect(existsSync(join(root, 'containers', id!))).toBe(true);
      const { cleanupDeadOwners, openEngine } = await import('../lib/container/engine.js');
      const removed = await cleanupDeadOwners(await openEngine(root));
      expect(removed).toBeGreaterThanOrEqual(1);
      expect(existsSync(join(root, 'containers', id!))).toBe(false);
      expect(berthCgroups().filter((p) => p.includes(id!))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('leftovers of a creator that died mid-create', () => {
  it('removes a record without state whose creator is dead, and frees its name', async () => {
    const { openEngine, cleanupDeadOwners } = await import('../lib/container/engine.js');
    const engine = await openEngine(root);
    const id = 'f'.repeat(64);
    // A process that has exited: its identity can never be alive again.
    const dead = await new Promise<number>((resolve) => {
      const p = spawn('/bin/true');
      p.on('exit', () => resolve(p.pid!));
    });
    engine.root.createContainerDir(id, { pid: dead, startTime: 1 });
    engine.root.reserveName('half-made', id);
    await expect(Container.create({ ...base, cmd: ['true'], name: 'half-made' })).rejects.toBeInstanceOf(NameConflictError);
    expect(await cleanupDeadOwners(engine)).toBeGreaterThanOrEqual(1);
    expect(existsSync(join(root, 'containers', id))).toBe(false);
    await using c = await Container.create({ ...base, cmd: ['true'], name: 'half-made' });
    expect(c.name).toBe('half-made');
  });
});

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

describe('signals on a container that is not running', () => {
  it('refuses kill on a created container, as docker kill does', async () => {
    await using c = await Container.create({ ...base, cmd: ['true'] });
    await expect(c.kill('SIGTERM')).rejects.toThrow(/not running \(created\)/);
    expect((await c.inspect()).status).toBe('created');
  });

  it('explains a start racing the death of the init, and starts a new process once its exit is known', async () => {
    await using c = await Container.create({ ...base, cmd: ['sh', '-c', 'exit 7'] });
    const pid = c.pid!;
    process.kill(pid, 'SIGKILL');
    // Spin (no event loop turn: this process has not seen the exit) until the init is a zombie: its start pipe is
    // closed, so the start meets a dead init.
    const deadline = Date.now() + 5000;
    while (!/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')) && Date.now() < deadline) {
      // spin
    }
    await expect(c.start()).rejects.toThrow(/exited before it was started/);
    expect((await c.inspect()).status).toBe('exited');
    await c.start();
    expect((await c.wait()).exitCode).toBe(7);
  });
});
