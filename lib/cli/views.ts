/**
 * What the commands print, shaped as docker's CLI shapes it, so that scripts written for docker's `--format`
 * keep working: `ps` rows (`{{.ID}}`, `{{.Status}}`, ...), `images` rows, `network ls` rows, `inspect` objects
 * (`{{.State.Status}}`, `{{.NetworkSettings.IPAddress}}`, ...) and events (`{{.Actor.Attributes.name}}`).
 * berth's own fields ride along under `Berth` in inspect output.
 * @module
 */
import type { ContainerInfo } from '../container/container.js';
import { IN_CONTAINER_INIT_PATH } from '../container/init-process.js';
import type { ImageInfo, ImageSummary } from '../image/image.js';
import { parseReference } from '../image/reference.js';
import type { BerthEvent } from '../journal/events.js';
import { parseRfc3339Ns } from '../journal/time.js';
import type { NetworkInfo } from '../network/network.js';
import { ago, commandText, humanSize, portsText, shortId, stateText, statusText } from './human.js';

/** Docker's default `ps` table and its headers. */
export const PS_TABLE = {
  table: '{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}',
  headers: {
    ID: 'CONTAINER ID', Image: 'IMAGE', Command: 'COMMAND', RunningFor: 'CREATED', CreatedAt: 'CREATED AT', Status: 'STATUS',
    Ports: 'PORTS', Names: 'NAMES', State: 'STATE', Labels: 'LABELS', Networks: 'NETWORKS', Mounts: 'MOUNTS', Size: 'SIZE',
    LocalVolumes: 'LOCAL VOLUMES', Pid: 'PID',
  },
};

/** What a container was made from, as the IMAGE column shows it. */
function imageOf(c: ContainerInfo): string {
  if (!c.image) return c.rootfs;
  try {
    return parseReference(c.image).familiar;
  } catch {
    return c.image;
  }
}

function labelsText(labels: Record<string, string>): string {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
}

/** One `ps` row. */
export function psRow(c: ContainerInfo, full: boolean, now = Date.now()): Record<string, string> {
  return {
    Command: commandText(c.command, full),
    CreatedAt: new Date(c.createdAt).toString(),
    ID: full ? c.id : shortId(c.id),
    Image: imageOf(c),
    Labels: labelsText(c.labels),
    LocalVolumes: '0',
    Mounts: userMounts(c).map((m) => m.Source || m.Destination).join(','),
    Names: c.name,
    Networks: c.network?.networks?.length
      ? c.network.networks.map((n) => n.networkName).join(',')
      : (c.network?.endpoint?.networkName ?? (c.network?.mode && !c.network.mode.startsWith('container:') ? c.network.mode : '')),
    Pid: c.pid === null ? '' : String(c.pid),
    Ports: portsText(c.network?.ports ?? []),
    RunningFor: ago(c.createdAt, now),
    Size: '0B',
    State: stateText(c),
    Status: statusText(c, now),
  };
}

/** Mount points docker adds to every container: not listed as the user's mounts. */
const DEFAULT_DESTINATIONS = new Set([
  '/proc', '/dev', '/dev/pts', '/sys', '/sys/fs/cgroup', '/dev/mqueue', '/dev/shm', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf',
]);

interface MountView {
  Type: string;
  Source: string;
  Destination: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
}

function userMounts(c: ContainerInfo): MountView[] {
  return (c.spec.mounts ?? [])
    .filter((m) => !DEFAULT_DESTINATIONS.has(m.destination) && !(c.init && m.destination === IN_CONTAINER_INIT_PATH))
    .map((m) => {
      const options = m.options ?? [];
      const bind = m.type === 'bind' || options.includes('bind') || options.includes('rbind');
      return {
        Type: bind ? 'bind' : (m.type ?? 'tmpfs'),
        Source: bind ? (m.source ?? '') : '',
        Destination: m.destination,
        Mode: options.filter((o) => o === 'ro' || o === 'rw').join(','),
        RW: !options.includes('ro'),
        Propagation: options.find((o) => /^r?(private|shared|slave)$/.test(o)) ?? '',
      };
    });
}

