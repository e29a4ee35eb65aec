// Events: recorded by whichever process acts, replayed and followed by any process sharing the state root,
// filtered as `docker events --filter`, bounded in size.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Container, type BerthEvent } from '../lib/index.js';
import { recordEvent } from '../lib/journal/events.js';
import { tempRoot } from './helpers/env.js';

const { root, rootfs, cleanup } = tempRoot('events');
const scripts = mkdtempSync(join(tmpdir(), 'berth-events-scripts-'));
afterAll(async () => {
  await cleanup();
  rmSync(scripts, { recursive: true, force: true });
});
const dist = new URL('../dist/lib/index.js', import.meta.url).pathname;

/** Collects events until `stop` says so (or 10 s pass). */
async function collect(options: Parameters<typeof Container.events>[0], stop: (seen: BerthEvent[]) => boolean): Promise<BerthEvent[]> {
  const seen: BerthEvent[] = [];
  const signal = AbortSignal.timeout(10_000);
  for await (const e of Container.events({ root, signal, ...options })) {
    seen.push(e);
    if (stop(seen)) break;
  }
  return seen;
}

describe('events', () => {
  it('records a container\'s life in order, with Docker\'s attributes', async () => {
    const since = new Date();
    const c = await Container.create({ root, rootfs, cmd: ['sh', '-c', 'exit 3'], name: 'ev-life', labels: { team: 'a' } });
    await c.start();
    await c.wait();
    await c.remove();
    const seen = await collect({ since, filters: { container: ['ev-life'] } }, (s) => s.some((e) => e.action === 'destroy'));
    expect(seen.map((e) => e.action)).toEqual(['create', 'start', 'die', 'destroy']);
    for (const e of seen) {
      expect(e.type).toBe('container');
      expect(e.id).toBe(c.id);
      expect(e.attributes).toMatchObject({ name: 'ev-life', team: 'a' });
      expect(e.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    }
    expect(seen[2]!.attributes.exitCode).toBe('3');
    // Times never go backwards.
    expect([...seen.map((e) => e.time)].sort()).toEqual(seen.map((e) => e.time));
  });

  it('records kill, stop and die with the signal, and filters by event and id prefix', async () => {
    const since = new Date();
    await using c = await Container.create({ root, rootfs, cmd: ['sleep', '100'] });
    await c.start();
    await c.stop({ timeout: 0.1 });
    const seen = await collect({ since, filters: { container: [c.id.slice(0, 12)], event: ['kill', 'die', 'stop'] } }, (s) => s.length === 4);
    // sleep as pid 1 ignores SIGTERM: kill 15, kill 9 after the timeout, die, stop (as Docker reports a stop).
    expect(seen.map((e) => [e.action, e.attributes.signal ?? '', e.attributes.exitCode ?? ''])).toEqual([
      ['kill', '15', ''], ['kill', '9', ''], ['die', 'SIGKILL', '137'], ['stop', '', ''],
    ]);
  });

  it('follows events written by another process, and that process sees ours', async () => {
    const file = join(scripts, 'follow.mjs');
    writeFileSync(file, `
      import { Container } from ${JSON.stringify(dist)};
      const out = [];
      for await (const e of Container.events({ root: ${JSON.stringify(root)}, filters: { type: ['container'], event: ['start', 'die'] } })) {
        console.log(JSON.stringify({ action: e.action, name: e.attributes.name }));
        if (e.action === 'die') break;
      }`);
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    // Give the follower time to open the file at its end (it only reports new events).
    await new Promise((r) => setTimeout(r, 700));
    await Container.run({ root, rootfs, cmd: ['true'], name: 'ev-cross' });
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
    expect(stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([
      { action: 'start', name: 'ev-cross' },
      { action: 'die', name: 'ev-cross' },
    ]);
  });

  it('ends at until, replaying what was kept before', async () => {
    const since = new Date(Date.now() - 1000);
    await Container.run({ root, rootfs, cmd: ['true'], name: 'ev-until' });
    const until = new Date(Date.now() + 300);
    const started = Date.now();
    const seen: BerthEvent[] = [];
    for await (const e of Container.events({ root, since, until, filters: { container: ['ev-until'] } })) seen.push(e);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(seen.map((e) => e.action)).toEqual(['create', 'start', 'die', 'destroy']);
    // A past until: no following at all.
    const past: BerthEvent[] = [];
    for await (const e of Container.events({ root, until: new Date(Date.now() - 60_000) })) past.push(e);
    expect(past.every((e) => e.time < new Date(Date.now() - 60_000).toISOString())).toBe(true);
  });

  it('stays bounded: the file rotates and readers see across the rotation', async () => {
    const r = join(root, 'bounded');
    mkdirSync(r);
    const big = 'x'.repeat(2000);
    for (let i = 0; i < 600; i++) recordEvent(r, 'image', 'tag', `img-${i}`, { name: big });
    expect(statSync(join(r, 'events.jsonl')).size).toBeLessThanOrEqual(512 * 1024);
    expect(statSync(join(r, 'events.jsonl.1')).size).toBeLessThanOrEqual(512 * 1024);
    const seen: BerthEvent[] = [];
    for await (const e of Container.events({ root: r, since: 0, until: new Date(Date.now() + 1) })) seen.push(e);
    // Two files of ≤ 512 KiB hold the last 240-490 of these 2 KiB events, in order, the newest included.
    expect(seen.length).toBeGreaterThan(240);
    expect(seen.at(-1)!.id).toBe('img-599');
    const ids = seen.map((e) => Number(e.id.slice(4)));
    expect(ids).toEqual(ids.map((_, i) => ids[0]! + i));
  });
});
