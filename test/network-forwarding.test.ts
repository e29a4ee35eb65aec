// IPv4 forwarding is a host-wide switch: berth turns it on only when asked (enableIpForward, BERTH_IP_FORWARD=1).
// Each case runs in a child process inside a network namespace of its own (unshare -n), whose switch starts off
// and vanishes with it: the host's own setting is never touched.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempRoot } from './helpers/env.js';

const { root, rootfs, cleanup } = tempRoot('netfwd');
afterAll(cleanup);
const dist = new URL('../dist/lib/', import.meta.url).pathname;

/** Runs `body` (module code with Network, Container, root, rootfs, fwd() in scope) in a fresh netns; its JSON out. */
function inOwnNetns(name: string, body: string, env: Record<string, string> = {}): Record<string, unknown> {
  const script = join(root, '..', `${name}.mjs`);
  writeFileSync(script, `import { readFileSync } from 'node:fs';
import { Container, Network } from ${JSON.stringify(join(dist, 'index.js'))};
const root = ${JSON.stringify(join(root, name))}, rootfs = ${JSON.stringify(rootfs)};
const fwd = () => readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
const out = { before: fwd() };
${body}
console.log(JSON.stringify(out));
`);
  const text = execFileSync('unshare', ['-n', process.execPath, script], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
  return JSON.parse(text) as Record<string, unknown>;
}

describe('IPv4 forwarding', () => {
  const hostBefore = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
  afterAll(() => expect(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8')).toBe(hostBefore));

  it('is left alone by default (and said so), turned on by enableIpForward, never by an internal network', () => {
    const out = inOwnNetns('fwd-option', `
const plain = await Network.create({ root, name: 'plain', subnet: '10.241.1.0/24' });
out.afterPlain = fwd();
out.warnings = (await plain.inspect()).warnings;
const internal = await Network.create({ root, name: 'internal', subnet: '10.241.2.0/24', internal: true, enableIpForward: true });
out.afterInternal = fwd();
const asked = await Network.create({ root, name: 'asked', subnet: '10.241.3.0/24', enableIpForward: true });
out.afterAsked = fwd();
out.warningsAfter = (await plain.inspect()).warnings;
for (const n of [plain, internal, asked]) await n.remove();
out.afterRemove = fwd();
`);
    expect(out.before).toBe('0');
    expect(out.afterPlain).toBe('0');
    expect((out.warnings as string[]).join('\n')).toMatch(/IPv4 forwarding is disabled.*enableIpForward or BERTH_IP_FORWARD=1/);
    expect(out.afterInternal).toBe('0');
    expect(out.afterAsked).toBe('1');
    expect((out.warningsAfter as string[]).join('\n')).not.toMatch(/IPv4 forwarding/);
    expect(out.afterRemove).toBe('1'); // as Docker: never turned off again
  });

  it('BERTH_IP_FORWARD=1 covers the default bridge network created on first use', () => {
    const out = inOwnNetns('fwd-env', `
const r = await Container.run({ root, rootfs, network: 'bridge', cmd: ['true'] });
out.exit = r.exitCode;
out.after = fwd();
for (const n of await Network.list({ root })) await (await Network.get(n.name, { root })).remove().catch(() => undefined);
`, { BERTH_IP_FORWARD: '1' });
    expect(out.before).toBe('0');
    expect(out.exit).toBe(0);
    expect(out.after).toBe('1');
  });
});
