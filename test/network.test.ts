// Networking end to end on the real kernel: user networks, name resolution, isolation, internal networks,
// published ports, container:<id>, cleanup, bad input. Traffic only ever goes to loopback or to namespaces these
// tests create; the host's forwarding switch and other firewall tables are never changed.
import { execFileSync, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Container, InvalidOptionsError, Network, NetworkNotFoundError, PortBindError, SubnetConflictError,
} from '../lib/index.js';
import { tempRoot } from './helpers/env.js';
import { berthLinks, eventually, started, tcpEcho } from './helpers/network.js';

const { root, rootfs, cleanup } = tempRoot('network');
afterAll(cleanup);

const dist = new URL('../dist/lib/index.js', import.meta.url).pathname;

function nftTables(): string {
  return execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' });
}

const start = (options: Parameters<typeof started>[2]) => started(root, rootfs, options);


describe('user networks', () => {
  let net: Network;
  let other: Network;
  beforeAll(async () => {
    net = await Network.create({ root, name: 'front' });
    other = await Network.create({ root, name: 'back' });
  });
  afterAll(async () => {
    await net.remove();
    await other.remove();
  });

  it('creates a bridge with the gateway address and a table of its own', async () => {
    const info = await net.inspect();
    expect(info.subnet).toMatch(/^\d+\.\d+\.\d+\.0\/\d+$/);
    expect(berthLinks()).toContain(info.bridge);
    const addr = execFileSync('ip', ['-o', '-4', 'addr', 'show', 'dev', info.bridge], { encoding: 'utf8' });
    expect(addr).toContain(`inet ${info.gateway}/`);
    const table = execFileSync('nft', ['list', 'table', 'ip', `berth_${info.id.slice(0, 12)}`], { encoding: 'utf8' });
    expect(table).toMatch(new RegExp(`ip saddr ${info.subnet.replace(/\./g, '\\.')} oifname != "${info.bridge}" masquerade`));
    expect((await Network.list({ root })).map((n) => n.name).sort()).toEqual(['back', 'front']);
    expect((await other.inspect()).subnet).not.toBe(info.subnet);
  });

  it('two containers reach each other by name and alias (TCP echo with nc)', async () => {
    const server = await start({ name: 'echo-server', network: 'front', networkAliases: ['db'], cmd: ['sh', '-c', 'nc -ll -p 7000 -e cat & nc -ll -p 7001 -e cat & wait'] });
    try {
      const info = await server.c.inspect();
      expect(info.network?.endpoint?.ipAddress).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      const client = await Container.run({
        root, rootfs, network: 'front',
        cmd: ['sh', '-c', 'for i in 1 2 3 4 5 6 7 8 9 10; do r=$(echo ping-$0 | nc -w 2 $0 $1) && [ -n "$r" ] && break; sleep 0.2; done; echo "$r"; echo by-alias; echo pong | nc -w 2 db 7001', 'echo-server', '7000'],
      });
      expect(client.stdout).toBe('ping-echo-server\nby-alias\npong\n');
      // The client's own files: hostname, hosts with itself and the server, the host's resolvers.
      const files = await Container.run({ root, rootfs, network: 'front', hostname: 'web', cmd: ['cat', '/etc/hostname', '/etc/hosts', '/etc/resolv.conf'] });
      expect(files.stdout).toMatch(/^web\n/);
      expect(files.stdout).toMatch(new RegExp(`\\n${info.network!.endpoint!.ipAddress.replace(/\./g, '\\.')}\\techo-server db ${server.c.id.slice(0, 12)}\\n`));
      expect(files.stdout).toMatch(/\nnameserver /);
    } finally {
      await server.c.remove({ force: true });
    }
  });

  it('a container sees its address, MTU and default route; peers leave the hosts file when removed', async () => {
    const a = await start({ network: 'front', name: 'peer-a', cmd: ['sleep', '30'] });
    const b = await start({ network: 'front', name: 'peer-b', cmd: ['sleep', '30'] });
    try {
      const r = await Container.run({ root, rootfs, network: 'front', cmd: ['sh', '-c', 'ip -o addr show eth0; ip -o link show eth0; ip route; cat /etc/hosts'] });
      const gw = (await net.inspect()).gateway;
      expect(r.stdout).toMatch(/inet \d+\.\d+\.\d+\.\d+\/\d+ brd/);
      expect(r.stdout).toMatch(/mtu 1500/);
      expect(r.stdout).toContain(`default via ${gw} dev eth0`);
      expect(r.stdout).toMatch(/\tpeer-a /);
      expect(r.stdout).toMatch(/\tpeer-b /);
      await b.c.remove({ force: true });
      const after = await Container.run({ root, rootfs, network: 'front', cmd: ['cat', '/etc/hosts'] });
      expect(after.stdout).toMatch(/\tpeer-a /);
      expect(after.stdout).not.toMatch(/peer-b/);
    } finally {
      await a.c.remove({ force: true });
      await b.c.remove({ force: true });
    }
  });

  it('containers on different networks cannot reach each other', async () => {
    const server = await start({ network: 'back', name: 'backend', cmd: ['nc', '-l', '-p', '7000', '-e', 'echo', 'reached'] });
    try {
      const ip = (await server.c.inspect()).network!.endpoint!.ipAddress;
      // Same network: reachable (proves the server listens).
      const same = await Container.run({ root, rootfs, network: 'back', cmd: ['sh', '-c', `for i in 1 2 3 4 5 6 7 8 9 10; do r=$(nc -w 2 ${ip} 7000 </dev/null) && [ -n "$r" ] && break; sleep 0.2; done; echo "$r"`] });
      expect(same.stdout).toBe('reached\n');
      const server2 = await start({ network: 'back', name: 'backend2', cmd: ['nc', '-l', '-p', '7000', '-e', 'echo', 'reached'] });
      try {
        const ip2 = (await server2.c.inspect()).network!.endpoint!.ipAddress;
        const cross = await Container.run({ root, rootfs, network: 'front', cmd: ['sh', '-c', `nc -w 2 ${ip2} 7000 </dev/null; echo "status $?"`] });
        expect(cross.stdout).not.toContain('reached');
        expect(cross.stdout).toMatch(/status [1-9]/);
        // By name neither: the other network's containers are not in its hosts file.
        const byName = await Container.run({ root, rootfs, network: 'front', cmd: ['cat', '/etc/hosts'] });
        expect(byName.stdout).not.toContain('backend');
      } finally {
        await server2.c.remove({ force: true });
      }
    } finally {
      await server.c.remove({ force: true });
    }
  });
});

