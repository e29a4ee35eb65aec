/**
 * The `berth` command's settings: flags, then environment variables, then config files, then defaults.
 *
 * Config files (JSON, with the key names of Docker's daemon.json): `/etc/berth/config.json` for the host, then
 * `$XDG_CONFIG_HOME/berth/config.json` (default `~/.config/berth/config.json`) for the user, whose keys win;
 * `BERTH_CONFIG=<file>` (or `--config <file>`) reads that one file instead.
 *
 * ```json
 * { "data-root": "/var/lib/berth", "registry-mirrors": ["https://mirror.example"],
 *   "insecure-registries": ["registry.lan:5000"], "log-driver": "json-file",
 *   "log-opts": { "max-size": "10m", "max-file": "3" }, "init": true, "detach-keys": "ctrl-p,ctrl-q" }
 * ```
 *
 * Environment: `BERTH_ROOT` (the state root), `BERTH_REGISTRY_MIRRORS` and `BERTH_INSECURE_REGISTRIES` (comma-
 * or space-separated lists), `BERTH_CONFIG`.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { BerthError } from '../errors.js';
import { defaultRoot } from '../container/state.js';
import { parseByteSize } from '../container/options.js';

const fileSchema = z.looseObject({
  'data-root': z.string().min(1).optional(),
  'registry-mirrors': z.array(z.string().url()).optional(),
  'insecure-registries': z.array(z.string().min(1)).optional(),
  'log-driver': z.enum(['json-file', 'none']).optional(),
  'detach-keys': z.string().optional(),
  'log-opts': z.looseObject({
    'max-size': z.string().regex(/^(-1|\d+(\.\d+)?\s*[bkmgt]?)$/i, 'must be a size like 10m').optional(),
    'max-file': z.string().regex(/^\d+$/, 'must be a number of files').optional(),
  }).optional(),
  init: z.boolean().optional(),
});

/** The settings a command runs with. */
export interface CliConfig {
  /** State root. */
  root: string;
  registryMirrors: string[];
  insecureRegistries: string[];
  /** Default logging of new containers (Docker's log-driver / log-opts). */
  log: { driver?: 'json-file' | 'none'; maxSize?: number; maxFile?: number };
  /** The key sequence that detaches from an attached terminal (docker's detachKeys), when configured. */
  detachKeys?: string;
  /** Whether new containers get an init unless `--init=false` (daemon.json's `init`). */
  init: boolean;
  /** The files that were read, in order. */
  files: string[];
}

/** A config file that cannot be used. */
export class ConfigError extends BerthError {
  constructor(message: string) {
    super('ERR_CONFIG', message);
  }
}

function readConfigFile(path: string): z.infer<typeof fileSchema> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ConfigError(`cannot read the config file ${path}: ${(e as Error).message}`);
  }
  const r = fileSchema.safeParse(raw);
  if (!r.success) {
    throw new ConfigError(`invalid config file ${path}: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  return r.data;
}

function list(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  return text.split(/[\s,]+/).filter(Boolean);
}

/** The config files read by default: the host's, then the user's. */
export function defaultConfigFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const xdg = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return ['/etc/berth/config.json', join(xdg, 'berth', 'config.json')];
}

/** Loads the settings for flags `--root`/`--config` (when given) and the environment `env`. */
export function loadConfig(flags: { root?: string | undefined; config?: string | undefined }, env: NodeJS.ProcessEnv = process.env): CliConfig {
  const explicit = flags.config ?? env.BERTH_CONFIG;
  const files = explicit !== undefined ? [explicit] : defaultConfigFiles(env).filter((f) => existsSync(f));
  const merged: z.infer<typeof fileSchema> = {};
  for (const f of files) {
    const c = readConfigFile(f);
    Object.assign(merged, c, { 'log-opts': { ...merged['log-opts'], ...c['log-opts'] } });
  }
  const maxSize = merged['log-opts']?.['max-size'];
  const maxFile = merged['log-opts']?.['max-file'];
  const mirrors = list(env.BERTH_REGISTRY_MIRRORS) ?? merged['registry-mirrors'] ?? [];
  for (const m of mirrors) {
    try {
      new URL(m);
    } catch {
      throw new ConfigError(`invalid registry mirror "${m}": give a URL like https://mirror.example or http://127.0.0.1:5000`);
    }
  }
  return {
    root: resolve(flags.root ?? env.BERTH_ROOT ?? merged['data-root'] ?? defaultRoot()),
    registryMirrors: mirrors,
    insecureRegistries: list(env.BERTH_INSECURE_REGISTRIES) ?? merged['insecure-registries'] ?? [],
    log: {
      ...(merged['log-driver'] ? { driver: merged['log-driver'] } : {}),
      ...(maxSize !== undefined ? { maxSize: maxSize === '-1' ? 0 : parseByteSize(maxSize) } : {}),
      ...(maxFile !== undefined ? { maxFile: Number(maxFile) } : {}),
    },
    init: merged.init ?? false,
    ...(merged['detach-keys'] !== undefined ? { detachKeys: merged['detach-keys'] } : {}),
    files,
  };
}
