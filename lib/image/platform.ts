/**
 * Platforms (`linux/amd64`, `linux/arm/v7`) with the normalization Docker applies, and picking the right manifest
 * from an index.
 * @module
 */
import { BerthError } from '../errors.js';

/** An OCI platform. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** A platform string that cannot be parsed. */
export class InvalidPlatformError extends BerthError {
  constructor(input: string) {
    super('ERR_INVALID_PLATFORM', `invalid platform "${input}" (expected os/arch[/variant], e.g. linux/amd64)`);
  }
}

const ARCH_ALIASES: Record<string, { architecture: string; variant?: string }> = {
  x86_64: { architecture: 'amd64' },
  x86: { architecture: '386' },
  i386: { architecture: '386' },
  ia32: { architecture: '386' },
  x64: { architecture: 'amd64' },
  aarch64: { architecture: 'arm64' },
  armhf: { architecture: 'arm', variant: 'v7' },
  armel: { architecture: 'arm', variant: 'v6' },
  ppc64: { architecture: 'ppc64le' },
};

/** Normalizes names as Docker does: x86_64 → amd64, aarch64 → arm64, arm64's default variant v8 dropped, ... */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  const arch = p.architecture.toLowerCase();
  const alias = ARCH_ALIASES[arch];
  const architecture = alias?.architecture ?? arch;
  let variant = p.variant?.toLowerCase() ?? alias?.variant;
  if (architecture === 'arm64' && (variant === 'v8' || variant === '8')) variant = undefined;
  if (architecture === 'arm' && variant === undefined) variant = 'v7';
  if (architecture === 'arm' && variant && /^\d+$/.test(variant)) variant = `v${variant}`;
  if (architecture === 'amd64' && variant === 'v1') variant = undefined;
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/** Parses `os/arch[/variant]`. */
export function parsePlatform(input: string): Platform {
  const parts = input.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-zA-Z0-9_.-]+$/.test(p))) {
    throw new InvalidPlatformError(input);
  }
  const [os, architecture, variant] = parts as [string, string, string?];
  return normalizePlatform(variant === undefined ? { os, architecture } : { os, architecture, variant });
}

/** `os/arch[/variant]`. */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** The platform of this host, in OCI terms. */
export function hostPlatform(): Platform {
  const variant = process.arch === 'arm' ? `v${(process.config.variables as { arm_version?: string }).arm_version ?? '7'}` : undefined;
  return normalizePlatform(variant ? { os: process.platform, architecture: process.arch, variant } : { os: process.platform, architecture: process.arch });
}

/**
 * Picks the entry for `wanted` from an index's platforms: the same os and architecture, the exact variant if
 * present, else one without a variant, else (for arm) the highest variant not above the wanted one. Returns the
 * index of the chosen entry or -1.
 */
export function matchPlatform(candidates: readonly (Platform | undefined)[], wanted: Platform): number {
  const want = normalizePlatform(wanted);
  let best = -1;
  let bestScore = -1;
  candidates.forEach((c, i) => {
    if (!c) return;
    const p = normalizePlatform(c);
    if (p.os !== want.os || p.architecture !== want.architecture) return;
    let score: number;
    if (p.variant === want.variant) score = 1000;
    else if (p.variant === undefined) score = 500;
    else if (want.variant && p.architecture === 'arm' && p.variant < want.variant) score = Number(p.variant.slice(1)) || 0;
    else return;
    if (score > bestScore) {
      best = i;
      bestScore = score;
    }
  });
  return best;
}
