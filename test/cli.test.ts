// The berth command, driven as a user drives it: separate processes, a docker.io mirror pointing at a real local
// registry (the mechanism a user behind a mirror uses), exit statuses, output formats, config file and environment.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { Container } from '../lib/index.js';
import { cli, CLI, startCli } from './helpers/cli.js';
import type { Registry } from './helpers/registry.js';
import { cliWorld } from './helpers/cli-world.js';
import { tcpEcho } from './helpers/network.js';
import { clearRoot, tempRoot } from './helpers/env.js';

const world = cliWorld('cli');
const { root, home } = world;
let registry: Registry;
let env: Record<string, string>;

beforeAll(() => {
  registry = world.registry;
  env = world.env;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('the README', () => {
  it('runs its berth command exactly as printed, through a docker.io mirror', async () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const line = readme.split('\n').find((l) => l.startsWith('./berth run '));
    expect(line).toBeDefined();
    const { root: fresh, cleanup: done } = tempRoot('cli-readme');
    try {
      const { stdout, stderr } = await promisify(execFile)('sh', ['-c', line!], {
        cwd: new URL('..', import.meta.url).pathname,
        env: { PATH: process.env.PATH!, HOME: home, BERTH_ROOT: fresh, BERTH_REGISTRY_MIRRORS: registry.url },
      });
      expect(stdout).toMatch(/^hello from [0-9a-f]{12}, pid 1, in a container\n$/);
      expect(stderr).toContain('Status: Downloaded newer image for busybox:latest');
      expect(await Container.list({ root: fresh, all: true })).toEqual([]);
    } finally {
      await done();
    }
  });
});

describe('berth run', () => {
  it('runs a command from an image pulled through the mirror, prints its output, removes it with --rm', async () => {
    const r = await cli(['run', '--rm', 'busybox', 'sh', '-c', 'echo hello from $(hostname); echo to stderr >&2'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^hello from [0-9a-f]{12}\n$/);
    // docker run prints the pull to stderr.
    expect(r.stderr).toContain("Unable to find image 'busybox:latest' locally");
    expect(r.stderr).toContain('Status: Downloaded newer image for busybox:latest');
    expect(r.stderr).toContain('to stderr\n');
    await eventually(async () => (await Container.list({ root, all: true })).length === 0, 'the --rm container to go');
  });

  it('exits with the container\'s status, 127 for a missing program, 126 for one that cannot run, 125 for berth errors', async () => {
    expect((await cli(['run', '--rm', 'busybox', 'sh', '-c', 'exit 3'], env)).code).toBe(3);
    const missing = await cli(['run', '--rm', 'busybox', 'nosuch'], env);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain('exec: "nosuch": executable file not found in $PATH');
    const notExec = await cli(['run', '--rm', 'busybox', '/bin'], env); // a directory: EACCES
    expect(notExec.code).toBe(126);
    expect(notExec.stderr).toContain('exec: "/bin": EACCES (permission denied)');
    const badFlag = await cli(['run', '--no-such-flag', 'busybox'], env);
    expect(badFlag.code).toBe(125);
    expect(badFlag.stderr).toContain('unknown flag: --no-such-flag');
    expect(badFlag.stderr).toContain("Run 'berth run --help' for more information");
    const noImage = await cli(['run', '--pull', 'never', 'nosuch/image'], env);
    expect(noImage.code).toBe(125);
    expect(noImage.stderr).toContain('no such image');
    const badAttach = await cli(['run', '-a', 'stdweird', 'busybox', 'true'], env);
    expect(badAttach.code).toBe(125);
    expect(badAttach.stderr).toContain('invalid argument "stdweird" for "-a, --attach" flag');
    const apparmor = await cli(['run', '--security-opt', 'apparmor=docker-default', 'busybox', 'true'], env);
    expect(apparmor.code).toBe(125);
    expect(apparmor.stderr).toContain('--security-opt apparmor=... is not supported by berth yet');
    // seccomp: Docker's profile by default, none with seccomp=unconfined, a profile file by path.
    const filtered = await cli(['run', '--rm', 'busybox', 'grep', 'Seccomp:', '/proc/self/status'], env);
    expect(filtered.stdout).toMatch(/Seccomp:\s*2/);
    const unconfined = await cli(['run', '--rm', '--security-opt', 'seccomp=unconfined', 'busybox', 'grep', 'Seccomp:', '/proc/self/status'], env);
    expect(unconfined.stdout).toMatch(/Seccomp:\s*0/);
    const profileDir = mkdtempSync(join(tmpdir(), 'berth-test-cli-seccomp-'));
    try {
      writeFileSync(join(profileDir, 'p.json'), JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] }));
      const custom = await cli(['run', '--rm', '--security-opt', `seccomp=${join(profileDir, 'p.json')}`, 'busybox', 'sh', '-c', 'mkdir /x 2>&1; echo rc=$?'], env);
      expect(custom.stdout).toMatch(/Permission denied[\s\S]*rc=1/);
    } finally {
      rmSync(profileDir, { recursive: true, force: true });
    }
    // A container killed (from another process): 128 + the signal, as a shell reports it.
    const victim = startCli(['run', '--rm', '--name', 'victim', 'busybox', 'sh', '-c', 'echo up; sleep 100'], env);
    await victim.waitFor(/up/);
    expect((await cli(['kill', 'victim'], env)).code).toBe(0);
    expect((await victim.done).code).toBe(137);
    expect(await Container.list({ root, all: true })).toEqual([]);
  });

  it('maps docker\'s flags onto the container', async () => {
    const envFile = join(home, 'env.list');
    writeFileSync(envFile, '# comment\nFROM_FILE=1\n\nOVERRIDDEN=file\n');
    const r = await cli([
      'run', '--rm', '-e', 'A=1', '-e', 'FROM_HOST', '--env-file', envFile, '-e', 'OVERRIDDEN=flag', '-w', '/tmp/wd', '-u', '1000:1000',
      '-h', 'cli-host', '--read-only', '--tmpfs', '/scratch:size=1m', '--memory', '64m', '--pids-limit', '33', '--cap-drop', 'ALL',
      '--security-opt', 'no-new-privileges', '-l', 'team=cli',
      'busybox', 'sh', '-c',
      'echo $A $FROM_HOST $FROM_FILE $OVERRIDDEN; pwd; id -u; hostname; touch /x 2>/dev/null || echo ro; df -k /scratch | tail -1 | awk "{print \\$2}"; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; grep NoNewPrivs /proc/self/status',
    ], { ...env, FROM_HOST: 'host' });
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual(['1 host 1 flag', '/tmp/wd', '1000', 'cli-host', 'ro', '1024', '33', 'NoNewPrivs:\t1', '']);
  });

  it('binds host directories with -v (read-only too) and --mount', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-test-cli-vol-'));
    try {
      writeFileSync(join(dir, 'in.txt'), 'from the host\n');
      const r = await cli(['run', '--rm', '-v', `${dir}:/data`, '--mount', `type=bind,source=${dir},target=/ro,readonly`, 'busybox', 'sh', '-c',
        'cat /data/in.txt; echo out > /data/out.txt; touch /ro/x 2>/dev/null || echo read-only'], env);
      expect(r.stdout).toBe('from the host\nread-only\n');
      expect(readFileSync(join(dir, 'out.txt'), 'utf8')).toBe('out\n');
      const named = await cli(['run', '--rm', '-v', 'myvolume:/data', 'busybox', 'true'], env);
      expect(named.code).toBe(125);
      expect(named.stderr).toContain('named volumes are not supported yet');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('forwards signals to the container and exits with its status', async () => {
    const p = startCli(['run', '--rm', '--name', 'sig', 'busybox', 'sh', '-c', 'trap "echo got TERM; exit 42" TERM; echo ready; while true; do sleep 0.1; done'], env);
    await p.waitFor(/ready/);
    p.child.kill('SIGTERM');
    const r = await p.done;
    expect(r.stdout).toBe('ready\ngot TERM\n');
    expect(r.code).toBe(42);
  });
});

describe('detached containers: ps, logs, stop, rm', () => {
  it('runs in the background, lists it, follows and reads its logs from new processes, stops and removes it', async () => {
    const started = await cli(['run', '-d', '--name', 'ticker', 'busybox', 'sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done'], env);
    expect(started.code).toBe(0);
    const id = started.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);

    const ps = await cli(['ps'], env);
    const [header, row] = ps.stdout.split('\n');
    expect(header).toMatch(/^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/);
    // docker's COMMAND: the command line joined with spaces, quoted, cut at 20 characters.
    expect(row).toMatch(new RegExp(`^${id.slice(0, 12)}\\s+busybox:latest\\s+"sh -c i=0; while tr…"\\s+.* ago\\s+Up .*\\s+ticker$`));
    expect((await cli(['ps', '-q'], env)).stdout).toBe(`${id.slice(0, 12)}\n`);
    expect((await cli(['ps', '--format', '{{.Names}}: {{.State}}'], env)).stdout).toBe('ticker: running\n');
    const json = JSON.parse((await cli(['ps', '--format', '{{json .}}'], env)).stdout);
    expect(json).toMatchObject({ ID: id.slice(0, 12), Names: 'ticker', Image: 'busybox:latest', State: 'running' });

    // logs -f while the container writes; it ends when the container stops.
    const follow = startCli(['logs', '-f', 'ticker'], env);
    await follow.waitFor(/tick 4\n/);
    const logs = await cli(['logs', '--tail', '2', '-t', 'ticker'], env);
    expect(logs.stdout.split('\n').filter(Boolean)).toHaveLength(2);
    expect(logs.stdout).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z tick \d+\n/);

    // sh as pid 1 has no handler for SIGTERM, so the kernel ignores it: SIGKILL after the 1 s timeout.
    const stop = await cli(['stop', '-t', '1', 'ticker'], env);
    expect(stop).toMatchObject({ code: 0, stdout: 'ticker\n' });
    const followed = await follow.done;
    expect(followed.code).toBe(0);
    expect(followed.stdout).toMatch(/^tick 0\ntick 1\ntick 2\ntick 3\ntick 4\n/);

    // Stopped: still listed with -a, its exit recorded by its shim; its logs still readable.
    const all = await cli(['ps', '-a', '--format', '{{.Names}} {{.Status}}'], env);
    expect(all.stdout).toMatch(/^ticker Exited \(137\) .* ago\n$/);
    expect((await cli(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'ticker'], env)).stdout).toBe('exited 137\n');
    const after = await cli(['logs', 'ticker'], env);
    expect(after.stdout.startsWith(followed.stdout)).toBe(true);

    expect(await cli(['rm', 'ticker'], env)).toMatchObject({ code: 0, stdout: 'ticker\n' });
    expect((await cli(['ps', '-a', '-q'], env)).stdout).toBe('');
    const gone = await cli(['logs', 'ticker'], env);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe('Error: no such container: ticker\n');
  });

  it('creates, then starts with -a (exit status of the container), and starts it again (start, start -a, restart)', async () => {
    const created = await cli(['create', '--name', 'later', 'busybox', 'sh', '-c', 'echo from-created; exit 5'], env);
    expect(created.code).toBe(0);
    expect((await cli(['ps', '-a', '--filter', 'name=later', '--format', '{{.Names}} {{.Status}}'], env)).stdout).toBe('later Created\n');
    const started = await cli(['start', '-a', 'later'], env);
    expect(started).toMatchObject({ code: 5, stdout: 'from-created\n' });
    const exited = async () => (await cli(['inspect', '-f', '{{.State.Status}}', 'later'], env)).stdout === 'exited\n';
    // As docker start of an exited container: its process runs again.
    expect(await cli(['start', 'later'], env)).toMatchObject({ code: 0, stdout: 'later\n' });
    await eventually(exited, 'the second run to end');
    expect(await cli(['start', '-a', 'later'], env)).toMatchObject({ code: 5, stdout: 'from-created\n' });
    expect(await cli(['restart', 'later'], env)).toMatchObject({ code: 0, stdout: 'later\n' });
    await eventually(exited, 'the fourth run to end');
    await eventually(async () => (await cli(['logs', 'later'], env)).stdout === 'from-created\n'.repeat(4), 'the log of four runs');
    expect((await cli(['rm', 'later'], env)).code).toBe(0);
  });

  it('starts a created container in the background, kills it, and rm -f removes a running one', async () => {
    await cli(['create', '--name', 'bg', 'busybox', 'sleep', '100'], env);
    expect(await cli(['start', 'bg'], env)).toMatchObject({ code: 0, stdout: 'bg\n' });
    expect((await cli(['ps', '--filter', 'name=bg', '--format', '{{.Names}} {{.State}}'], env)).stdout).toBe('bg running\n');
    expect(await cli(['kill', '-s', 'USR1', 'bg'], env)).toMatchObject({ code: 0, stdout: 'bg\n' });
    // sleep as pid 1 ignores SIGUSR1: still running; rm without -f refuses, rm -f removes.
    const refused = await cli(['rm', 'bg'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('container is running');
    const since = new Date();
    expect((await cli(['rm', '-f', 'bg'], env)).code).toBe(0);
    expect((await cli(['ps', '-a', '-q'], env)).stdout).toBe('');
    // As docker reports a forced removal: kill, die (with the status the shim reaped), destroy.
    const events = await cli(['events', '--since', String(since.getTime() / 1000), '--until', '0s', '--filter', 'container=bg', '--format', '{{.Action}} {{.Actor.Attributes.exitCode}}'], env);
    expect(events.stdout).toBe('kill <no value>\ndie 137\ndestroy <no value>\n');
  });

  it('lets another process (a Node program) wait for a CLI container and learn its exit status', async () => {
    await cli(['create', '--name', 'waited', 'busybox', 'sh', '-c', 'sleep 0.3; exit 9'], env);
    const c = await Container.get('waited', { root });
    await c.start(); // through the container's shim
    expect((await c.wait()).exitCode).toBe(9);
    expect((await cli(['rm', 'waited'], env)).code).toBe(0);
  });

  it('removes a detached --rm container when it exits', async () => {
    const r = await cli(['run', '-d', '--rm', 'busybox', 'true'], env);
    expect(r.code).toBe(0);
    await eventually(async () => (await cli(['ps', '-a', '-q'], env)).stdout === '', 'the container to be removed');
  });
});

