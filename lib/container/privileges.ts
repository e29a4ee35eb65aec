/**
 * What a container may reach beyond Docker's defaults, and how it is granted: `privileged`, host devices
 * (`devices`, `deviceCgroupRules`), and overrides of the masked and read-only paths. Applied to the OCI spec after
 * the defaults, so the plan and the executor see only the result.
 * @module
 */
import { lstatSync, readdirSync, readFileSync, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { InvalidOptionsError } from '../errors.js';
import { CAPABILITY_NAMES, lastCapability, type CapabilityName } from './capabilities.js';
import { DEFAULT_DEV_SYMLINKS, type OciDevice } from './defaults.js';
import type { OciSpec } from './spec.js';
import type { DeviceRule } from './cgroup/devices.js';

/** A host device passed into the container: `'/dev/fuse'`, `'/dev/sdb:/dev/xvdb'`, `'/dev/sdb:/dev/xvdb:r'`. */
export type DeviceOption = string | { path: string; containerPath?: string; permissions?: string };

let hostCapsCache: CapabilityName[] | undefined;

/**
 * The capabilities this process may hand on: its bounding set. A container can never hold more, so `privileged`
 * and `capAdd: ['ALL']` mean "all of these" (on a host without CAP_SYS_RESOURCE, every other one).
 */
export function hostCapabilities(): CapabilityName[] {
  if (!hostCapsCache) {
    let mask = (1n << BigInt(lastCapability() + 1)) - 1n;
    try {
      const hex = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
      if (hex) mask = BigInt(`0x${hex}`);
    } catch {
      // no /proc: assume every capability the kernel knows
    }
    hostCapsCache = CAPABILITY_NAMES.filter((_, bit) => bit <= lastCapability() && ((mask >> BigInt(bit)) & 1n) === 1n);
  }
  return hostCapsCache;
}

/** Refuses capabilities the host cannot grant, naming them (capset would fail with a bare EPERM at start). */
export function checkGrantable(caps: readonly CapabilityName[]): void {
  const host = new Set(hostCapabilities());
  const missing = caps.filter((c) => !host.has(c));
  if (missing.length) {
    throw new InvalidOptionsError('capAdd', missing.map((c) => ({
      path: c,
      message: `this process cannot grant ${c}: it is not in its own bounding set (a container never gets more than its owner)`,
    })));
  }
}

/** `--privileged`, as Docker: every capability, every host device, no masked or read-only /proc and /sys paths. */
export function applyPrivileged(spec: OciSpec): void {
  const caps = hostCapabilities();
  // Inheritable and ambient stay empty, as Docker does since CVE-2022-24769.
  spec.process.capabilities = { bounding: [...caps], effective: [...caps], permitted: [...caps], inheritable: [], ambient: [] };
  const linux = (spec.linux ??= {});
  linux.maskedPaths = [];
  linux.readonlyPaths = [];
  for (const m of spec.mounts ?? []) {
    // sysfs and the cgroup filesystem become writable (Docker mounts them rw for privileged containers).
    if (m.type === 'sysfs' || m.type === 'cgroup' || m.type === 'cgroup2') m.options = (m.options ?? []).filter((o) => o !== 'ro');
  }
  const taken = new Set((linux.devices ?? []).map((d) => d.path));
  linux.devices = [...(linux.devices ?? []), ...hostDevices().filter((d) => !taken.has(d.path)).map((d) => ({ ...d }))];
  linux.resources = { ...linux.resources, devices: [{ allow: true, access: 'rwm' }] };
}

/** /dev entries that are never copied as device nodes: runtime filesystems, and what the defaults make symlinks. */
const SKIPPED_DEV = new Set(['/dev/pts', '/dev/shm', '/dev/mqueue', '/dev/.udev', '/dev/.lxc', ...DEFAULT_DEV_SYMLINKS.map((l) => l.path)]);

/** Every character and block device under the host's /dev, as OCI devices with the host's owner and mode. */
export function hostDevices(): OciDevice[] {
  const out: OciDevice[] = [];
  const walk = (dir: string, depth: number): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = posix.join(dir, name);
      if (SKIPPED_DEV.has(path)) continue;
      let st: Stats;
      try {
        st = lstatSync(path);
      } catch {
        continue; // gone meanwhile
      }
      if (st.isDirectory() && depth < 8) walk(path, depth + 1);
      else if (st.isCharacterDevice() || st.isBlockDevice()) out.push(deviceFromStat(path, st));
    }
  };
  walk('/dev', 0);
  return out;
}

function deviceFromStat(containerPath: string, st: Stats): OciDevice {
  return {
    path: containerPath,
    type: st.isBlockDevice() ? 'b' : 'c',
    // glibc's dev_t layout (what stat(2) returns through Node): 12+20 bits of major, 8+24 of minor.
    major: Number(((BigInt(st.rdev) >> 8n) & 0xfffn) | ((BigInt(st.rdev) >> 32n) & 0xfffff000n)),
    minor: Number((BigInt(st.rdev) & 0xffn) | ((BigInt(st.rdev) >> 12n) & 0xffffff00n)),
    fileMode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
  };
}

