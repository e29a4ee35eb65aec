/**
 * User namespace id maps: their shape (the OCI runtime spec's `{ containerID, hostID, size }`), the rules a map
 * must follow (checked with zod before anything reaches the kernel), and the text the kernel takes in
 * /proc/<pid>/uid_map and gid_map.
 * @module
 */
import { z } from 'zod';

/** One range of a uid or gid map: `size` ids from `containerID` inside the container are `hostID`... on the host. */
export interface IdMapping {
  /** First id inside the container. */
  containerID: number;
  /** First id on the host that `containerID` stands for. */
  hostID: number;
  /** Number of ids in the range (≥ 1). */
  size: number;
}

/** A container's uid and gid maps. */
export interface IdMaps {
  uidMap: IdMapping[];
  gidMap: IdMapping[];
}

/** The largest id a map may contain: (uint32)-1 is the kernel's "no id". */
export const MAX_ID = 0xfffffffe;
/** The kernel takes at most this many ranges per map. */
export const MAX_RANGES = 340;

const id = z
  .number({ error: 'must be a number' })
  .int('must be an integer')
  .min(0, 'must not be negative')
  .max(MAX_ID, `must be at most ${MAX_ID} (ids are 32-bit and 4294967295 is reserved)`);

/** One range, checked on its own: ids and size are 32-bit and neither end runs past the last valid id. */
export const idMappingSchema = z
  .strictObject({
    containerID: id,
    hostID: id,
    size: z.number({ error: 'must be a number' }).int('must be an integer').min(1, 'must be at least 1'),
  })
  .superRefine((m, ctx) => {
    if (m.containerID + m.size - 1 > MAX_ID) {
      ctx.addIssue({ code: 'custom', path: ['size'], message: `containerID + size runs past the last id ${MAX_ID}` });
    }
    if (m.hostID + m.size - 1 > MAX_ID) {
      ctx.addIssue({ code: 'custom', path: ['size'], message: `hostID + size runs past the last id ${MAX_ID}` });
    }
  });

/**
 * A whole map: 1..340 ranges, container ranges disjoint, host ranges disjoint (the kernel's rules), container id 0
 * mapped (the init becomes the namespace's root), and host id 0 never mapped (that would make the container's
 * files and capabilities reach the host's root).
 */
export const idMapSchema = z
  .array(idMappingSchema)
  .min(1, 'must have at least one range')
  .max(MAX_RANGES, `the kernel accepts at most ${MAX_RANGES} ranges`)
  .superRefine((map, ctx) => {
    const overlap = (key: 'containerID' | 'hostID') => {
      const sorted = map.map((m, i) => ({ ...m, i })).sort((a, b) => a[key] - b[key]);
      for (let k = 1; k < sorted.length; k++) {
        const prev = sorted[k - 1]!;
        const cur = sorted[k]!;
        if (prev[key] + prev.size > cur[key]) {
          const side = key === 'containerID' ? 'container' : 'host';
          ctx.addIssue({
            code: 'custom',
            path: [cur.i],
            message: `${side} ids ${cur[key]}..${cur[key] + cur.size - 1} overlap range ${prev.i} (${prev[key]}..${prev[key] + prev.size - 1})`,
          });
        }
      }
    };
    overlap('containerID');
    overlap('hostID');
    if (map.length && !map.some((m) => m.containerID === 0)) {
      ctx.addIssue({ code: 'custom', path: [], message: 'must map container id 0 (the container\'s root)' });
    }
    map.forEach((m, i) => {
      if (m.hostID === 0) {
        ctx.addIssue({
          code: 'custom',
          path: [i],
          message: 'must not map host id 0: root in the container would be root on the host (leave userns out instead)',
        });
      }
    });
  });

/** `userns` as users write it. */
export type UsernsOption = 'auto' | IdMaps;

const mapsSchema = z.strictObject({ uidMap: idMapSchema, gidMap: idMapSchema });

/**
 * `userns` in the container options: explicit maps, or `'auto'` for a private range from the pool. Dispatched on
 * the value's type by hand (not a zod union) so that a bad map reports its own field instead of "Invalid input".
 */
export const usernsOptionSchema = z.custom<UsernsOption>().superRefine((value, ctx) => {
  if (typeof value !== 'object' || value === null) {
    if (value !== 'auto') ctx.addIssue({ code: 'custom', message: 'must be \'auto\' or { uidMap, gidMap }' });
    return;
  }
  const r = mapsSchema.safeParse(value);
  if (!r.success) for (const i of r.error.issues) ctx.addIssue({ code: 'custom', path: i.path, message: i.message });
});

/** The text the kernel takes in uid_map / gid_map: one `inside outside count` line per range. */
export function idMapText(map: readonly IdMapping[]): string {
  return map.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');
}

/** The host id a container id stands for, or undefined when the map does not cover it. */
export function toHostId(map: readonly IdMapping[], containerId: number): number | undefined {
  for (const m of map) {
    if (containerId >= m.containerID && containerId < m.containerID + m.size) return m.hostID + (containerId - m.containerID);
  }
  return undefined;
}

/** Whether the map covers this container id. */
export function isMapped(map: readonly IdMapping[], containerId: number): boolean {
  return toHostId(map, containerId) !== undefined;
}

/** The host ranges a map uses, as `[start, end)` pairs. */
export function hostRanges(map: readonly IdMapping[]): [number, number][] {
  return map.map((m) => [m.hostID, m.hostID + m.size]);
}