/** `docker inspect` for a container: docker's layout, berth's record under `Berth`. */
export function inspectContainer(c: ContainerInfo): Record<string, unknown> {
  const spec = c.spec;
  const proc = spec.process;
  const ep = c.network?.endpoint;
  const ports: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of c.network?.ports ?? []) (ports[`${p.container}/${p.protocol}`] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.host) });
  const { spec: _spec, ...berth } = c;
  return {
    Id: c.id,
    Created: c.createdAt,
    Path: c.command[0] ?? '',
    Args: c.command.slice(1),
    State: {
      Status: stateText(c),
      // As Docker's: a container about to be restarted counts as running.
      Running: c.status === 'running' || c.restarting,
      Paused: c.paused,
      Restarting: c.restarting,
      OOMKilled: c.oomKilled,
      Dead: false,
      Pid: c.pid ?? 0,
      ExitCode: c.exitCode ?? 0,
      Error: c.error,
      StartedAt: c.startedAt ?? '0001-01-01T00:00:00Z',
      FinishedAt: c.finishedAt ?? '0001-01-01T00:00:00Z',
    },
    Image: c.image ?? '',
    Name: `/${c.name}`,
    RestartCount: c.restartCount,
    Driver: c.image ? 'overlay' : 'rootfs',
    HostConfig: {
      LogConfig: { Type: c.log.driver, Config: c.log.driver === 'none' ? {} : { 'max-size': String(c.log.maxSize), 'max-file': String(c.log.maxFile) } },
      NetworkMode: c.network?.mode ?? 'none',
      PortBindings: ports,
      ReadonlyRootfs: spec.root.readonly ?? false,
      Init: c.init,
      Privileged: false,
      RestartPolicy: { Name: c.restartPolicy.name, MaximumRetryCount: c.restartPolicy.maximumRetryCount ?? 0 },
    },
    Mounts: userMounts(c),
    Config: {
      Hostname: spec.hostname ?? '',
      Domainname: spec.domainname ?? '',
      User: proc.user ? `${proc.user.uid}:${proc.user.gid}` : '',
      Env: proc.env ?? [],
      Cmd: c.command,
      Image: c.image ?? c.rootfs,
      WorkingDir: proc.cwd,
      Labels: c.labels,
      Tty: c.tty,
      OpenStdin: c.openStdin,
      ExposedPorts: Object.fromEntries(c.exposedPorts.map((p) => [p, {}])),
    },
    NetworkSettings: {
      IPAddress: ep?.ipAddress ?? '',
      IPPrefixLen: ep?.prefixLength ?? 0,
      Gateway: ep?.gateway ?? '',
      MacAddress: ep?.macAddress ?? '',
      Ports: ports,
      // Every network it is on now (connected ones too); the one it was created on once it stopped.
      Networks: Object.fromEntries((c.network?.networks?.length ? c.network.networks : ep ? [ep] : []).map((n) => [
        n.networkName,
        { NetworkID: n.networkId, IPAddress: n.ipAddress, IPPrefixLen: n.prefixLength, Gateway: n.gateway, MacAddress: n.macAddress, Aliases: n.aliases },
      ])),
    },
    Berth: berth,
  };
}

