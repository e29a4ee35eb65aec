// Manifest parsing and platform selection, without a registry.
import { describe, expect, it } from 'vitest';
import { ManifestError, parseImageConfig, parseManifest } from '../lib/image/manifest.js';
import { formatPlatform, matchPlatform, normalizePlatform, parsePlatform } from '../lib/image/platform.js';

const D = (c: string) => `sha256:${c.repeat(64)}`;
const enc = (o: unknown) => Buffer.from(JSON.stringify(o));

describe('parseManifest', () => {
  it('refuses schema 1 with an actionable message', () => {
    expect(() => parseManifest(enc({ schemaVersion: 1, name: 'x', fsLayers: [] }))).toThrow(/schema 1.*push it again/);
    expect(() => parseManifest(enc({ schemaVersion: 1 }), 'application/vnd.docker.distribution.manifest.v1+prettyjws')).toThrow(ManifestError);
  });

  it('tells an index from a manifest when mediaType is absent (allowed by OCI)', () => {
    const idx = parseManifest(enc({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D('a'), size: 1 }] }));
    expect(idx.kind).toBe('index');
    const man = parseManifest(enc({ schemaVersion: 2, config: { mediaType: 'x', digest: D('b'), size: 2 }, layers: [] }));
    expect(man.kind).toBe('manifest');
  });

  it('rejects digests that could become paths or URLs', () => {
    expect(() => parseManifest(enc({ schemaVersion: 2, config: { mediaType: 'x', digest: 'sha256:../../etc/passwd', size: 2 }, layers: [] }))).toThrow(/config\.digest/);
    expect(() => parseManifest(Buffer.from('not json'))).toThrow(/not JSON/);
  });

  it('validates image configs', () => {
    expect(parseImageConfig(enc({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [D('c')] } })).rootfs.diff_ids).toHaveLength(1);
    expect(() => parseImageConfig(enc({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: ['x'] } }))).toThrow(/diff_ids/);
  });
});

describe('platforms', () => {
  it('normalizes as Docker does', () => {
    expect(parsePlatform('linux/x86_64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/aarch64')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(parsePlatform('linux/arm')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(formatPlatform(normalizePlatform({ os: 'Linux', architecture: 'armhf' }))).toBe('linux/arm/v7');
    expect(() => parsePlatform('linux')).toThrow(/invalid platform/);
  });

  it('picks the exact variant, else one without, else a lower arm variant', () => {
    const list = [
      { os: 'linux', architecture: 'arm', variant: 'v6' },
      { os: 'linux', architecture: 'arm', variant: 'v7' },
      { os: 'linux', architecture: 'amd64' },
      undefined,
    ];
    expect(matchPlatform(list, { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(1);
    expect(matchPlatform(list, { os: 'linux', architecture: 'arm', variant: 'v8' })).toBe(1);
    expect(matchPlatform(list, { os: 'linux', architecture: 'amd64' })).toBe(2);
    expect(matchPlatform(list, { os: 'linux', architecture: 's390x' })).toBe(-1);
  });
});
