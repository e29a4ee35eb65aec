// Container.exec and `berth exec`: a process that joins a running container (namespaces, cgroup, security).
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerStartError, ContainerStateError, DOCKER_DEFAULT_CAPABILITIES, CAPABILITY_NAMES } from '../lib/index.js';
import { collect } from '../lib/container/stdio.js';
import { childPids, fdCount, mountCount, tempRoot } from './helpers/env.js';
import { cli } from './helpers/cli.js';

const { root, rootfs, cleanup } = tempRoot('exec');
const scripts = mkdtempSync(join(tmpdir(), 'berth-exec-scripts-'));
const dist = new URL('../dist/lib/index.js', import.meta.url).pathname;
afterAll(async () => {
  await cleanup();
  rmSync(scripts, { recursive: true, force: true });
});

beforeAll(() => {
  execFileSync('gcc', ['-static', '-O2', '-Wall', '-o', join(rootfs, 'helper'), fileURLToPath(new URL('./fixtures/exec-helper.c', import.meta.url))]);
  // A user for -u, a file that is not executable, a directory for -w.
  writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nalice:x:1234:2345:Alice:/home/alice:/bin/sh\n');
  writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\nstaff:x:2345:\nextra:x:3456:alice\n');
  writeFileSync(join(rootfs, 'notexec'), '#!/bin/sh\necho hi\n');
  chmodSync(join(rootfs, 'notexec'), 0o644);
  mkdirSync(join(rootfs, 'work'), { recursive: true });
});

/** Runs `cmd` in `c` and collects everything. */
async function run(c: Container, cmd: string[], extra: Record<string, unknown> = {}) {
  const p = await c.exec({ cmd, ...extra });
  const [stdout, stderr, exit] = await Promise.all([collect(p.stdout), collect(p.stderr), p.wait()]);
  return { stdout, stderr, ...exit, pid: p.pid };
}

async function sleeper(extra: Record<string, unknown> = {}): Promise<Container> {
  const c = await Container.create({
    root, rootfs, hostname: 'exec-box', env: { FROM_CONTAINER: 'yes', SHARED: 'container' }, workdir: '/tmp',
    // The container stays up after nc served its one connection: its end would kill the exec reading the answer.
    cmd: ['sh', '-c', 'echo listening > /tmp/ready; nc -l -p 7777 -e echo pong-from-container 2>/dev/null; sleep 1000'],
    stdout: 'ignore', stderr: 'ignore',
    ...extra,
  });
  await c.start();
  return c;
}