describe('pause, unpause, top, rename', () => {
  it('works on a running container from separate processes', async () => {
    await cli(['run', '-d', '--name', 'busy', 'busybox', 'sh', '-c', 'sleep 1000 & while :; do :; done'], env);
    const top = await cli(['top', 'busy'], env);
    const lines = top.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(7).join(' '))).toEqual(['sh -c sleep 1000 & while :; do :; done', 'sleep 1000']);
    const pid = Number(lines[1]!.split(/\s+/)[1]);

    expect(await cli(['pause', 'busy'], env)).toMatchObject({ code: 0, stdout: 'busy\n' });
    expect((await cli(['ps', '--filter', 'name=busy', '--format', '{{.Status}}'], env)).stdout).toMatch(/^Up .* \(Paused\)\n$/);
    expect((await cli(['ps', '--filter', 'status=paused', '--format', '{{.Names}}'], env)).stdout).toBe('busy\n');
    expect((await cli(['inspect', '-f', '{{.State.Status}} {{.State.Paused}}', 'busy'], env)).stdout).toBe('paused true\n');
    const stat = () => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    expect(stat()[0]).toBe('D'); // v1 freezer: in the refrigerator
    const ticks = Number(stat()[11]);
    await sleep(300);
    expect(Number(stat()[11])).toBe(ticks);
    const again = await cli(['pause', 'busy'], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already paused');

    expect(await cli(['unpause', 'busy'], env)).toMatchObject({ code: 0, stdout: 'busy\n' });
    await eventually(() => Number(stat()[11]) > ticks, 'the loop to run again');

    expect((await cli(['rename', 'busy', 'renamed'], env)).code).toBe(0);
    expect((await cli(['inspect', '-f', '{{.Name}}', 'renamed'], env)).stdout).toBe('/renamed\n');
    expect((await cli(['top', 'busy'], env)).code).toBe(1);
    expect((await cli(['rm', '-f', 'renamed'], env)).code).toBe(0);
  });
});