describe('internal networks', () => {
  it('have no route out and no NAT rule', async () => {
    const net = await Network.create({ root, name: 'sealed', internal: true });
    try {
      const info = await net.inspect();
      const table = execFileSync('nft', ['list', 'table', 'ip', `berth_${info.id.slice(0, 12)}`], { encoding: 'utf8' });
      expect(table).not.toContain('masquerade');
      expect(table).toMatch(/iifname "[^"]+" drop/);
      // 192.0.2.2 is this VM's own address on eth0: without a route the packet is never sent at all.
      const r = await Container.run({ root, rootfs, network: 'sealed', cmd: ['sh', '-c', 'ip route; nc -w 1 192.0.2.2 22 </dev/null; echo "status $?"'] });
      expect(r.stdout).not.toContain('default');
      expect(r.stdout + r.stderr).toMatch(/unreachable/i);
      expect(r.stdout).toMatch(/status 1/);
      // The gateway, on the network itself, still answers.
      const gw = await Container.run({ root, rootfs, network: 'sealed', cmd: ['ping', '-c', '1', '-W', '3', info.gateway] });
      expect(gw.exitCode).toBe(0);
    } finally {
      await net.remove();
    }
  });
});

describe('the default bridge network', () => {
  it('is created on first use; containers get an address but no names of others', async () => {
    const a = await start({ network: 'bridge', name: 'def-a', cmd: ['sleep', '30'] });
    try {
      const r = await Container.run({ root, rootfs, network: 'bridge', cmd: ['sh', '-c', 'ip -o -4 addr show eth0; cat /etc/hosts'] });
      expect(r.stdout).toMatch(/inet \d/);
      expect(r.stdout).not.toContain('def-a');
      const nets = await Network.list({ root });
      const bridge = nets.find((n) => n.name === 'bridge')!;
      expect(bridge.containers.map((c) => c.name)).toEqual(['def-a']);
    } finally {
      await a.c.remove({ force: true });
    }
    await (await Network.get('bridge', { root })).remove();
  });
});

