// Starting exited containers again (docker start / docker restart) and restart policies, through the library:
// what a container keeps across runs (id, name, writable layer, log, address) and what each run gets anew
// (process, stdio, terminal, published ports), the policies' decisions and delays, and the refusals.
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerStateError, InvalidOptionsError, Network, type BerthEvent } from '../lib/index.js';
import { tempRoot } from './helpers/env.js';
import { tcpEcho } from './helpers/network.js';
import { pushBusybox, startRegistry, type Registry } from './helpers/registry.js';

const { root, rootfs, cleanup } = tempRoot('restart');
const base = { root, rootfs };
const dist = new URL('../dist/lib/index.js', import.meta.url).pathname;
let registry: Registry;

beforeAll(async () => {
  registry = await startRegistry();
  await pushBusybox(registry, 'library/busybox');
});
afterAll(async () => {
  await cleanup();
  await registry?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The container events recorded since `since` (until now). */
async function eventsOf(name: string, since: Date): Promise<BerthEvent[]> {
  await sleep(5); // `until` has millisecond precision, events nanoseconds
  const out: BerthEvent[] = [];
  for await (const e of Container.events({ root, since, until: new Date(), filters: { container: [name] } })) out.push(e);
  return out;
}

/** The log's lines of one stream of an exited container, in order (following until its log writer is done). */
async function logLines(c: Container, stream: 'stdout' | 'stderr'): Promise<{ log: string; time: string }[]> {
  const out: { log: string; time: string }[] = [];
  for await (const e of c.logs({ follow: true })) if (e.stream === stream) out.push({ log: e.log, time: e.time });
  return out;
}

/** Collects a stream's text. */
function gather(stream: NodeJS.ReadableStream | null): () => string {
  let text = '';
  stream?.on('data', (d) => (text += d));
  return () => text;
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('start of an exited container', () => {
  it('keeps id, name and files, runs a new process, appends to the same log, records start events', async () => {
    const since = new Date();
    // Each run counts itself in a file of the container's root filesystem and says so on both streams.
    const c = await Container.create({
      ...base, name: 'again', labels: { team: 'a' }, stdout: 'ignore', stderr: 'ignore',
      cmd: ['sh', '-c', 'n=$(( $(cat /var/runs 2>/dev/null || echo 0) + 1 )); echo $n > /var/runs; echo "run $n"; echo "err $n" >&2; [ $n -ge 2 ] && exec sleep 30; exit 3'],
    });
    try {
      await c.start();
      const firstPid = c.pid;
      expect(await c.wait()).toEqual({ exitCode: 3, signal: null, oomKilled: false });
      const first = await c.inspect();
      expect(first).toMatchObject({ status: 'exited', exitCode: 3, restartCount: 0, restarting: false });

      await c.start();
      const second = await c.inspect();
      expect(second).toMatchObject({ id: c.id, name: 'again', status: 'running', exitCode: null, labels: { team: 'a' }, restartCount: 0 });
      expect(c.pid).toBeGreaterThan(0);
      expect(c.pid).not.toBe(firstPid);
      expect(Date.parse(second.startedAt!)).toBeGreaterThan(Date.parse(first.startedAt!));
      expect(second.finishedAt).toBe(first.finishedAt); // as Docker: the last run's end until this one ends
      // The second run read what the first wrote (the program runs on after start() resolved: give it a moment).
      await until(() => readFileSync(join(rootfs, 'var/runs'), 'utf8') === '2\n', 'the second run to count itself');
      await expect(c.start()).rejects.toThrow(/is running: it is started already/);

      await c.kill('SIGKILL');
      expect((await c.wait()).exitCode).toBe(137);
      const out = await logLines(c, 'stdout');
      const err = await logLines(c, 'stderr');
      expect(out.map((l) => l.log)).toEqual(['run 1\n', 'run 2\n']);
      expect(err.map((l) => l.log)).toEqual(['err 1\n', 'err 2\n']);
      // The second run's output comes after all of the first run's.
      expect(out[1]!.time > err[0]!.time && err[1]!.time > out[0]!.time).toBe(true);
      const actions = (await eventsOf('again', since)).map((e) => e.action);
      expect(actions).toEqual(['create', 'start', 'die', 'start', 'kill', 'die']);
    } finally {
      await c.remove({ force: true });
    }
  });

  it('starts it again when it exited before it was started (its init killed), and again after a failed exec', async () => {
    const c = await Container.create({ ...base, cmd: ['sh', '-c', 'echo ran'] });
    try {
      process.kill(c.pid!, 'SIGKILL');
      await c.wait();
      expect((await c.inspect()).status).toBe('exited');
      await c.start();
      expect((await c.wait()).exitCode).toBe(0);
    } finally {
      await c.remove({ force: true });
    }
    const missing = await Container.create({ ...base, cmd: ['/no/such/program'] });
    try {
      await expect(missing.start()).rejects.toMatchObject({ exitStatus: 127 });
      // As docker start: tried again, fails again the same way, and the container stays.
      await expect(missing.start()).rejects.toMatchObject({ exitStatus: 127 });
      expect((await missing.inspect()).status).toBe('exited');
    } finally {
      await missing.remove({ force: true });
    }
  });

  it('gives a new run new stdio: a new stdin pipe, new output streams, a new terminal', async () => {
    const c = await Container.create({ ...base, stdin: 'pipe', cmd: ['sh', '-c', 'read line; echo "got $line"'] });
    try {
      for (const word of ['one', 'two']) {
        await c.start();
        const out = gather(c.stdout);
        c.stdin!.end(`${word}\n`);
        expect((await c.wait()).exitCode).toBe(0);
        await until(() => out() === `got ${word}\n`, `the output of run ${word}`);
      }
    } finally {
      await c.remove({ force: true });
    }
    const t = await Container.create({ ...base, tty: true, cmd: ['sh', '-c', 'tty; stty size'], consoleSize: { rows: 30, columns: 100 } });
    try {
      for (let i = 0; i < 2; i++) {
        await t.start();
        const out = gather(t.stdout);
        await t.wait();
        await until(() => out().includes('30 100'), 'the terminal output');
        expect(out()).toMatch(/^\/dev\/pts\/0\r\n30 100\r\n$/);
      }
    } finally {
      await t.remove({ force: true });
    }
  });

  it('keeps what an image container wrote in its writable layer (the overlay upper directory)', async () => {
    const c = await Container.create({
      root, image: `${registry.host}/library/busybox`, stdout: 'ignore', stderr: 'ignore',
      // The image has /bin only: the directory and the file are the container's own.
      cmd: ['sh', '-c', 'mkdir -p /data; cat /data/note 2>/dev/null; echo "written by $$" >> /data/note'],
    });
    try {
      await c.start();
      await c.wait();
      const upper = join(root, 'containers', c.id, 'upper', 'data', 'note');
      expect(readFileSync(upper, 'utf8')).toBe('written by 1\n');
      await c.start();
      await c.wait();
      expect(readFileSync(upper, 'utf8')).toBe('written by 1\nwritten by 1\n');
      const out = (await logLines(c, 'stdout')).map((l) => l.log).join('');
      expect(out).toBe('written by 1\n'); // the second run read what the first wrote
    } finally {
      await c.remove({ force: true });
    }
  });

  it('keeps an image container\'s writable layer under a user namespace, with its files owned by the mapped ids', async () => {
    const c = await Container.create({
      root, image: `${registry.host}/library/busybox`, userns: 'auto', stdout: 'ignore', stderr: 'ignore',
      cmd: ['sh', '-c', 'mkdir -p /data; cat /data/kept 2>/dev/null || echo first > /data/kept'],
    });
    try {
      await c.start();
      expect((await c.wait()).exitCode).toBe(0);
      await c.start();
      expect((await c.wait()).exitCode).toBe(0);
      expect((await logLines(c, 'stdout')).map((l) => l.log)).toEqual(['first\n']);
      const hostId = (await c.inspect()).userns!.uidMap[0]!.hostID;
      expect(statSync(join(root, 'containers', c.id, 'upper', 'data', 'kept')).uid).toBe(hostId);
    } finally {
      await c.remove({ force: true });
    }
  });

  it('sets its network up again: its address back, and its published port serving again', async () => {
    const port = await freePort();
    const c = await Container.create({
      ...base, network: 'bridge', ports: [{ container: 80, host: port, hostIp: '127.0.0.1' }], stdout: 'ignore', stderr: 'ignore',
      cmd: ['nc', '-ll', '-p', '80', '-e', 'cat'],
    });
    try {
      await c.start();
      const address = (await c.inspect()).network!.endpoint!.ipAddress;
      expect(await tcpEcho(port, 'first run\n')).toBe('first run\n');
      await c.stop({ timeout: 1 });
      expect(await tcpEcho(port, 'stopped\n', 300)).toBe(''); // the port closed with it
      await c.start();
      const info = await c.inspect();
      expect(info.network!.endpoint!.ipAddress).toBe(address);
      expect(info.network!.networks!.map((n) => n.ipAddress)).toEqual([address]);
      expect(info.network!.ports).toEqual([{ container: 80, host: port, hostIp: '127.0.0.1', protocol: 'tcp' }]);
      expect(await tcpEcho(port, 'second run\n')).toBe('second run\n');
    } finally {
      await c.remove({ force: true });
      await (await Network.get('bridge', { root })).remove().catch(() => undefined);
    }
  });
});

describe('network container:<x>', () => {
  it('joins x\'s namespace as it is at each start (x restarted in between)', async () => {
    const x = await Container.create({ ...base, network: 'none', stdout: 'ignore', stderr: 'ignore', cmd: ['nc', '-ll', '-p', '80', '-e', 'hostname'], hostname: 'the-x' });
    const y = await Container.create({ ...base, network: `container:${x.id}`, cmd: ['sh', '-c', 'for i in $(seq 100); do r=$(nc 127.0.0.1 80 </dev/null); [ -n "$r" ] && { echo "$r"; exit 0; }; sleep 0.05; done; exit 1'] });
    try {
      await x.start();
      for (let i = 0; i < 2; i++) {
        await y.start();
        const out = gather(y.stdout);
        expect((await y.wait()).exitCode).toBe(0);
        await until(() => out() === 'the-x\n', 'the answer from x');
        await x.restart({ timeout: 0 }); // a new process: a new network namespace
      }
    } finally {
      await y.remove({ force: true });
      await x.remove({ force: true });
    }
  });
});

describe('restart()', () => {
  it('stops a running container and starts it again, records restart; starts a created or exited one', async () => {
    const since = new Date();
    const c = await Container.create({ ...base, name: 'restarted', cmd: ['sleep', '30'], stopTimeout: 1 });
    try {
      await c.restart(); // created: started
      const first = c.pid;
      expect((await c.inspect()).status).toBe('running');
      await c.restart({ timeout: 0 });
      expect(c.pid).not.toBe(first);
      expect((await c.inspect()).status).toBe('running');
      await c.kill();
      await c.wait();
      await c.restart(); // exited: started
      expect((await c.inspect()).status).toBe('running');
      const actions = (await eventsOf('restarted', since)).map((e) => e.action);
      expect(actions).toEqual([
        'create', 'start', 'restart', 'kill', 'kill', 'die', 'stop', 'start', 'restart', 'kill', 'die', 'start', 'restart',
      ]);
    } finally {
      await c.remove({ force: true });
    }
  });
});

describe('restart policies', () => {
  it('on-failure:2 restarts a failing program exactly twice, after 100 ms then 200 ms', async () => {
    const c = await Container.create({
      ...base, stdout: 'ignore', stderr: 'ignore', restartPolicy: { name: 'on-failure', maximumRetryCount: 2 },
      cmd: ['sh', '-c', 'echo run; exit 1'],
    });
    try {
      expect((await c.inspect()).restartPolicy).toEqual({ name: 'on-failure', maximumRetryCount: 2 });
      await c.start();
      let exit;
      do exit = await c.wait();
      while (await c.restarted());
      expect(exit.exitCode).toBe(1);
      const info = await c.inspect();
      expect(info).toMatchObject({ status: 'exited', restartCount: 2, restarting: false, exitCode: 1 });
      const runs = await logLines(c, 'stdout');
      expect(runs.map((r) => r.log)).toEqual(['run\n', 'run\n', 'run\n']);
      const gaps = runs.slice(1).map((r, i) => (Date.parse(r.time) - Date.parse(runs[i]!.time)));
      expect(gaps[0]).toBeGreaterThanOrEqual(95);
      expect(gaps[1]).toBeGreaterThanOrEqual(195);
      await sleep(500);
      expect((await c.inspect()).restartCount).toBe(2); // and no more
      // A start by hand resets the count: two more restarts follow.
      await c.start();
      do await c.wait();
      while (await c.restarted());
      expect((await c.inspect()).restartCount).toBe(2);
      expect((await logLines(c, 'stdout')).length).toBe(6);
    } finally {
      await c.remove({ force: true });
    }
  });

  it('on-failure leaves a program that succeeded alone', async () => {
    const c = await Container.create({ ...base, restartPolicy: { name: 'on-failure' }, cmd: ['true'] });
    try {
      await c.start();
      await c.wait();
      expect(await c.restarted()).toBe(false);
      expect((await c.inspect()).restartCount).toBe(0);
    } finally {
      await c.remove({ force: true });
    }
  });

  for (const name of ['always', 'unless-stopped'] as const) {
    it(`${name} restarts after exit 0, and not after stop() or kill()`, async () => {
      const c = await Container.create({
        ...base, stdout: 'ignore', stderr: 'ignore', restartPolicy: { name }, stopTimeout: 1,
        // The first run exits 0 at once; the next ones run until stopped.
        cmd: ['sh', '-c', `echo up; [ -f /tmp/${name} ] || { touch /tmp/${name}; exit 0; }; trap "exit 0" TERM; while :; do sleep 0.1; done`],
      });
      try {
        await c.start();
        await c.wait();
        expect(await c.restarted()).toBe(true);
        expect((await c.inspect())).toMatchObject({ status: 'running', restartCount: 1 });
        await c.stop();
        expect(await c.restarted()).toBe(false);
        await sleep(400);
        expect((await c.inspect())).toMatchObject({ status: 'exited', restartCount: 1, restarting: false });
        // Started by hand: the policy applies again (and the count starts over); a kill stops it for good.
        await c.start();
        expect((await c.inspect()).restartCount).toBe(0);
        await c.kill('SIGKILL');
        expect(await c.restarted()).toBe(false);
        await sleep(300);
        expect((await c.inspect()).status).toBe('exited');
        expect((await logLines(c, 'stdout')).length).toBe(3);
      } finally {
        await c.remove({ force: true });
      }
    });
  }

  it('a forced removal cancels a pending restart (a plain one is refused, as docker rm)', async () => {
    const c = await Container.create({ ...base, restartPolicy: { name: 'always' }, cmd: ['true'] });
    await c.start();
    await c.wait();
    await sleep(20);
    expect((await c.inspect()).restarting).toBe(true); // within the 100 ms delay
    await expect(c.remove()).rejects.toThrow(/is restarting .*: stop it first or remove with \{ force: true \}/);
    await c.remove({ force: true });
    expect(await c.restarted()).toBe(false);
    await sleep(300);
    expect(await Container.list({ root, all: true })).toEqual([]);
  });

  it('refuses a retry count with a policy other than on-failure', async () => {
    await expect(Container.create({ ...base, cmd: ['true'], restartPolicy: { name: 'always', maximumRetryCount: 3 } }))
      .rejects.toBeInstanceOf(InvalidOptionsError);
  });
});

describe('ownership', () => {
  it('takes over an exited container whose owner is gone, and refuses while the owner lives', async () => {
    // Another Node process creates a detached container that exits at once, prints its id, and waits for a line.
    const script = [
      `import { Container } from ${JSON.stringify(dist)};`,
      `const c = await Container.create({ root: ${JSON.stringify(root)}, rootfs: ${JSON.stringify(rootfs)}, detached: true, stdout: 'ignore', stderr: 'ignore', cmd: ['sh', '-c', 'echo "owned by $PPID"; exit 4'] });`,
      'await c.start(); await c.wait();',
      'console.log(c.id);',
      'for await (const _ of process.stdin) break;',
    ].join('\n');
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    const id = await new Promise<string>((resolve) => child.stdout!.once('data', (d) => resolve(String(d).trim())));
    const c = await Container.get(id, { root });
    try {
      await expect(c.start()).rejects.toThrow(new RegExp(`belongs to process ${child.pid}, which is alive`));
      child.stdin!.end('bye\n');
      await new Promise((r) => child.once('exit', r));
      await c.start();
      expect((await c.inspect()).ownerPid).toBe(process.pid);
      // This process owns it now: it reaped it and knows its exit status.
      expect((await c.wait()).exitCode).toBe(4);
      // Both runs' output, each recorded by the log monitor of its (detached) run, which starts in its own time.
      await until(async () => (await logLines(c, 'stdout')).length === 2, 'both runs in the log');
    } finally {
      await c.remove({ force: true });
    }
  });

  it('refuses a record made before berth could start processes again', async () => {
    const c = await Container.create({ ...base, cmd: ['true'] });
    try {
      await c.start();
      await c.wait();
      const file = join(root, 'containers', c.id, 'state.json');
      const { respawn: _respawn, ...old } = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      writeFileSync(file, JSON.stringify(old));
      await expect(c.start()).rejects.toThrow(ContainerStateError);
      await expect(c.start()).rejects.toThrow(/created by an older berth .* cannot be started again; remove it/);
    } finally {
      await c.remove({ force: true });
    }
  });
});

/** A TCP port nothing listens on (loopback). */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