describe('events', () => {
  it('reports what another process does, as it happens, with --filter and --format', async () => {
    const watcher = startCli(['events', '--filter', 'container=evented', '--format', '{{.Type}} {{.Action}} {{.Actor.Attributes.name}}'], env);
    await sleep(500); // it reports events from when it started
    await cli(['run', '--rm', '--name', 'evented', 'busybox', 'true'], env);
    await watcher.waitFor(/destroy/);
    watcher.child.kill('SIGTERM');
    await watcher.done;
    expect(watcher.stdout()).toBe(['create', 'start', 'die', 'destroy'].map((a) => `container ${a} evented\n`).join(''));
    // The past, bounded by --since/--until: no following.
    const past = await cli(['events', '--since', '10m', '--until', '0s', '--filter', 'event=die', '--filter', 'container=evented'], env);
    expect(past.code).toBe(0);
    expect(past.stdout).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z container die [0-9a-f]{64} \(exitCode=0, image=docker.io\/library\/busybox:latest, name=evented\)\n$/);
  });
});

describe('images, pull, tag, rmi', () => {
  it('pulls without a terminal: one line per status change, no escape sequences', async () => {
    const { root: fresh, cleanup: done } = tempRoot('cli-pull');
    try {
      const r = await cli(['pull', 'busybox'], { ...env, BERTH_ROOT: fresh });
      expect(r.code).toBe(0);
      expect(r.stdout).not.toContain('\x1b');
      const lines = r.stdout.trim().split('\n');
      expect(lines.slice(0, 2)).toEqual(['Using default tag: latest', 'latest: Pulling from library/busybox']);
      const layer = /^([0-9a-f]{12}): Pulling fs layer$/.exec(lines[2]!)![1];
      expect(lines.slice(2, 6)).toEqual([`${layer}: Pulling fs layer`, `${layer}: Verifying Checksum`, `${layer}: Download complete`, `${layer}: Pull complete`]);
      expect(lines[6]).toMatch(/^Digest: sha256:[0-9a-f]{64}$/);
      expect(lines.slice(7)).toEqual(['Status: Downloaded newer image for busybox:latest', 'docker.io/library/busybox:latest']);
      const again = await cli(['pull', 'busybox:latest'], { ...env, BERTH_ROOT: fresh });
      expect(again.stdout).toContain(`${layer}: Already exists`);
      expect(again.stdout).toContain('Status: Image is up to date for busybox:latest');
      expect((await cli(['pull', '-q', 'busybox'], { ...env, BERTH_ROOT: fresh })).stdout).toBe('docker.io/library/busybox:latest\n');
    } finally {
      await done();
    }
  });

  it('draws per-layer progress bars on a terminal (a pty from script(1))', async () => {
    const { root: fresh, cleanup: done } = tempRoot('cli-pty');
    try {
      const command = `${process.execPath} ${CLI} pull busybox`;
      const { stdout } = await promisify(execFile)('script', ['-qec', command, '/dev/null'], {
        env: { PATH: process.env.PATH!, HOME: home, BERTH_ROOT: fresh, BERTH_REGISTRY_MIRRORS: registry.url, TERM: 'xterm' },
      });
      // The layer's line is drawn, then rewritten in place (cursor up, clear line) as it progresses.
      expect(stdout).toMatch(/[0-9a-f]{12}: Pulling fs layer\r?\n/);
      expect(stdout).toMatch(/[0-9a-f]{12}: (Downloading|Extracting) \[[=> ]{50}\] +[\d.]+k?B\/[\d.]+[kM]B/);
      expect(stdout).toMatch(/\x1b\[1A\r\x1b\[2K[0-9a-f]{12}: Pull complete/);
      expect(stdout).toContain('Status: Downloaded newer image for busybox:latest');
    } finally {
      await done();
    }
  });

  it('lists, tags, inspects and removes images', async () => {
    const images = await cli(['images'], env);
    expect(images.stdout).toMatch(/^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE\nbusybox\s+latest\s+[0-9a-f]{12}\s+\S.*\s+[\d.]+[kM]B\n$/);
    expect((await cli(['tag', 'busybox', 'mybox:v1'], env)).code).toBe(0);
    expect((await cli(['images', '--format', '{{.Repository}}:{{.Tag}}'], env)).stdout).toBe('busybox:latest\nmybox:v1\n');
    expect((await cli(['image', 'inspect', '-f', '{{.Os}}/{{.Architecture}} {{json .RepoTags}}', 'mybox:v1'], env)).stdout)
      .toMatch(/^linux\/\w+ \["busybox:latest","mybox:v1"\]\n$/);
    expect((await cli(['rmi', 'mybox:v1'], env)).stdout).toBe('Untagged: mybox:v1\n');
    const missing = await cli(['rmi', 'mybox:v1'], env);
    expect(missing).toMatchObject({ code: 1, stderr: 'Error: No such image: mybox:v1\n' });
    expect((await cli(['images', '-q'], env)).stdout).toMatch(/^[0-9a-f]{12}\n$/);
  });
});

describe('networks', () => {
  it('creates, lists, inspects and removes a network; containers on it resolve each other', async () => {
    const created = await cli(['network', 'create', '--subnet', '10.231.0.0/24', 'clinet'], env);
    expect(created.code).toBe(0);
    expect((await cli(['network', 'ls', '--format', '{{.Name}} {{.Driver}}'], env)).stdout).toContain('clinet bridge\n');
    expect((await cli(['network', 'inspect', '-f', '{{json .IPAM.Config}}', 'clinet'], env)).stdout).toBe('[{"Subnet":"10.231.0.0/24","Gateway":"10.231.0.1"}]\n');
    await cli(['run', '-d', '--name', 'server', '--network', 'clinet', '--network-alias', 'db', 'busybox', 'sleep', '100'], env);
    const r = await cli(['run', '--rm', '--network', 'clinet', 'busybox', 'sh', '-c', 'grep -w db /etc/hosts | cut -f1'], env);
    expect(r.stdout).toMatch(/^10\.231\.0\.\d+\n$/);
    expect((await cli(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'server'], env)).stdout).toBe(r.stdout);
    const inUse = await cli(['network', 'rm', 'clinet'], env);
    expect(inUse.code).toBe(1);
    await cli(['rm', '-f', 'server'], env);
    expect(await cli(['network', 'rm', 'clinet'], env)).toMatchObject({ code: 0, stdout: 'clinet\n' });
  });

  it('connects a detached container to a second network and disconnects it', async () => {
    expect((await cli(['network', 'create', '--subnet', '10.232.0.0/24', 'cli-first'], env)).code).toBe(0);
    expect((await cli(['network', 'create', '--subnet', '10.233.0.0/24', 'cli-second'], env)).code).toBe(0);
    try {
      await cli(['run', '-d', '--name', 'multi', '--network', 'cli-first', 'busybox', 'sleep', '100'], env);
      expect(await cli(['network', 'connect', '--alias', 'extra', 'cli-second', 'multi'], env)).toMatchObject({ code: 0, stderr: '' });
      const nets = JSON.parse((await cli(['inspect', '-f', '{{json .NetworkSettings.Networks}}', 'multi'], env)).stdout);
      expect(Object.keys(nets)).toEqual(['cli-first', 'cli-second']);
      expect(nets['cli-second']).toMatchObject({ IPAddress: expect.stringMatching(/^10\.233\.0\.\d+$/), Aliases: ['extra'] });
      expect((await cli(['ps', '--filter', 'network=cli-second', '--format', '{{.Names}} {{.Networks}}'], env)).stdout).toBe('multi cli-first,cli-second\n');
      const again = await cli(['network', 'connect', 'cli-second', 'multi'], env);
      expect(again).toMatchObject({ code: 1, stderr: expect.stringContaining('already connected') });
      expect(await cli(['network', 'disconnect', 'cli-second', 'multi'], env)).toMatchObject({ code: 0 });
      expect(Object.keys(JSON.parse((await cli(['inspect', '-f', '{{json .NetworkSettings.Networks}}', 'multi'], env)).stdout))).toEqual(['cli-first']);
    } finally {
      await cli(['rm', '-f', 'multi'], env);
      await cli(['network', 'rm', 'cli-first', 'cli-second'], env);
    }
  });
});

describe('port and wait', () => {
  it('lists published ports, and waits for containers to stop printing their exit codes', async () => {
    const started = await cli(['run', '-d', '--name', 'ported', '-p', '127.0.0.1:0:80', '-p', '127.0.0.1:0:53/udp', 'busybox', 'sh', '-c', 'sleep 1; exit 7'], env);
    expect(started.code).toBe(0);
    try {
      const all = await cli(['port', 'ported'], env);
      expect(all.stdout).toMatch(/^53\/udp -> 127\.0\.0\.1:\d+\n80\/tcp -> 127\.0\.0\.1:\d+\n$/);
      const tcp = /80\/tcp -> (127\.0\.0\.1:\d+)/.exec(all.stdout)![1];
      expect((await cli(['port', 'ported', '80'], env)).stdout).toBe(`${tcp}\n`);
      expect(await cli(['port', 'ported', '81/tcp'], env)).toMatchObject({ code: 1, stderr: "Error: No public port '81/tcp' published for ported\n" });
      expect((await cli(['port', 'ported', 'x'], env)).code).toBe(125);
      // The shim serves the published port for as long as the container runs.
      const served = await cli(['run', '-d', '--name', 'served', '-p', '127.0.0.1:0:80', 'busybox', 'sh', '-c', 'while true; do echo pong | nc -l -p 80; done'], env);
      expect(served.code).toBe(0);
      const port = Number((await cli(['port', 'served', '80/tcp'], env)).stdout.trim().split(':')[1]);
      expect(await tcpEcho(port, 'ping\n')).toBe('pong\n');
      await cli(['rm', '-f', 'served'], env);
      // wait: blocks until it exits by itself, then prints its status; again at once for a stopped one.
      expect(await cli(['wait', 'ported', 'ported'], env)).toMatchObject({ code: 0, stdout: '7\n7\n' });
      expect(await cli(['wait', 'nonesuch'], env)).toMatchObject({ code: 1, stderr: expect.stringContaining('nonesuch') });
      expect((await cli(['port', 'ported'], env)).stdout).toBe('');
    } finally {
      await cli(['rm', '-f', 'ported'], env);
    }
  });
});

describe('system prune, info, version', () => {
  it('prune removes stopped containers and unused networks after confirmation', async () => {
    await cli(['create', '--name', 'leftover', 'busybox', 'true'], env);
    await cli(['network', 'create', 'unused'], env);
    const declined = await cli(['system', 'prune'], env, 'n\n');
    expect(declined.stdout).toContain('Are you sure you want to continue? [y/N]');
    expect((await cli(['ps', '-a', '-q'], env)).stdout).not.toBe('');
    const r = await cli(['system', 'prune'], env, 'y\n');
    expect(r.stdout).toMatch(/Deleted Containers:\n[0-9a-f]{64}\n\nDeleted Networks:\nunused\n\nTotal reclaimed space: /);
    expect((await cli(['ps', '-a', '-q'], env)).stdout).toBe('');
    expect((await cli(['network', 'ls', '--format', '{{.Name}}'], env)).stdout).not.toContain('unused');
  });

  it('prints version and info, with --format', async () => {
    const version = await cli(['version', '--format', '{{json .}}'], env);
    expect(JSON.parse(version.stdout)).toMatchObject({ Client: { Version: '0.1.0', Os: 'linux' }, Server: { Version: '0.1.0' } });
    expect((await cli(['--version'], env)).stdout).toBe('berth version 0.1.0\n');
    const info = await cli(['info'], env);
    expect(info.stdout).toMatch(/Cgroup Version: 1\n/);
    expect(info.stdout).toContain(`Berth Root Dir: ${root}\n`);
    expect(info.stdout).toContain(`Registry Mirrors:\n  ${registry.url}\n`);
  });
});

describe('config file and environment', () => {
  it('reads the state root, mirrors, insecure registries and log options from a config file; the environment wins', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-test-cli-config-'));
    try {
      const other = join(dir, 'state');
      const file = join(dir, 'config.json');
      writeFileSync(file, JSON.stringify({
        'data-root': other, 'registry-mirrors': [registry.url], 'insecure-registries': ['registry.lan:5000'],
        'log-opts': { 'max-size': '1k', 'max-file': '2' },
      }));
      const noEnv = { HOME: home };
      const info = await cli(['--config', file, 'info', '--format', '{{.DockerRootDir}} {{json .RegistryConfig}}'], noEnv);
      expect(info.stdout).toBe(`${other} {"Mirrors":["${registry.url}"],"InsecureRegistryCIDRs":["registry.lan:5000"]}\n`);
      // BERTH_CONFIG names the file too; BERTH_ROOT overrides its data-root; --root overrides both.
      expect((await cli(['info', '-f', '{{.DockerRootDir}}'], { ...noEnv, BERTH_CONFIG: file })).stdout).toBe(`${other}\n`);
      expect((await cli(['info', '-f', '{{.DockerRootDir}}'], { ...noEnv, BERTH_CONFIG: file, BERTH_ROOT: root })).stdout).toBe(`${root}\n`);
      expect((await cli(['--root', join(dir, 'x'), 'info', '-f', '{{.DockerRootDir}}'], { ...noEnv, BERTH_CONFIG: file, BERTH_ROOT: root })).stdout).toBe(`${join(dir, 'x')}\n`);
      // The mirror from the file pulls busybox; the log options apply to new containers.
      const run = await cli(['--config', file, 'run', '--name', 'configured', 'busybox', 'echo', 'ok'], noEnv);
      expect(run).toMatchObject({ code: 0, stdout: 'ok\n' });
      expect((await cli(['--config', file, 'inspect', '-f', '{{json .HostConfig.LogConfig}}', 'configured'], noEnv)).stdout)
        .toBe('{"Type":"json-file","Config":{"max-size":"1024","max-file":"2"}}\n');
      expect((await cli(['--config', file, 'rm', 'configured'], noEnv)).code).toBe(0);
      // The user's config file (~/.config/berth/config.json) is read without being named.
      mkdirSync(join(dir, 'home', '.config', 'berth'), { recursive: true });
      writeFileSync(join(dir, 'home', '.config', 'berth', 'config.json'), JSON.stringify({ 'data-root': join(dir, 'from-home') }));
      expect((await cli(['info', '-f', '{{.DockerRootDir}}'], { HOME: join(dir, 'home') })).stdout).toBe(`${join(dir, 'from-home')}\n`);
      // Environment lists for registries.
      const envInfo = await cli(['info', '-f', '{{json .RegistryConfig}}'], { ...noEnv, BERTH_ROOT: root, BERTH_REGISTRY_MIRRORS: 'http://127.0.0.1:1, http://127.0.0.1:2', BERTH_INSECURE_REGISTRIES: 'a:5000,b:5000' });
      expect(envInfo.stdout).toBe('{"Mirrors":["http://127.0.0.1:1","http://127.0.0.1:2"],"InsecureRegistryCIDRs":["a:5000","b:5000"]}\n');
      // A broken file is named in the error.
      writeFileSync(file, '{ "registry-mirrors": "not a list" }');
      const broken = await cli(['--config', file, 'info'], noEnv);
      expect(broken.code).toBe(1);
      expect(broken.stderr).toContain(`invalid config file ${file}: registry-mirrors:`);
    } finally {
      await clearRoot(join(dir, 'state'));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('usage', () => {
  const commands = [
    [], ['run'], ['create'], ['start'], ['stop'], ['kill'], ['restart'], ['rm'], ['ps'], ['logs'], ['attach'], ['exec'], ['wait'], ['port'], ['top'], ['pause'], ['unpause'],
    ['rename'], ['inspect'], ['pull'], ['images'], ['rmi'], ['tag'], ['events'], ['version'], ['info'],
    ['container'], ['container', 'ls'], ['container', 'rm'], ['image'], ['image', 'ls'], ['image', 'pull'], ['image', 'rm'], ['image', 'tag'], ['image', 'inspect'],
    ['network'], ['network', 'ls'], ['network', 'create'], ['network', 'rm'], ['network', 'inspect'], ['network', 'connect'], ['network', 'disconnect'],
    ['system'], ['system', 'prune'], ['system', 'info'], ['system', 'events'],
  ];

  it('answers --help on every command with its usage, status 0', async () => {
    const results = [];
    for (let i = 0; i < commands.length; i += 8) {
      results.push(...(await Promise.all(commands.slice(i, i + 8).map(async (c) => [c, await cli([...c, '--help'], env)] as const))));
    }
    for (const [c, r] of results) {
      expect(r.code, c.join(' ')).toBe(0);
      expect(r.stdout, c.join(' ')).toMatch(new RegExp(`^Usage:  berth${c.map((w) => ` ${w}`).join('')} `));
      expect(r.stdout, c.join(' ')).toMatch(c.length === 0 || ['container', 'image', 'network', 'system'].includes(c.join(' ')) ? /Commands:/ : /Options:\n/);
    }
    // `-h` is --help except where it means something else (run -h is the hostname).
    expect((await cli(['ps', '-h'], env)).stdout).toMatch(/^Usage:  berth ps /);
  });

  it('reports unknown commands, flags and wrong argument counts as docker does', async () => {
    expect(await cli(['frobnicate'], env)).toMatchObject({ code: 1, stderr: "berth: 'frobnicate' is not a berth command.\nSee 'berth --help'\n" });
    const flag = await cli(['ps', '--nope'], env);
    expect(flag).toMatchObject({ code: 125, stderr: "berth: unknown flag: --nope\n\nRun 'berth ps --help' for more information\n" });
    const count = await cli(['rm'], env);
    expect(count.code).toBe(1);
    expect(count.stderr).toMatch(/^berth: "berth rm" requires at least 1 argument\.\nSee 'berth rm --help'\./);
    const format = await cli(['version', '--format', '{{.Nope}}'], env);
    expect(format.code).toBe(125);
    expect(format.stderr).toContain("can't evaluate field Nope");
  });
});

describe('berth exec', () => {
  it('runs a command in a container the berth command made (owned by its shim), with docker\'s exit statuses', async () => {
    expect((await cli(['run', '-d', '--name', 'exec-web', 'busybox', 'sleep', '1000'], env)).code).toBe(0);
    try {
      const r = await cli(['exec', '-u', '1000:1000', '-w', '/bin', '-e', 'GREETING=hi', 'exec-web', 'sh', '-c', 'id -u; pwd; echo $GREETING; ps -o pid,args | awk \'$1 == 1 {print $2, $3}\'; exit 4'], env);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('1000\n/bin\nhi\nsleep 1000\n');
      expect(r.code).toBe(4);
      expect((await cli(['exec', 'exec-web', 'nosuch'], env)).code).toBe(127);
      const user = await cli(['exec', '-u', 'nobody', 'exec-web', 'true'], env);
      expect(user.code).toBe(126);
      expect(user.stderr).toMatch(/unable to find user nobody/);
      const it = await cli(['exec', '-it', 'exec-web', 'sh'], env);
      expect(it.code).toBe(1); // stdin is a pipe here, not a terminal (test/cli-tty.test.ts drives -it on one)
      expect(it.stderr).toBe('the input device is not a TTY\n');
      // Nothing of the exec's output reaches the container's log.
      expect((await cli(['logs', 'exec-web'], env)).stdout).toBe('');
    } finally {
      await cli(['rm', '-f', 'exec-web'], env);
    }
    const stopped = await cli(['exec', 'exec-web', 'true'], env);
    expect(stopped.code).not.toBe(0);
  });
});