describe('published ports', () => {
  it('fixed and auto-chosen TCP ports reach the container from 127.0.0.1, and close when it stops', async () => {
    const fixed = await freePort();
    const { c } = await start({
      network: 'bridge',
      ports: [{ container: 80, host: fixed, hostIp: '127.0.0.1' }, { container: 81, hostIp: '127.0.0.1' }],
      cmd: ['sh', '-c', 'nc -ll -p 80 -e cat & nc -ll -p 81 -e cat & wait'],
    });
    try {
      const ports = (await c.inspect()).network!.ports;
      expect(ports[0]).toEqual({ container: 80, host: fixed, hostIp: '127.0.0.1', protocol: 'tcp' });
      expect(ports[1]!.host).toBeGreaterThan(0);
      expect(await tcpEcho(fixed, 'hello fixed\n')).toBe('hello fixed\n');
      expect(await tcpEcho(ports[1]!.host, 'hello auto\n')).toBe('hello auto\n');
      await c.stop({ timeout: 1 });
      // Released once stopped: the port can be bound again.
      await new Promise((r) => setTimeout(r, 50));
      await expect(listenOnce(fixed)).resolves.toBe(true);
    } finally {
      await c.remove({ force: true });
    }
    await (await Network.get('bridge', { root })).remove();
  });

  it('a UDP port reaches a UDP echo server in the container', async () => {
    const echo = udpEchoBinary();
    const { c } = await start({
      network: 'bridge',
      ports: [{ container: 5300, hostIp: '127.0.0.1', protocol: 'udp' }],
      mounts: [{ type: 'bind', source: echo, target: '/udpecho', readonly: true }],
      cmd: ['/udpecho', '5300'],
    });
    try {
      const port = (await c.inspect()).network!.ports[0]!.host;
      const sock = createSocket('udp4');
      const reply = await new Promise<string>((resolve, reject) => {
        const timer = setInterval(() => sock.send('udp hello', port, '127.0.0.1'), 200);
        sock.on('message', (m) => {
          clearInterval(timer);
          resolve(m.toString());
        });
        setTimeout(() => {
          clearInterval(timer);
          reject(new Error('no UDP reply'));
        }, 10_000);
      });
      sock.close();
      expect(reply).toBe('udp hello');
    } finally {
      await c.remove({ force: true });
    }
    await (await Network.get('bridge', { root })).remove();
  });
});

describe('container:<id>', () => {
  it('shares the other container\'s network namespace (localhost)', async () => {
    const server = await start({ network: 'none', name: 'ns-owner', cmd: ['nc', '-l', '-p', '9000', '-e', 'echo', 'via-localhost'] });
    try {
      const r = await Container.run({ root, rootfs, network: 'container:ns-owner', cmd: ['sh', '-c', 'for i in 1 2 3 4 5 6 7 8 9 10; do r=$(nc -w 2 127.0.0.1 9000 </dev/null) && [ -n "$r" ] && break; sleep 0.2; done; echo "$r"'] });
      expect(r.stdout).toBe('via-localhost\n');
    } finally {
      await server.c.remove({ force: true });
    }
  });

  it('host and none modes', async () => {
    const none = await Container.run({ root, rootfs, network: 'none', cmd: ['sh', '-c', 'ls /sys/class/net; cat /etc/hosts'] });
    expect(none.stdout.split('\n').slice(0, 1)).toEqual(['lo']);
    expect(none.stdout).toContain('127.0.0.1\tlocalhost');
    // Interfaces come and go meanwhile (veths of other containers): compare with those there before and after.
    const before = readdirSync('/sys/class/net');
    const host = await Container.run({ root, rootfs, network: 'host', cmd: ['ls', '/sys/class/net'] });
    const after = new Set(readdirSync('/sys/class/net'));
    const stable = before.filter((n) => after.has(n));
    expect(stable).toContain('lo');
    expect(host.stdout.split('\n')).toEqual(expect.arrayContaining(stable));
  });
});

