/**
 * Published ports, served by a userland proxy in the owning Node process (Docker's docker-proxy does the same job
 * for loopback): a TCP listener or UDP socket on the host address forwards to the container's address. It works
 * from 127.0.0.1 without route_localnet and needs no firewall rule. The listeners are bound when the container is
 * created (a taken port fails the create) and closed when it exits.
 * @module
 */
import { createSocket, type Socket as UdpSocket, type RemoteInfo } from 'node:dgram';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { PortBindError } from './errors.js';

/** A port to publish, as validated options. */
export interface PortSpec {
  container: number;
  host?: number | undefined;
  hostIp?: string | undefined;
  protocol?: 'tcp' | 'udp' | undefined;
}

/** A published port as bound (`host` is the real port when 0 or none was asked). */
export interface PortBinding {
  container: number;
  host: number;
  hostIp: string;
  protocol: 'tcp' | 'udp';
}

/** How long a UDP client's flow is kept without traffic (docker-proxy's default). */
const UDP_IDLE_MS = 90_000;

/** The listeners of one container. */
export interface PublishedPorts {
  bindings: PortBinding[];
  close(): Promise<void>;
}

/** Binds every port (all or none) and forwards to `targetIp`. */
export async function publishPorts(specs: readonly PortSpec[], targetIp: string): Promise<PublishedPorts> {
  const closers: (() => Promise<void>)[] = [];
  const bindings: PortBinding[] = [];
  const close = async () => {
    await Promise.all(closers.splice(0).map((c) => c().catch(() => undefined)));
  };
  try {
    for (const s of specs) {
      const protocol = s.protocol ?? 'tcp';
      const hostIp = s.hostIp ?? '0.0.0.0';
      const wanted = s.host ?? 0;
      const bound = protocol === 'tcp' ? await tcpProxy(hostIp, wanted, targetIp, s.container) : await udpProxy(hostIp, wanted, targetIp, s.container);
      closers.push(bound.close);
      bindings.push({ container: s.container, host: bound.port, hostIp, protocol });
    }
  } catch (e) {
    await close();
    throw e;
  }
  return { bindings, close };
}

function bindError(e: NodeJS.ErrnoException, hostIp: string, port: number, protocol: string): PortBindError {
  const what = `${hostIp}:${port}/${protocol}`;
  if (e.code === 'EADDRINUSE') return new PortBindError(`cannot publish ${what}: the port is already in use on the host; choose another host port or 0 for a free one`, { cause: e });
  if (e.code === 'EADDRNOTAVAIL') return new PortBindError(`cannot publish ${what}: ${hostIp} is not an address of this host`, { cause: e });
  return new PortBindError(`cannot publish ${what}: ${e.message}`, { cause: e });
}

async function tcpProxy(hostIp: string, port: number, targetIp: string, targetPort: number): Promise<{ port: number; close: () => Promise<void> }> {
  const conns = new Set<Socket>();
  const server: Server = createServer({ noDelay: true }, (client) => {
    const upstream = connect({ host: targetIp, port: targetPort, noDelay: true });
    conns.add(client);
    conns.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      conns.delete(client);
      conns.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(bindError(e as NodeJS.ErrnoException, hostIp, port, 'tcp')));
    server.listen({ host: hostIp, port, exclusive: true }, () => resolve());
  });
  // Listening alone does not keep this process alive (as watching a container does not).
  server.unref();
  const bound = (server.address() as { port: number }).port;
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of conns) c.destroy();
        server.close(() => resolve());
      }),
  };
}

async function udpProxy(hostIp: string, port: number, targetIp: string, targetPort: number): Promise<{ port: number; close: () => Promise<void> }> {
  const front: UdpSocket = createSocket({ type: 'udp4' });
  // One upstream socket per client address, so replies find their way back.
  const flows = new Map<string, { sock: UdpSocket; timer: NodeJS.Timeout }>();
  const drop = (key: string) => {
    const f = flows.get(key);
    if (!f) return;
    clearTimeout(f.timer);
    f.sock.close();
    flows.delete(key);
  };
  front.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    const key = `${rinfo.address}:${rinfo.port}`;
    let f = flows.get(key);
    if (!f) {
      const sock = createSocket({ type: 'udp4' });
      sock.on('message', (reply) => {
        front.send(reply, rinfo.port, rinfo.address);
        refresh(key);
      });
      sock.on('error', () => drop(key));
      sock.unref();
      f = { sock, timer: setTimeout(() => drop(key), UDP_IDLE_MS).unref() };
      flows.set(key, f);
    }
    refresh(key);
    f.sock.send(msg, targetPort, targetIp);
  });
  const refresh = (key: string) => {
    const f = flows.get(key);
    if (f) f.timer.refresh();
  };
  await new Promise<void>((resolve, reject) => {
    front.once('error', (e) => {
      front.close();
      reject(bindError(e as NodeJS.ErrnoException, hostIp, port, 'udp'));
    });
    front.bind({ address: hostIp, port, exclusive: true }, () => resolve());
  });
  front.unref();
  return {
    port: front.address().port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const k of [...flows.keys()]) drop(k);
        front.close(() => resolve());
      }),
  };
}
