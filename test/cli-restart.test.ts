// `berth start` of exited containers, `berth restart` and `--restart` policies, driven as a user drives them:
// separate CLI processes, containers owned by their shims (which apply the policy, and are replaced by a new shim
// when a container whose shim is gone is started again).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli } from './helpers/cli.js';
import { cliWorld } from './helpers/cli-world.js';

const world = cliWorld('cli-restart');
const { root } = world;
let env: Record<string, string>;

beforeAll(async () => {
  env = world.env;
  expect((await cli(['pull', 'busybox'], env)).code).toBe(0);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const inspect = async (format: string, name: string) => (await cli(['inspect', '-f', format, name], env)).stdout.trim();
const idOf = (name: string) => inspect('{{.Id}}', name);
/** Whether the container's shim is gone (it exits once no restart is to follow). */
const shimGone = async (name: string) => !existsSync(join(root, 'containers', await idOf(name), 'shim.sock'));
const logLines = async (name: string) => (await cli(['logs', name], env)).stdout.split('\n').filter(Boolean);
async function startsOf(name: string, since: Date): Promise<number> {
  await sleep(5);
  const r = await cli(['events', '--since', String(since.getTime() / 1000), '--until', '0s', '--filter', `container=${name}`, '--filter', 'event=start', '--format', '{{.Action}}'], env);
  return r.stdout.split('\n').filter(Boolean).length;
}

describe('berth start of an exited container', () => {
  it('runs it again through a new shim once its own is gone: its writable layer kept, start -a showing the new run', async () => {
    const first = await cli(['run', '--name', 'again', 'busybox', 'sh', '-c', 'echo run-$(cat /count 2>/dev/null || echo 0); echo $(( $(cat /count 2>/dev/null || echo 0) + 1 )) > /count; exit 3'], env);
    expect(first).toMatchObject({ code: 3, stdout: 'run-0\n' });
    const id = await idOf('again');
    await eventually(() => shimGone('again'), 'the first shim to exit');
    const firstPid = await inspect('{{.Berth.ownerPid}}', 'again');

    // start -a: a new shim takes the container over; the client attaches, then starts it (no output missed).
    const attached = await cli(['start', '-a', 'again'], env);
    expect(attached).toMatchObject({ code: 3, stdout: 'run-1\n' });
    expect(await idOf('again')).toBe(id);
    expect(await inspect('{{.Berth.ownerPid}}', 'again')).not.toBe(firstPid);

    await eventually(() => shimGone('again'), 'the second shim to exit');
    expect(await cli(['start', 'again'], env)).toMatchObject({ code: 0, stdout: 'again\n' });
    await eventually(async () => (await logLines('again')).length === 3, 'the third run in the log');
    expect(await logLines('again')).toEqual(['run-0', 'run-1', 'run-2']);
    expect(await inspect('{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}', 'again')).toBe('exited 3 0');
    expect((await cli(['rm', 'again'], env)).code).toBe(0);
  });

  it('gives the new run a new stdin: start -ai of a container created with -i', async () => {
    const first = await cli(['run', '-i', '--name', 'reader', 'busybox', 'sh', '-c', 'read line; echo "got $line"'], env, 'one\n');
    expect(first).toMatchObject({ code: 0, stdout: 'got one\n' });
    await eventually(() => shimGone('reader'), 'the first shim to exit');
    expect(await cli(['start', '-ai', 'reader'], env, 'two\n')).toMatchObject({ code: 0, stdout: 'got two\n' });
    // Again at once: its shim (if it has not exited yet) starts it in place, else a new one takes it over.
    expect(await cli(['start', '-ai', 'reader'], env, 'three\n')).toMatchObject({ code: 0, stdout: 'got three\n' });
    expect((await cli(['rm', 'reader'], env)).code).toBe(0);
  });
});

describe('berth restart', () => {
  it('stops a running container and starts it again: a new pid, the restart event, the same container', async () => {
    const since = new Date();
    expect((await cli(['run', '-d', '--name', 'rs', 'busybox', 'sh', '-c', 'trap "exit 0" TERM; echo up; while :; do sleep 0.1; done'], env)).code).toBe(0);
    await eventually(async () => (await logLines('rs')).length === 1, 'the first run');
    const pid = await inspect('{{.State.Pid}}', 'rs');
    expect(await cli(['restart', '-t', '5', 'rs'], env)).toMatchObject({ code: 0, stdout: 'rs\n', stderr: '' });
    expect(await inspect('{{.State.Status}}', 'rs')).toBe('running');
    expect(await inspect('{{.State.Pid}}', 'rs')).not.toBe(pid);
    await eventually(async () => (await logLines('rs')).length === 2, 'the second run in the log');
    await sleep(5);
    const events = await cli(['events', '--since', String(since.getTime() / 1000), '--until', '0s', '--filter', 'container=rs', '--format', '{{.Action}}'], env);
    expect(events.stdout).toBe('create\nstart\nkill\ndie\nstop\nstart\nrestart\n');
    expect((await cli(['rm', '-f', 'rs'], env)).code).toBe(0);
  });
});

describe('--restart', () => {
  it('on-failure:2 restarts a failing container twice, then its shim exits', async () => {
    const since = new Date();
    expect((await cli(['run', '-d', '--name', 'onfail', '--restart', 'on-failure:2', 'busybox', 'sh', '-c', 'echo failing; exit 1'], env)).code).toBe(0);
    await eventually(() => shimGone('onfail'), 'the shim to give up');
    expect(await inspect('{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}', 'onfail')).toBe('exited 1 2');
    expect(await inspect('{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}', 'onfail')).toBe('on-failure:2');
    await eventually(async () => (await logLines('onfail')).length === 3, 'three runs in the log');
    expect(await startsOf('onfail', since)).toBe(3);
    expect((await cli(['rm', 'onfail'], env)).code).toBe(0);
  });

  it('always restarts a container that exits 0, is shown restarting, and stays stopped after berth stop', async () => {
    expect((await cli(['run', '-d', '--name', 'alw', '--restart', 'always', 'busybox', 'sh', '-c', 'echo up; exit 0'], env)).code).toBe(0);
    // It exits at once each time: most of its time is the growing delay, when ps shows it restarting.
    await eventually(async () => /^alw Restarting \(0\) /.test((await cli(['ps', '--format', '{{.Names}} {{.Status}}'], env)).stdout), 'ps to show it restarting');
    expect(await inspect('{{.State.Status}} {{.State.Restarting}} {{.State.Running}}', 'alw')).toMatch(/^(restarting true true|running false true)$/);
    expect(Number(await inspect('{{.RestartCount}}', 'alw'))).toBeGreaterThanOrEqual(1);
    expect(await cli(['stop', 'alw'], env)).toMatchObject({ code: 0, stdout: 'alw\n', stderr: '' });
    await eventually(() => shimGone('alw'), 'the shim to exit');
    const count = await inspect('{{.RestartCount}}', 'alw');
    const runs = (await logLines('alw')).length;
    await sleep(1000);
    expect(await inspect('{{.State.Status}} {{.State.Restarting}} {{.RestartCount}}', 'alw')).toBe(`exited false ${count}`);
    expect((await logLines('alw')).length).toBe(runs);
    expect((await cli(['rm', 'alw'], env)).code).toBe(0);
  });

  it('unless-stopped restarts a container that exits, and not after berth kill', async () => {
    const since = new Date();
    expect((await cli(['run', '-d', '--name', 'us', '--restart', 'unless-stopped', 'busybox', 'sh', '-c', 'echo up; sleep 1'], env)).code).toBe(0);
    await eventually(async () => (await startsOf('us', since)) >= 2, 'a restart');
    // Killed while its second run runs (for a second).
    await eventually(async () => (await inspect('{{.State.Status}}', 'us')) === 'running', 'it to run');
    expect((await cli(['kill', 'us'], env)).code).toBe(0);
    await eventually(() => shimGone('us'), 'the shim to exit');
    const starts = await startsOf('us', since);
    await sleep(800);
    expect(await startsOf('us', since)).toBe(starts);
    expect(await inspect('{{.State.Status}}', 'us')).toBe('exited');
    expect((await cli(['rm', 'us'], env)).code).toBe(0);
  });

  it('refuses --restart with --rm, and malformed policies', async () => {
    const rm = await cli(['run', '--rm', '--restart', 'always', 'busybox', 'true'], env);
    expect(rm.code).toBe(125);
    expect(rm.stderr).toContain('conflicting options: --restart and --rm');
    for (const bad of ['sometimes', 'always:3', 'on-failure:x', 'on-failure:-1', ':3']) {
      const r = await cli(['create', '--restart', bad, 'busybox', 'true'], env);
      expect(r.code).toBe(125);
      expect(r.stderr).toContain(`invalid restart policy "${bad}"`);
    }
    expect((await cli(['ps', '-a', '-q'], env)).stdout).toBe('');
  });
});