describe('bad input changes nothing', () => {
  it('refuses bad CIDRs, overlapping subnets, unknown networks, taken ports, bad combinations', async () => {
    const before = { links: berthLinks().sort(), tables: nftTables(), nets: await Network.list({ root }) };
    await expect(Network.create({ root, name: 'x', subnet: '10.0.0.300/24' })).rejects.toThrow(InvalidOptionsError);
    await expect(Network.create({ root, name: 'x', subnet: '10.77.0.1/16' })).rejects.toThrow(/host bits set: did you mean 10\.77\.0\.0\/16/);
    await expect(Network.create({ root, name: 'x', subnet: '10.77.0.0/16', gateway: '10.78.0.1' })).rejects.toThrow(/gateway/);
    await expect(Network.create({ root, name: 'bad name!' })).rejects.toThrow(InvalidOptionsError);
    // 192.0.2.0/24 is this VM's own eth0 network.
    const hostNet = readFileIfAny('/proc/net/route').includes('000200C0') ? '192.0.2.0/25' : undefined;
    if (hostNet) await expect(Network.create({ root, name: 'x', subnet: hostNet })).rejects.toThrow(SubnetConflictError);
    const n = await Network.create({ root, name: 'taken', subnet: '10.77.0.0/16' });
    try {
      await expect(Network.create({ root, name: 'x', subnet: '10.77.128.0/24' })).rejects.toThrow(/overlaps 10\.77\.0\.0\/16 \(network taken\)/);
      await expect(Network.create({ root, name: 'taken' })).rejects.toThrow(/already exists/);
    } finally {
      await n.remove();
    }
    await expect(Container.run({ root, rootfs, network: 'nosuch', cmd: ['true'] })).rejects.toThrow(NetworkNotFoundError);
    await expect(Container.run({ root, rootfs, network: 'host', ports: [{ container: 80 }], cmd: ['true'] })).rejects.toThrow(/bridge network/);
    await expect(Container.run({ root, rootfs, network: 'container:nosuch', cmd: ['true'] })).rejects.toThrow(/no such container/);
    await expect(Container.run({ root, rootfs, network: 'bridge', namespaces: { network: 'none' }, cmd: ['true'] })).rejects.toThrow(/not both/);
    // A taken host port: the create fails and its address, veth and files are gone.
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen({ host: '127.0.0.1', port: 0 }, () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      await expect(Container.run({ root, rootfs, network: 'bridge', ports: [{ container: 80, host: port, hostIp: '127.0.0.1' }], cmd: ['true'] })).rejects.toThrow(PortBindError);
    } finally {
      blocker.close();
    }
    const bridge = (await Network.list({ root })).find((x) => x.name === 'bridge')!;
    expect(bridge.containers).toEqual([]);
    expect(await eventually(() => readdirSync(join(root, 'networks', bridge.id, 'leases')).length === 0)).toBe(true);
    expect(readdirSync(join(root, 'containers'))).toEqual([]);
    await (await Network.get('bridge', { root })).remove();
    expect(berthLinks().sort()).toEqual(before.links);
    expect(nftTables()).toBe(before.tables);
    expect(await Network.list({ root })).toEqual(before.nets);
  });

  it('refuses to remove a network in use', async () => {
    const n = await Network.create({ root, name: 'busy' });
    const c = await start({ network: 'busy', cmd: ['sleep', '30'] });
    try {
      await expect(n.remove()).rejects.toThrow(/has containers attached/);
    } finally {
      await c.c.remove({ force: true });
    }
    await n.remove();
  });
});

