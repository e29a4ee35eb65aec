/**
 * Picks the cgroup driver for this host: v2 when the cgroup mount point is itself a cgroup2 filesystem (unified
 * hosts), v1 otherwise (legacy and hybrid hosts, where the cgroup2 at `<mount>/unified` carries no controllers).
 * @module
 */

import * as fs from 'node:fs';
import { UnsupportedError } from '../../errors.js';
import { describeErrno } from './io.js';
import type { CgroupDriver } from './driver.js';
import { CgroupV1Driver, DEFAULT_V1_ROOT, parseV1Mountinfo } from './v1.js';
import { CgroupV2Driver } from './v2.js';

export type { Cgroup, CgroupDriver, CgroupStats, LinuxResources } from './driver.js';
export { CgroupV1Driver, parseV1Mountinfo } from './v1.js';
export type { CgroupV1Options, V1Hierarchy } from './v1.js';
export { CgroupV2Driver } from './v2.js';
export type { CgroupV2Options } from './v2.js';
export { sharesToWeight } from './resources.js';

/** statfs f_type of a cgroup2 filesystem (CGROUP2_SUPER_MAGIC in linux/magic.h). */
const CGROUP2_SUPER_MAGIC = 0x63677270;

/** Options of {@link detectCgroupDriver}. */
export interface DetectCgroupOptions {
  /** Force a driver instead of detecting one (tests use 2 on a hybrid host's `/sys/fs/cgroup/unified`). */
  version?: 1 | 2;
  /**
   * The cgroup mount point: the cgroup2 mount for v2, the directory holding the v1 hierarchies for v1.
   * Default `/sys/fs/cgroup`.
   */
  mountPoint?: string;
  /** The shared parent cgroup of all containers (default `berth`). */
  parent?: string;
}

/**
 * Which cgroup layout `mountPoint` has: 2 if it is a cgroup2 mount, 1 if v1 hierarchies are mounted below it.
 * Throws UnsupportedError when it is neither.
 */
export function detectCgroupVersion(mountPoint: string = DEFAULT_V1_ROOT): 1 | 2 {
  let type: number;
  try {
    type = fs.statfsSync(mountPoint).type;
  } catch (err) {
    throw new UnsupportedError(`cgroup: cannot inspect ${mountPoint}: ${describeErrno(err)}`, { cause: err });
  }
  if (type === CGROUP2_SUPER_MAGIC) return 2;
  if (parseV1Mountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'), mountPoint).length > 0) return 1;
  throw new UnsupportedError(`cgroup: ${mountPoint} is neither a cgroup2 mount nor holds cgroup v1 hierarchies`);
}

/**
 * Returns the cgroup driver for this host (or the forced `version`). Cheap: it reads the mount table once and
 * creates nothing until `create()`.
 */
export function detectCgroupDriver(options: DetectCgroupOptions = {}): CgroupDriver {
  const mountPoint = options.mountPoint ?? DEFAULT_V1_ROOT;
  const version = options.version ?? detectCgroupVersion(mountPoint);
  const settings = { mountPoint, parent: options.parent };
  return version === 2 ? new CgroupV2Driver(settings) : new CgroupV1Driver(settings);
}
