/**
 * Checks OCI `linux.resources` values and converts them to what the kernel files take. Both drivers validate here
 * first, so a bad value fails before any directory is made, with a message naming the OCI field rather than an
 * EINVAL from some interface file.
 * @module
 */

import { CgroupError } from '../../errors.js';
import type { LinuxResources } from './driver.js';

/** The v1 share range the kernel accepts (and clamps to); also the domain of the v2 weight conversion. */
const MIN_SHARES = 2;
const MAX_SHARES = 262144;

/** Default CFS period, microseconds, used when a quota is given without a period (the kernel's default too). */
export const DEFAULT_CPU_PERIOD = 100000;

/** The controllers a request needs, in driver-neutral names (v1 hierarchies and v2 controllers share them). */
export type ResourceController = 'memory' | 'cpu' | 'cpuset' | 'pids';

function fail(field: string, value: unknown, why: string): never {
  throw new CgroupError(`cgroup: invalid resources.${field} ${JSON.stringify(value)}: ${why}`);
}

/** `value` must be a safe integer ≥ `min`, or -1 (unlimited) when `unlimited` is allowed. */
function checkInteger(field: string, value: number | undefined, min: number, unlimited: boolean): void {
  if (value === undefined) return;
  if (!Number.isSafeInteger(value)) fail(field, value, 'not an integer');
  if (unlimited && value === -1) return;
  if (value < min) fail(field, value, `must be ≥ ${min}${unlimited ? ' or -1 (unlimited)' : ''}`);
}

/** Whether a cpuset list was given. An empty string is the OCI/Go "unset" value, not a request for no CPUs. */
export function hasCpuset(list: string | undefined): list is string {
  return list !== undefined && list !== '';
}

/**
 * Throws CgroupError for values no kernel accepts: negative sizes, shares out of range, a swap total below the
 * memory limit, or a swap total without a memory limit (the swap share is total minus limit, so it needs both).
 */
export function validateResources(resources: LinuxResources): void {
  const { memory, cpu, pids } = resources;
  checkInteger('memory.limit', memory?.limit, 0, true);
  checkInteger('memory.swap', memory?.swap, 0, true);
  checkInteger('memory.reservation', memory?.reservation, 0, true);
  if (memory?.swap !== undefined && memory.swap !== -1) {
    if (memory.limit === undefined || memory.limit === -1) {
      fail('memory.swap', memory.swap, 'a memory+swap total needs a memory limit too');
    }
    if (memory.swap < memory.limit) {
      fail('memory.swap', memory.swap, `the memory+swap total must be ≥ the memory limit (${memory.limit})`);
    }
  }
  checkInteger('cpu.shares', cpu?.shares, MIN_SHARES, false);
  if (cpu?.shares !== undefined && cpu.shares > MAX_SHARES) fail('cpu.shares', cpu.shares, `must be ≤ ${MAX_SHARES}`);
  checkInteger('cpu.quota', cpu?.quota, 1000, true);
  checkInteger('cpu.period', cpu?.period, 1000, false);
  checkInteger('pids.limit', pids?.limit, -1, false);
  for (const field of ['cpus', 'mems'] as const) {
    const list = cpu?.[field];
    if (hasCpuset(list) && !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(list)) {
      fail(`cpu.${field}`, list, 'not a cpuset list like "0-2,4"');
    }
  }
}

/** Controllers the request needs: a resource counts as requested when any of its fields is given. */
export function requiredControllers(resources: LinuxResources): Map<ResourceController, string> {
  const needs = new Map<ResourceController, string>();
  const { memory, cpu, pids } = resources;
  const memoryField = (['limit', 'swap', 'reservation'] as const).find((f) => memory?.[f] !== undefined);
  if (memoryField !== undefined) needs.set('memory', `memory.${memoryField}`);
  const cpuField = (['shares', 'quota', 'period'] as const).find((f) => cpu?.[f] !== undefined);
  if (cpuField !== undefined) needs.set('cpu', `cpu.${cpuField}`);
  if (hasCpuset(cpu?.cpus)) needs.set('cpuset', 'cpu.cpus');
  else if (hasCpuset(cpu?.mems)) needs.set('cpuset', 'cpu.mems');
  if (pids?.limit !== undefined) needs.set('pids', 'pids.limit');
  return needs;
}

/** v1 shares → v2 cpu.weight with the standard linear map of [2, 262144] onto [1, 10000]. */
export function sharesToWeight(shares: number): number {
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/** A size for v2 files (memory.max, memory.low): -1 → "max". */
export function v2Size(bytes: number): string {
  return bytes === -1 ? 'max' : String(bytes);
}

/** v2 memory.swap.max from the OCI memory+swap total: swap alone is total minus limit; -1 → "max". */
export function v2SwapMax(swapTotal: number, limit: number | undefined): string {
  return swapTotal === -1 ? 'max' : String(swapTotal - (limit ?? 0));
}

/** v2 cpu.max: "quota period", with "max" when the quota is unset or -1. */
export function v2CpuMax(quota: number | undefined, period: number | undefined): string {
  const q = quota === undefined || quota === -1 ? 'max' : String(quota);
  return `${q} ${period ?? DEFAULT_CPU_PERIOD}`;
}

/** pids.max (same syntax on v1 and v2): 0 or -1 mean unlimited → "max". */
export function pidsMax(limit: number): string {
  return limit <= 0 ? 'max' : String(limit);
}
