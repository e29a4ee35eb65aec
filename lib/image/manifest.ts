/**
 * Manifests, indexes and image configs, validated with zod as they arrive from a registry or the store: every
 * digest is checked before it can become a path or a URL (CVE-2024-3727), and schema 1 is refused clearly.
 * @module
 */
import { z } from 'zod';
import { BerthError } from '../errors.js';
import { INDEX_TYPES, MANIFEST_TYPES, MEDIA_TYPES, SCHEMA1_TYPES } from './media-types.js';
import { isValidDigest } from './reference.js';

/** A manifest or config that is malformed or of a kind berth does not read. */
export class ManifestError extends BerthError {
  constructor(message: string) {
    super('ERR_MANIFEST', message);
  }
}

const digest = z.string().refine(isValidDigest, 'must be a digest like sha256:<64 hex characters>');

const platformSchema = z.looseObject({
  architecture: z.string().min(1),
  os: z.string().min(1),
  variant: z.string().optional(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
});

/** An OCI content descriptor. */
export const descriptorSchema = z.looseObject({
  mediaType: z.string().min(1),
  digest,
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: platformSchema.optional(),
});
export type Descriptor = z.output<typeof descriptorSchema>;

/** An OCI image index or a Docker manifest list. */
export const indexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageIndex = z.output<typeof indexSchema>;

/** An OCI image manifest or a Docker schema 2 manifest. */
export const manifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageManifest = z.output<typeof manifestSchema>;

/** The image configuration (what `docker image inspect` shows as Config, RootFS, History). */
export const imageConfigSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  variant: z.string().optional(),
  created: z.string().optional(),
  author: z.string().optional(),
  config: z
    .looseObject({
      User: z.string().optional(),
      Env: z.array(z.string()).nullish(),
      Entrypoint: z.array(z.string()).nullish(),
      Cmd: z.array(z.string()).nullish(),
      WorkingDir: z.string().optional(),
      ExposedPorts: z.record(z.string(), z.unknown()).nullish(),
      Volumes: z.record(z.string(), z.unknown()).nullish(),
      StopSignal: z.string().optional(),
      Labels: z.record(z.string(), z.string()).nullish(),
    })
    .nullish(),
  rootfs: z.looseObject({ type: z.literal('layers'), diff_ids: z.array(digest) }),
  history: z
    .array(
      z.looseObject({
        created: z.string().optional(),
        created_by: z.string().optional(),
        comment: z.string().optional(),
        empty_layer: z.boolean().optional(),
      }),
    )
    .optional(),
});
export type ImageConfig = z.output<typeof imageConfigSchema>;

/** A parsed manifest document: a per-platform list, or one image. */
export type ParsedManifest =
  | { kind: 'index'; mediaType: string; index: ImageIndex }
  | { kind: 'manifest'; mediaType: string; manifest: ImageManifest };

function issuesText(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

/**
 * Parses manifest bytes. The media type comes from the document, else from the Content-Type header. Schema 1
 * and unknown types fail with a message saying what to do.
 */
export function parseManifest(bytes: Uint8Array, contentType?: string): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new ManifestError('the registry sent a manifest that is not JSON');
  }
  const declared = (doc as { mediaType?: unknown })?.mediaType;
  const header = contentType?.split(';')[0]?.trim();
  let mediaType = typeof declared === 'string' ? declared : header ?? '';
  const schemaVersion = (doc as { schemaVersion?: unknown })?.schemaVersion;
  if (SCHEMA1_TYPES.has(mediaType) || schemaVersion === 1) {
    throw new ManifestError(
      'this image uses the Docker schema 1 manifest format, which is deprecated and not supported; ' +
        'push it again with a current tool (docker push, skopeo copy) to convert it to schema 2 or OCI',
    );
  }
  // OCI allows mediaType to be absent: tell an index from a manifest by its fields.
  if (!INDEX_TYPES.has(mediaType) && !MANIFEST_TYPES.has(mediaType)) {
    if (Array.isArray((doc as { manifests?: unknown })?.manifests)) mediaType = MEDIA_TYPES.ociIndex;
    else if ((doc as { config?: unknown })?.config !== undefined) mediaType = MEDIA_TYPES.ociManifest;
    else throw new ManifestError(`unsupported manifest media type "${mediaType || 'none'}"`);
  }
  if (INDEX_TYPES.has(mediaType)) {
    const r = indexSchema.safeParse(doc);
    if (!r.success) throw new ManifestError(`invalid image index: ${issuesText(r.error)}`);
    return { kind: 'index', mediaType, index: r.data };
  }
  const r = manifestSchema.safeParse(doc);
  if (!r.success) throw new ManifestError(`invalid image manifest: ${issuesText(r.error)}`);
  return { kind: 'manifest', mediaType, manifest: r.data };
}

/** Parses and validates an image config blob. */
export function parseImageConfig(bytes: Uint8Array): ImageConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new ManifestError('the image config is not JSON');
  }
  const r = imageConfigSchema.safeParse(doc);
  if (!r.success) throw new ManifestError(`invalid image config: ${issuesText(r.error)}`);
  return r.data;
}