/** Docker's default `images` table. */
export const IMAGES_TABLE = {
  table: '{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}',
  headers: { Repository: 'REPOSITORY', Tag: 'TAG', ID: 'IMAGE ID', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', Size: 'SIZE', Digest: 'DIGEST' },
};

/** One `images` row. */
export function imageRow(i: ImageSummary, full: boolean, now = Date.now()): Record<string, string> {
  const ref = parseReference(i.reference);
  const familiarRepo = ref.familiar.replace(/(:[^:/@]+)?(@.*)?$/, '');
  return {
    Repository: familiarRepo,
    Tag: ref.tag ?? '<none>',
    ID: full ? i.id : shortId(i.id),
    Digest: i.digest,
    CreatedSince: i.created ? ago(i.created, now) : 'N/A',
    CreatedAt: i.created ?? '',
    // Docker's SIZE: what the unpacked layers take; the compressed size only for an image not unpacked here.
    Size: humanSize(i.unpackedSize ?? i.size),
    Platform: i.platform,
  };
}

/** `docker image inspect` layout. */
export function inspectImage(i: ImageInfo): Record<string, unknown> {
  const ref = parseReference(i.reference);
  return {
    Id: i.id,
    RepoTags: i.repoTags.map((t) => parseReference(t).familiar),
    RepoDigests: [`${ref.familiar.replace(/(:[^:/@]+)?(@.*)?$/, '')}@${i.digest}`],
    Created: i.created ?? '',
    Architecture: i.architecture,
    Os: i.os,
    Size: i.unpackedSize ?? i.size,
    Config: i.config,
    RootFS: { Type: 'layers', Layers: i.layers.map((l) => l.diffId) },
    Berth: {
      reference: i.reference, digest: i.digest, platform: i.platform, compressedSize: i.size, unpackedSize: i.unpackedSize,
      layers: i.layers, history: i.history,
    },
  };
}

/** Docker's default `network ls` table. */
export const NETWORKS_TABLE = {
  table: '{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}',
  headers: { ID: 'NETWORK ID', Name: 'NAME', Driver: 'DRIVER', Scope: 'SCOPE', Internal: 'INTERNAL', Labels: 'LABELS', CreatedAt: 'CREATED AT', Subnet: 'SUBNET' },
};

/** One `network ls` row. */
export function networkRow(n: NetworkInfo, full: boolean): Record<string, string> {
  return {
    ID: full ? n.id : shortId(n.id),
    Name: n.name,
    Driver: n.driver,
    Scope: 'local',
    Internal: String(n.internal),
    IPv6: 'false',
    Labels: labelsText(n.labels),
    CreatedAt: n.createdAt,
    Subnet: n.subnet,
  };
}

/** `docker network inspect` layout. */
export function inspectNetwork(n: NetworkInfo): Record<string, unknown> {
  return {
    Name: n.name,
    Id: n.id,
    Created: n.createdAt,
    Scope: 'local',
    Driver: n.driver,
    EnableIPv6: false,
    IPAM: { Driver: 'default', Config: [{ Subnet: n.subnet, Gateway: n.gateway }] },
    Internal: n.internal,
    Containers: Object.fromEntries(n.containers.map((c) => [c.id, { Name: c.name, IPv4Address: c.ipv4Address, MacAddress: c.macAddress }])),
    Options: { 'com.docker.network.bridge.name': n.bridge, 'com.docker.network.driver.mtu': String(n.mtu) },
    Labels: n.labels,
    Berth: { warnings: n.warnings },
  };
}

/** An event as docker's `--format` sees it. */
export function eventView(e: BerthEvent): Record<string, unknown> {
  const ns = parseRfc3339Ns(e.time) ?? 0n;
  return {
    status: e.action,
    id: e.id,
    ...(e.attributes.image ? { from: e.attributes.image } : {}),
    Type: e.type,
    Action: e.action,
    Actor: { ID: e.id, Attributes: e.attributes },
    scope: 'local',
    time: Number(ns / 1_000_000_000n),
    timeNano: Number(ns),
  };
}

/** docker's default event line: `<time> container start <id> (image=busybox, name=web)`. */
export function eventLine(e: BerthEvent): string {
  const attrs = Object.entries(e.attributes).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(', ');
  return `${e.time} ${e.type} ${e.action} ${e.id}${attrs ? ` (${attrs})` : ''}`;
}