describe('cleanup', () => {
  it('100 create/remove cycles leave no veth, bridge port, address or lease behind', async () => {
    const n = await Network.create({ root, name: 'cycles' });
    const info = await n.inspect();
    const links = berthLinks().sort();
    for (let i = 0; i < 100; i++) {
      const r = await Container.run({ root, rootfs, network: 'cycles', ports: i % 10 === 0 ? [{ container: 80, hostIp: '127.0.0.1' }] : [], cmd: ['true'] });
      expect(r.exitCode).toBe(0);
    }
    expect(await eventually(() => berthLinks().sort().join() === links.join())).toBe(true);
    expect(execFileSync('ip', ['-o', 'link', 'show', 'master', info.bridge], { encoding: 'utf8' })).toBe('');
    expect(await eventually(() => readdirSync(join(root, 'networks', info.id, 'leases')).length === 0)).toBe(true);
    expect((await n.inspect()).containers).toEqual([]);
    await n.remove();
    expect(berthLinks()).not.toContain(info.bridge);
    expect(nftTables()).not.toContain(`berth_${info.id.slice(0, 12)}`);
    expect(existsSync(join(root, 'networks', info.id))).toBe(false);
  });

  it('the lease of a container whose owner was killed is reclaimed', async () => {
    const n = await Network.create({ root, name: 'orphans' });
    const info = await n.inspect();
    const script = join(root, '..', 'owner.mjs');
    writeFileSync(script, `import { Container } from ${JSON.stringify(dist)};
const c = await Container.create({ root: ${JSON.stringify(root)}, rootfs: ${JSON.stringify(rootfs)}, network: 'orphans', cmd: ['sleep', '60'] });
await c.start();
console.log(JSON.stringify((await c.inspect()).network.endpoint));
setInterval(() => {}, 1000);
`);
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const endpoint = await new Promise<{ ipAddress: string; veth: string }>((resolve) => child.stdout!.once('data', (d) => resolve(JSON.parse(String(d)))));
    expect(berthLinks()).toContain(endpoint.veth);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // The container dies with its owner (the parent-death signal takes a moment); its namespace and the veth go
    // with it, and the next user of the network reclaims the address.
    expect(await eventually(() => !berthLinks().includes(endpoint.veth))).toBe(true);
    const r = await Container.run({ root, rootfs, network: 'orphans', cmd: ['cat', '/etc/hosts'] });
    expect(r.exitCode).toBe(0);
    expect(await eventually(() => readdirSync(join(root, 'networks', info.id, 'leases')).length === 0)).toBe(true);
    // Opening the root again (as a new process does) removes the dead owner's container record too.
    const { cleanupDeadOwners } = await import('../lib/container/engine.js');
    const { openEngine } = await import('../lib/container/engine.js');
    await cleanupDeadOwners(await openEngine(root));
    expect(readdirSync(join(root, 'containers'))).toEqual([]);
    await n.remove();
  });
});

function readFileIfAny(path: string): string {
  try {
    return execFileSync('cat', [path], { encoding: 'utf8' });
  } catch {
    return '';
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen({ host: '127.0.0.1', port: 0 }, () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function listenOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host: '127.0.0.1', port }, () => s.close(() => resolve(true)));
  });
}

/** A static UDP echo server (busybox has none), compiled once into the test's directory. */
function udpEchoBinary(): string {
  const dir = join(root, '..');
  const bin = join(dir, 'udpecho');
  if (existsSync(bin)) return bin;
  const src = join(dir, 'udpecho.c');
  writeFileSync(src, `#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>
int main(int argc, char** argv) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(atoi(argv[1]));
  if (bind(s, (struct sockaddr*)&a, sizeof a) < 0) return 1;
  for (;;) {
    char buf[2048];
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr*)&from, &len);
    if (n > 0) sendto(s, buf, n, 0, (struct sockaddr*)&from, len);
  }
}
`);
  execFileSync('gcc', ['-static', '-O1', '-o', bin, src]);
  return bin;
}

describe('after a reboot', () => {
  it('rebuilds a network\'s bridge and rules from its record when a container next uses it', async () => {
    const n = await Network.create({ root, name: 'rebooted', subnet: '10.242.0.0/24' });
    const info = await n.inspect();
    // What a reboot leaves: the record, without the bridge and its nftables table.
    execFileSync('ip', ['link', 'del', info.bridge]);
    if (info.firewall === 'nftables') execFileSync('nft', ['delete', 'table', 'ip', `berth_${info.id.slice(0, 12)}`]);
    expect(berthLinks()).not.toContain(info.bridge);
    const r = await Container.run({ root, rootfs, network: 'rebooted', cmd: ['sh', '-c', 'ip -4 addr show eth0 | grep -o "inet [0-9.]*"; ip route'] });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/inet 10\.242\.0\.\d+/);
    expect(r.stdout).toContain('default via 10.242.0.1');
    expect(berthLinks()).toContain(info.bridge);
    if (info.firewall === 'nftables') expect(nftTables()).toContain(`berth_${info.id.slice(0, 12)}`);
    for (let i = 0; ; i++) {
      try {
        await n.remove();
        break;
      } catch (e) {
        if (i > 50) throw e;
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    expect(berthLinks()).not.toContain(info.bridge);
  });
});