const PERMISSIONS = /^[rwm]{1,3}$/;

/**
 * Docker's `--device`: host path, optional path in the container (default the same), optional cgroup permissions
 * (default `rwm`). A directory passes every device under it. Each device is created in the container and allowed by
 * the device cgroup with those permissions.
 */
export function deviceMappings(options: readonly DeviceOption[]): { devices: OciDevice[]; rules: DeviceRule[] } {
  const devices: OciDevice[] = [];
  const rules: DeviceRule[] = [];
  const bad: { path: string; message: string }[] = [];
  options.forEach((option, i) => {
    const parsed = parseDeviceOption(option);
    if (typeof parsed === 'string') {
      bad.push({ path: String(i), message: parsed });
      return;
    }
    let st: Stats;
    try {
      st = lstatSync(parsed.path);
    } catch (e) {
      bad.push({ path: String(i), message: `${parsed.path}: ${(e as NodeJS.ErrnoException).code ?? 'cannot stat'} (no such device on this host)` });
      return;
    }
    const found: { from: string; st: Stats }[] = [];
    if (st.isDirectory()) collectDevices(parsed.path, found);
    else if (st.isCharacterDevice() || st.isBlockDevice()) found.push({ from: parsed.path, st });
    if (found.length === 0) {
      bad.push({ path: String(i), message: `${parsed.path} is not a character or block device${st.isDirectory() ? ' and holds none' : ''}` });
      return;
    }
    if (!parsed.containerPath.startsWith('/dev/')) {
      // Device nodes are created in the container's /dev (the one mount without nodev).
      bad.push({ path: String(i), message: `"${parsed.containerPath}": devices go under /dev in the container` });
      return;
    }
    for (const f of found) {
      const inside = posix.join(parsed.containerPath, posix.relative(parsed.path, f.from));
      const d = deviceFromStat(inside, f.st);
      devices.push(d);
      rules.push({ allow: true, type: d.type as 'c' | 'b', major: d.major, minor: d.minor, access: parsed.permissions });
    }
  });
  if (bad.length) throw new InvalidOptionsError('devices', bad);
  return { devices, rules };
}

function collectDevices(dir: string, out: { from: string; st: Stats }[], depth = 0): void {
  for (const name of readdirSync(dir)) {
    const path = posix.join(dir, name);
    const st = lstatSync(path);
    if (st.isDirectory() && depth < 8) collectDevices(path, out, depth + 1);
    else if (st.isCharacterDevice() || st.isBlockDevice()) out.push({ from: path, st });
  }
}

/** Splits Docker's `host[:container][:permissions]` syntax; returns an error message when malformed. */
function parseDeviceOption(option: DeviceOption): { path: string; containerPath: string; permissions: string } | string {
  let path: string;
  let containerPath: string | undefined;
  let permissions: string | undefined;
  if (typeof option === 'string') {
    const parts = option.split(':');
    if (parts.length > 3) return `"${option}": expected host[:container][:permissions]`;
    path = parts[0]!;
    if (parts.length === 2) {
      if (PERMISSIONS.test(parts[1]!)) permissions = parts[1];
      else containerPath = parts[1];
    } else if (parts.length === 3) {
      containerPath = parts[1];
      permissions = parts[2];
    }
  } else {
    ({ path, containerPath, permissions } = option);
  }
  if (!path.startsWith('/') || path.includes('\0')) return `"${path}": the host device must be an absolute path`;
  containerPath ??= path;
  if (!containerPath.startsWith('/') || containerPath.includes('\0')) return `"${containerPath}": the path in the container must be absolute`;
  permissions ??= 'rwm';
  if (!PERMISSIONS.test(permissions)) return `"${permissions}": permissions combine r, w and m`;
  return { path: posix.normalize(path), containerPath: posix.normalize(containerPath), permissions };
}

/** Docker's `--device-cgroup-rule`: `'c 10:229 rwm'`, `'b 8:* r'`, `'a *:* m'`. */
export function parseDeviceCgroupRules(rules: readonly string[]): DeviceRule[] {
  const bad: { path: string; message: string }[] = [];
  const out: DeviceRule[] = [];
  rules.forEach((rule, i) => {
    const m = /^([acb]) (\*|\d+):(\*|\d+) ([rwm]{1,3})$/.exec(rule.trim());
    if (!m) {
      bad.push({ path: String(i), message: `"${rule}": expected a rule like "c 10:229 rwm" (type a, c or b; major:minor or *; r, w, m)` });
      return;
    }
    out.push({
      allow: true,
      type: m[1] as 'a' | 'c' | 'b',
      major: m[2] === '*' ? null : Number(m[2]),
      minor: m[3] === '*' ? null : Number(m[3]),
      access: m[4]!,
    });
  });
  if (bad.length) throw new InvalidOptionsError('deviceCgroupRules', bad);
  return out;
}
