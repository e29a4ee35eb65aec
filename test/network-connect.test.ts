// network.connect / network.disconnect on the real kernel: a running container gets one more interface on
// another network, reaches that network's containers by name, and loses them again when disconnected; also from
// another process sharing the state root. Traffic only goes between namespaces these tests create.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerNotFoundError, ContainerStateError, EndpointExistsError, Network, NetworkNotFoundError } from '../lib/index.js';
import { tempRoot } from './helpers/env.js';
import { berthLinks, eventually, started } from './helpers/network.js';

const { root, rootfs, cleanup } = tempRoot('netconnect');
afterAll(cleanup);

const dist = new URL('../dist/lib/index.js', import.meta.url).pathname;

const start = (options: Parameters<typeof started>[2]) => started(root, rootfs, options);

const hostsOf = (id: string) => readFileSync(join(root, 'containers', id, 'hosts'), 'utf8');
const leasesOf = (netId: string) => readdirSync(join(root, 'networks', netId, 'leases'));

describe('network.connect / disconnect', () => {
  let a: Network;
  let b: Network;
  beforeAll(async () => {
    a = await Network.create({ root, name: 'conn-a' });
    b = await Network.create({ root, name: 'conn-b' });
  });
  afterAll(async () => {
    await a.remove();
    await b.remove();
  });

  it('a connected container reaches the other network by name; after disconnect it cannot', async () => {
    const server = await start({ network: 'conn-b', name: 'srv', cmd: ['nc', '-ll', '-p', '7000', '-e', 'echo', 'reached'] });
    // The client waits for the server's name to appear in its hosts file, talks to it, then waits for the name to
    // go and tries the address it had.
    const client = await start({
      network: 'conn-a', name: 'cli',
      cmd: ['sh', '-c', [
        'i=0; until grep -q "\\bsrv\\b" /etc/hosts; do sleep 0.1; i=$((i+1)); [ $i -gt 150 ] && echo timeout-in && exit 1; done',
        'ip=$(awk \'$2 == "srv" {print $1}\' /etc/hosts)',
        'for i in 1 2 3 4 5 6 7 8 9 10; do r=$(nc -w 2 srv 7000 </dev/null) && [ -n "$r" ] && break; sleep 0.2; done',
        'echo "by-name:$r"',
        // The aliased container is started after the connect: wait for its name and listener too.
        'for i in $(seq 50); do r=$(nc -w 2 storage 7000 </dev/null 2>/dev/null) && [ -n "$r" ] && break; sleep 0.2; done',
        'echo "by-alias:$r"',
        'ip -o -4 addr show | awk \'{print "addr:" $2 " " $4}\'; ip route | sed "s/^/route:/"',
        'echo connected-done',
        'i=0; while grep -q "\\bsrv\\b" /etc/hosts; do sleep 0.1; i=$((i+1)); [ $i -gt 150 ] && echo timeout-out && exit 1; done',
        'echo "after:$(nc -w 1 $ip 7000 </dev/null; echo status $?)"',
        'ip -o link show | awk -F": " \'{print "link:" $2}\'',
        'echo links-done',
        'exec sleep 60',
      ].join('\n')],
    });
    try {
      const netA = await a.inspect();
      const netB = await b.inspect();
      const endpoint = await b.connect(client.c, { aliases: ['cli-alias'] });
      expect(endpoint).toMatchObject({ networkName: 'conn-b', interface: 'eth1', aliases: ['cli-alias'] });
      expect(berthLinks()).toContain(endpoint.veth);
      // The server now knows the client too, by name and alias.
      expect(hostsOf(server.c.id)).toMatch(new RegExp(`\\n${endpoint.ipAddress.replace(/\./g, '\\.')}\\tcli cli-alias `));
      // A second alias for the server was not asked: connect another container with an alias to test the alias.
      const third = await start({ network: 'conn-b', name: 'store', networkAliases: ['storage'], cmd: ['nc', '-ll', '-p', '7000', '-e', 'echo', 'stored'] });
      try {
        expect(await eventually(() => client.output().includes('connected-done'))).toBe(true);
        const out = client.output();
        expect(out).toContain('by-name:reached\n');
        expect(out).toContain('by-alias:stored\n');
        expect(out).toContain(`addr:eth1 ${endpoint.ipAddress}/${endpoint.prefixLength}`);
        // Only the subnet's route on eth1; the default route stays on eth0 (the first network).
        expect(out).toContain(`route:default via ${netA.gateway} dev eth0`);
        expect(out).toMatch(new RegExp(`route:${netB.subnet.replace(/\./g, '\\.')} dev eth1`));
        expect(out).not.toMatch(/route:default via \S+ dev eth1/);

        const info = await client.c.inspect();
        expect(info.network!.networks!.map((n) => [n.networkName, n.interface])).toEqual([['conn-a', 'eth0'], ['conn-b', 'eth1']]);
        expect((await b.inspect()).containers.map((c) => c.name).sort()).toEqual(['cli', 'srv', 'store']);

        await expect(b.connect('cli')).rejects.toBeInstanceOf(EndpointExistsError);
        await expect(a.connect(client.c)).rejects.toBeInstanceOf(EndpointExistsError);

        await b.disconnect(client.c);
        expect(await eventually(() => client.output().includes('links-done'))).toBe(true);
        const after = client.output();
        expect(after).toMatch(/after:status [1-9]/);
        expect(after).not.toContain('after:reached');
        expect(after).not.toContain('link:eth1');
        expect(after).toContain('link:eth0');
        expect(berthLinks()).not.toContain(endpoint.veth);
        expect(hostsOf(server.c.id)).not.toContain('cli');
        expect(hostsOf(client.c.id)).not.toContain('srv');
        expect(leasesOf(netB.id)).toHaveLength(2);
        expect((await client.c.inspect()).network!.networks!.map((n) => n.networkName)).toEqual(['conn-a']);
        await expect(b.disconnect(client.c)).rejects.toBeInstanceOf(ContainerStateError);
      } finally {
        await third.c.remove({ force: true });
      }
    } finally {
      await client.c.remove({ force: true });
      await server.c.remove({ force: true });
    }
    expect(await eventually(() => leasesOf((a as Network).id).length === 0 && leasesOf(b.id).length === 0)).toBe(true);
  });

  it('a connection made by another process is released when the owner removes the container', async () => {
    const c = await start({ network: 'conn-a', name: 'multi', cmd: ['sleep', '60'] });
    try {
      const script = join(root, '..', 'connector.mjs');
      writeFileSync(script, `import { Network } from ${JSON.stringify(dist)};
const n = await Network.get('conn-b', { root: ${JSON.stringify(root)} });
console.log(JSON.stringify(await n.connect('multi')));
`);
      const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout!.on('data', (d) => (text += d));
      const code = await new Promise((r) => child.once('exit', r));
      expect(code).toBe(0);
      const endpoint = JSON.parse(text) as { veth: string; ipAddress: string };
      expect(berthLinks()).toContain(endpoint.veth);
      const info = await c.c.inspect();
      expect(info.network!.networks!.map((n) => n.interface)).toEqual(['eth0', 'eth1']);
      const r = await Container.run({ root, rootfs, network: 'conn-b', cmd: ['cat', '/etc/hosts'] });
      expect(r.stdout).toMatch(/\tmulti /);
    } finally {
      await c.c.remove({ force: true });
    }
    expect(await eventually(() => leasesOf(b.id).length === 0 && leasesOf(a.id).length === 0)).toBe(true);
    expect(await eventually(() => !berthLinks().some((l) => l.startsWith(`bveth${c.c.id.slice(0, 8)}`)))).toBe(true);
  });

  it('several networks at create: eth0 on the first, eth1 on the next, names of both resolve', async () => {
    const server = await start({ network: 'conn-b', name: 'srv-b', cmd: ['nc', '-ll', '-p', '7000', '-e', 'echo', 'from-b'] });
    try {
      const r = await Container.run({
        root, rootfs, network: 'conn-a', networks: [{ name: 'conn-b', aliases: ['both'] }], name: 'twice',
        cmd: ['sh', '-c', 'ip -o -4 addr show | awk \'{print $2}\'; for i in 1 2 3 4 5 6 7 8 9 10; do r=$(nc -w 2 srv-b 7000 </dev/null) && [ -n "$r" ] && break; sleep 0.2; done; echo "$r"; cat /proc/1/net/dev >/dev/null; grep -w srv-b /etc/hosts | wc -l'],
      });
      expect(r.stdout).toBe('lo\neth0\neth1\nfrom-b\n1\n');
      const kept = await start({ network: 'conn-a', networks: [{ name: 'conn-b', aliases: ['both'] }], name: 'twice2', cmd: ['sleep', '30'] });
      try {
        expect(hostsOf(server.c.id)).toMatch(/\ttwice2 both [0-9a-f]{12}\n/);
        expect((await kept.c.inspect()).network!.networks!.map((n) => `${n.networkName}:${n.interface}`)).toEqual(['conn-a:eth0', 'conn-b:eth1']);
      } finally {
        await kept.c.remove({ force: true });
      }
      // Once it is gone, the server forgets it on conn-b too.
      expect(await eventually(() => !hostsOf(server.c.id).includes('twice'))).toBe(true);
    } finally {
      await server.c.remove({ force: true });
    }
    const { InvalidOptionsError } = await import('../lib/index.js');
    await expect(Container.run({ root, rootfs, network: 'none', networks: [{ name: 'conn-b' }], cmd: ['true'] })).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(Container.run({ root, rootfs, network: 'conn-a', networks: [{ name: 'conn-a' }], cmd: ['true'] })).rejects.toThrow(/given twice/);
    await expect(Container.run({ root, rootfs, network: 'conn-a', networks: [{ name: 'nowhere' }], cmd: ['true'] })).rejects.toBeInstanceOf(NetworkNotFoundError);
    expect(await eventually(() => leasesOf(b.id).length === 0 && leasesOf(a.id).length === 0)).toBe(true);
    expect(readdirSync(join(root, 'containers'))).toEqual([]);
  });

  it('refuses unknown networks and containers, stopped containers, and modes without a bridge', async () => {
    await expect(Network.get('no-such-net', { root })).rejects.toBeInstanceOf(NetworkNotFoundError);
    await expect(b.connect('no-such-container')).rejects.toBeInstanceOf(ContainerNotFoundError);
    const done = await Container.create({ root, rootfs, network: 'conn-a', cmd: ['true'] });
    try {
      await done.start();
      await done.wait();
      await expect(b.connect(done)).rejects.toThrow(/not running/);
    } finally {
      await done.remove({ force: true });
    }
    const none = await start({ network: 'none', cmd: ['sleep', '30'] });
    try {
      await expect(b.connect(none.c)).rejects.toThrow(/network mode is none/);
    } finally {
      await none.c.remove({ force: true });
    }
    const gone = await Network.create({ root, name: 'conn-gone' });
    const c = await start({ network: 'conn-a', cmd: ['sleep', '30'] });
    try {
      await gone.remove();
      await expect(gone.connect(c.c)).rejects.toBeInstanceOf(NetworkNotFoundError);
    } finally {
      await c.c.remove({ force: true });
    }
    expect(await eventually(() => leasesOf(b.id).length === 0 && leasesOf(a.id).length === 0)).toBe(true);
  });
});