describe('Container.exec', () => {
  it('sees the container\'s filesystem, hostname, processes, network, env and workdir', async () => {
    await using c = await sleeper();
    const r = await run(c, ['sh', '-c', 'cat /tmp/ready; hostname; echo $FROM_CONTAINER $SHARED $EXTRA; pwd; ps -o pid,args | tail -n +2; echo $$']);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('listening'); // a file the container wrote into its own /tmp
    expect(lines[1]).toBe('exec-box');
    expect(lines[2]).toBe('yes container');
    expect(lines[3]).toBe('/tmp'); // the container's working directory
    // ps sees the container's init as pid 1, and the exec'd shell in the same pid namespace.
    expect(lines.some((l) => /^\s*1\s+sh -c echo listening/.test(l))).toBe(true);
    expect(Number(lines.at(-1))).toBeGreaterThan(1);
    expect(r.stdout).not.toContain('vitest');

    const merged = await run(c, ['sh', '-c', 'echo $FROM_CONTAINER $SHARED $EXTRA; pwd'], { env: { SHARED: 'exec', EXTRA: 'x' }, workdir: '/work' });
    expect(merged.stdout).toBe('yes exec x\n/work\n');

    // The container's loopback: its listener answers, the host's port 7777 is not involved.
    // (The marker file is written just before nc listens: retry a refused connection for a while.)
    const net = await run(c, ['sh', '-c', 'for i in $(seq 100); do r=$(echo hi | nc 127.0.0.1 7777 2>/dev/null); [ -n "$r" ] && { echo "$r"; break; }; sleep 0.05; done']);
    expect(net.stdout.trim()).toBe('pong-from-container');
  });

  it('runs with the container\'s capabilities and seccomp filter, in its cgroup', async () => {
    await using c = await sleeper({ capDrop: ['NET_RAW'] });
    const r = await run(c, ['sh', '-c', 'grep -E "^(CapEff|CapPrm|CapBnd|CapInh|CapAmb|Seccomp|NoNewPrivs):" /proc/self/status; /helper keyctl; cat /proc/self/cgroup']);
    const field = (name: string) => new RegExp(`^${name}:\\s+(\\S+)`, 'm').exec(r.stdout)![1]!;
    let expected = 0n;
    for (const cap of DOCKER_DEFAULT_CAPABILITIES) if (!cap.endsWith('NET_RAW')) expected |= 1n << BigInt(CAPABILITY_NAMES.indexOf(cap));
    expect(BigInt('0x' + field('CapEff'))).toBe(expected);
    expect(BigInt('0x' + field('CapBnd'))).toBe(expected);
    expect(BigInt('0x' + field('CapInh'))).toBe(0n);
    // Exactly the init's sets, as the host sees them.
    const initStatus = readFileSync(`/proc/${c.pid}/status`, 'utf8');
    for (const f of ['CapEff', 'CapPrm', 'CapBnd', 'NoNewPrivs', 'Seccomp']) {
      expect(new RegExp(`^${f}:\\s+(\\S+)`, 'm').exec(initStatus)![1]).toBe(field(f));
    }
    expect(BigInt('0x' + field('CapAmb'))).toBe(0n);
    expect(field('Seccomp')).toBe('2');
    expect(r.stdout).toContain('keyctl=EPERM');
    // Host pid in the container's cgroup (seen from the host, where the container's cgroup namespace does not apply).
    const hostCgroups = readFileSync(`/proc/${c.pid}/cgroup`, 'utf8');
    expect(hostCgroups).toContain(c.id);

    // The same syscall passes in a container without a seccomp profile: the EPERM above is the filter's.
    await using free = await sleeper({ seccomp: 'unconfined' });
    const u = await run(free, ['sh', '-c', 'grep ^Seccomp: /proc/self/status; /helper keyctl']);
    expect(u.stdout).toMatch(/^Seccomp:\s+0$/m);
    expect(u.stdout).toContain('keyctl=OK');
  });

  it('joins the container\'s cgroup (the host sees the exec\'d process there)', async () => {
    await using c = await sleeper();
    const p = await c.exec({ cmd: ['sleep', '5'], stdout: 'ignore', stderr: 'ignore' });
    try {
      expect(readFileSync(`/proc/${p.pid}/cgroup`, 'utf8')).toBe(readFileSync(`/proc/${c.pid}/cgroup`, 'utf8'));
      expect(c.top().map((x) => x.pid)).toContain(p.pid);
      // Same namespaces as the init.
      for (const ns of ['mnt', 'pid', 'net', 'uts', 'ipc', 'cgroup']) {
        expect(execFileSync('readlink', [`/proc/${p.pid}/ns/${ns}`]).toString()).toBe(execFileSync('readlink', [`/proc/${c.pid}/ns/${ns}`]).toString());
      }
    } finally {
      p.kill();
      expect((await p.wait()).signal).toBe('SIGKILL');
    }
  });

  it('runs as another user, resolved in the container\'s /etc/passwd and /etc/group', async () => {
    await using c = await sleeper();
    const r = await run(c, ['sh', '-c', 'id -u; id -g; id -G'], { user: 'alice' });
    expect(r.stdout.trim().split('\n')).toEqual(['1234', '2345', '2345 3456']);
    const n = await run(c, ['id', '-u'], { user: '4242:4343' });
    expect(n.stdout.trim()).toBe('4242');
    await expect(c.exec({ cmd: ['true'], user: 'nobody-here' })).rejects.toThrow(/unable to find user nobody-here/);
  });

  it('reports exit codes, signals, 126 and 127 as docker exec does', async () => {
    await using c = await sleeper();
    expect((await run(c, ['sh', '-c', 'exit 42'])).exitCode).toBe(42);
    const killed = await run(c, ['sh', '-c', 'kill -TERM $$']);
    expect(killed).toMatchObject({ exitCode: 143, signal: 'SIGTERM' });
    const notFound = await c.exec({ cmd: ['no-such-program'] }).catch((e) => e);
    expect(notFound).toBeInstanceOf(ContainerStartError);
    expect(notFound.exitStatus).toBe(127);
    expect(notFound.message).toMatch(/executable file not found in \$PATH/);
    const notExec = await c.exec({ cmd: ['/notexec'] }).catch((e) => e);
    expect(notExec.exitStatus).toBe(126);
    expect(notExec.message).toMatch(/permission denied/);
    const badDir = await c.exec({ cmd: ['true'], workdir: '/no/such/dir' }).catch((e) => e);
    expect(badDir).toBeInstanceOf(ContainerStartError);
    expect(badDir.message).toMatch(/chdir \/no\/such\/dir: ENOENT/);
    await expect(c.exec({ cmd: ['true'], workdir: 'relative' })).rejects.toThrow(/absolute/);
    await expect(c.exec({ cmd: [] })).rejects.toThrow(/program/);
  });

  it('passes stdin through a pipe, and an AbortSignal kills the process', async () => {
    await using c = await sleeper();
    const p = await c.exec({ cmd: ['tr', 'a-z', 'A-Z'], stdin: 'pipe' });
    p.stdin!.end('hello\n');
    expect(await collect(p.stdout)).toBe('HELLO\n');
    expect((await p.wait()).exitCode).toBe(0);

    const ac = new AbortController();
    const t = await c.exec({ cmd: ['sleep', '100'] });
    t.kill('term');
    expect(await t.wait()).toEqual({ exitCode: 143, signal: 'SIGTERM' });
    const q = await c.exec({ cmd: ['sleep', '100'], signal: ac.signal });
    ac.abort();
    expect(await q.wait()).toEqual({ exitCode: 137, signal: 'SIGKILL' });
  });

  it('the exec\'d process holds no fd of the Node process and dies with the container', async () => {
    await using c = await sleeper();
    const fds = await run(c, ['/helper', 'fds']);
    expect(fds.stdout.trim().split('\n')).toEqual(['0', '1', '2']);
    const p = await c.exec({ cmd: ['sleep', '100'], stdout: 'ignore', stderr: 'ignore' });
    await c.kill('SIGKILL');
    expect(await p.wait()).toEqual({ exitCode: 137, signal: 'SIGKILL' });
  });

  it('refuses a container that is not running, with a clear error', async () => {
    await using c = await Container.create({ root, rootfs, cmd: ['true'], stdout: 'ignore', stderr: 'ignore' });
    await expect(c.exec({ cmd: ['true'] })).rejects.toThrow(ContainerStateError);
    await expect(c.exec({ cmd: ['true'] })).rejects.toThrow(/is not running: start it before exec/);
    await c.start();
    await c.wait();
    await expect(c.exec({ cmd: ['true'] })).rejects.toThrow(/is not running/);
    await using p = await sleeper();
    await p.pause();
    await expect(p.exec({ cmd: ['true'] })).rejects.toThrow(/is paused/);
    await p.unpause();
  });

  it('works from another process (Container.get) and through `berth exec`', async () => {
    await using c = await sleeper({ name: 'exec-target' });
    const file = join(scripts, 'exec.mjs');
    writeFileSync(file, `import { Container } from ${JSON.stringify(dist)};
      const c = await Container.get('exec-target', { root: ${JSON.stringify(root)} });
      const p = await c.exec({ cmd: ['sh', '-c', 'hostname; cat /tmp/ready; exit 3'] });
      let out = '';
      for await (const d of p.stdout) out += d;
      const e = await p.wait();
      console.log(JSON.stringify({ out, code: e.exitCode }));`);
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const [out, err] = await Promise.all([collect(child.stdout), collect(child.stderr)]);
    expect(err).toBe('');
    expect(JSON.parse(out)).toEqual({ out: 'exec-box\nlistening\n', code: 3 });

    const env = { BERTH_ROOT: root, HOME: scripts, FROM_HOST: 'h' };
    const r = await cli(['exec', '-e', 'A=1', '-e', 'FROM_HOST', '-u', 'alice', '-w', '/work', 'exec-target', 'sh', '-c', 'echo $A $FROM_HOST $FROM_CONTAINER; id -u; pwd; echo err >&2; exit 5'], env);
    expect(r.stdout).toBe('1 h yes\n1234\n/work\n');
    expect(r.stderr).toBe('err\n');
    expect(r.code).toBe(5);
    expect((await cli(['exec', 'exec-target', 'no-such-program'], env)).code).toBe(127);
    expect((await cli(['exec', 'exec-target', '/notexec'], env)).code).toBe(126);
    const missing = await cli(['exec', 'no-such-container', 'true'], env);
    expect(missing.code).toBe(125);
    expect(missing.stderr).toMatch(/no-such-container/);
    // -t: a terminal of its own (stdout and stderr merged, CR LF); -it needs this side to be a terminal.
    const tty = await cli(['exec', '-t', 'exec-target', 'sh', '-c', 'tty; echo err >&2'], env);
    expect(tty.stdout).toMatch(/^\/dev\/pts\/\d+\r\nerr\r\n$/);
    expect(tty.code).toBe(0);
    const notTerminal = await cli(['exec', '-it', 'exec-target', 'true'], env);
    expect(notTerminal.stderr).toBe('the input device is not a TTY\n');
    expect(notTerminal.code).toBe(1);
    const detached = await cli(['exec', '-d', 'exec-target', 'true'], env);
    expect(detached.stderr).toMatch(/not supported by berth yet/);
    expect(detached.code).not.toBe(0);
  });

  it('runs as the mapped uid on the host in a user-namespaced container', async () => {
    await using c = await sleeper({ userns: 'auto' });
    const hostBase = (await c.inspect()).userns!.uidMap[0]!.hostID;
    const p = await c.exec({ cmd: ['sh', '-c', 'id -u; sleep 5'], user: 'alice' });
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    try {
      await new Promise((r) => setTimeout(r, 300));
      const status = readFileSync(`/proc/${p.pid}/status`, 'utf8');
      expect(/^Uid:\s+(\d+)/m.exec(status)![1]).toBe(String(hostBase + 1234));
      expect(/^Gid:\s+(\d+)/m.exec(status)![1]).toBe(String(hostBase + 2345));
      expect(execFileSync('readlink', [`/proc/${p.pid}/ns/user`]).toString()).toBe(execFileSync('readlink', [`/proc/${c.pid}/ns/user`]).toString());
    } finally {
      p.kill();
      await p.wait();
    }
    expect(out).toBe('1234\n');
    const r = await run(c, ['sh', '-c', 'id -u; grep ^CapEff /proc/self/status']);
    expect(r.stdout.split('\n')[0]).toBe('0');
    const initCaps = /^CapEff:\s+(\S+)/m.exec(readFileSync(`/proc/${c.pid}/status`, 'utf8'))![1];
    expect(/^CapEff:\s+(\S+)/m.exec(r.stdout)![1]).toBe(initCaps);
  });

  it('does not log the exec\'d process\'s output (as Docker)', async () => {
    await using c = await Container.create({ root, rootfs, cmd: ['sh', '-c', 'echo from-init; sleep 1000'] });
    await c.start();
    const out: string[] = [];
    c.stdout!.on('data', (d) => out.push(String(d)));
    const r = await run(c, ['sh', '-c', 'echo from-exec; echo err-exec >&2']);
    expect(r.stdout).toBe('from-exec\n');
    await c.stop({ timeout: 0 });
    const logged: string[] = [];
    for await (const e of c.logs()) logged.push(e.log);
    expect(logged.join('')).toContain('from-init');
    expect(logged.join('')).not.toContain('exec');
    expect(out.join('')).not.toContain('exec');
  });

  it('leaks no fds, mounts or processes', async () => {
    await using c = await sleeper();
    await run(c, ['true']);
    const before = { fds: fdCount(), mounts: mountCount(), children: childPids().length };
    for (let i = 0; i < 5; i++) {
      await run(c, ['sh', '-c', 'echo x']);
      await c.exec({ cmd: ['no-such-program'] }).catch(() => undefined);
    }
    expect(fdCount()).toBe(before.fds);
    expect(mountCount()).toBe(before.mounts);
    expect(childPids().length).toBe(before.children);
  });
});
