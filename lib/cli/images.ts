/**
 * Image commands: pull, images, rmi, tag (and the `image` group: ls, pull, rm, tag, inspect).
 * @module
 */
import { Image, ImageNotFoundError } from '../image/image.js';
import { parseReference } from '../image/reference.js';
import type { Command } from './command.js';
import { inspectCommand, pullWithProgress } from './common.js';
import { formatRows } from './format.js';
import { imageRow, IMAGES_TABLE, inspectImage } from './views.js';

const pull: Command = {
  name: 'pull',
  usage: '[OPTIONS] NAME[:TAG|@DIGEST]',
  summary: 'Download an image from a registry',
  flags: [
    { long: 'platform', type: 'string', help: 'Set platform if server is multi-platform capable' },
    { long: 'quiet', short: 'q', type: 'bool', help: 'Suppress verbose output' },
  ],
  args: { min: 1, max: 1 },
  async run(ctx, f, args) {
    const image = await pullWithProgress(ctx, args[0]!, ctx.stdout, f.string('platform'), f.bool('quiet'));
    ctx.stdout.write(`${image.reference}\n`);
    return 0;
  },
};

const images: Command = {
  name: 'images',
  usage: '[OPTIONS] [REPOSITORY[:TAG]]',
  summary: 'List images',
  flags: [
    { long: 'quiet', short: 'q', type: 'bool', help: 'Only show image IDs' },
    { long: 'format', type: 'string', help: 'Format output using a custom template (table, table TEMPLATE, json, TEMPLATE)' },
    { long: 'no-trunc', type: 'bool', help: 'Don\'t truncate output' },
    { long: 'digests', type: 'bool', help: 'Show digests' },
    { long: 'all', short: 'a', type: 'bool', help: 'Show all images (berth keeps no intermediate images)' },
  ],
  args: { max: 1 },
  async run(ctx, f, args) {
    let list = await Image.list({ root: ctx.config().root });
    if (args[0]) {
      const wanted = args[0];
      const ref = parseReference(wanted);
      const hasTag = /:[^/]+$/.test(wanted);
      list = list.filter((i) => {
        const r = parseReference(i.reference);
        return r.repository === ref.repository && (!hasTag || r.tag === ref.tag);
      });
    }
    const full = f.bool('no-trunc');
    if (f.bool('quiet')) {
      const ids = [...new Set(list.map((i) => (full ? i.id : i.id.replace(/^sha256:/, '').slice(0, 12))))];
      for (const id of ids) ctx.stdout.write(`${id}\n`);
      return 0;
    }
    const table = f.bool('digests') ? { ...IMAGES_TABLE, table: '{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}' } : IMAGES_TABLE;
    ctx.stdout.write(formatRows(list.map((i) => imageRow(i, full)), f.string('format'), 'berth images', table));
    return 0;
  },
};

const rmi: Command = {
  name: 'rmi',
  usage: '[OPTIONS] IMAGE [IMAGE...]',
  summary: 'Remove one or more images',
  flags: [{ long: 'force', short: 'f', type: 'bool', help: 'Force removal of the image' }],
  args: { min: 1 },
  async run(ctx, f, args) {
    const root = ctx.config().root;
    let status = 0;
    for (const a of args) {
      try {
        const image = await Image.get(a, { root });
        const others = image.inspect().repoTags.filter((t) => t !== image.reference);
        await image.remove({ force: f.bool('force') });
        ctx.stdout.write(`Untagged: ${parseReference(image.reference).familiar}\n`);
        if (others.length === 0) {
          // The last reference: the image's blobs and unpacked layers go now, as docker deletes them.
          await Image.gc({ root });
          ctx.stdout.write(`Deleted: ${image.manifest.config.digest}\n`);
        }
      } catch (e) {
        ctx.stderr.write(`Error: ${e instanceof ImageNotFoundError ? `No such image: ${a}` : (e as Error).message}\n`);
        status = 1;
      }
    }
    return status;
  },
};

const tag: Command = {
  name: 'tag',
  usage: 'SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]',
  summary: 'Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE',
  args: { min: 2, max: 2 },
  async run(ctx, _f, args) {
    await (await Image.get(args[0]!, { root: ctx.config().root })).tag(args[1]!);
    return 0;
  },
};

const imageInspect = inspectCommand('image', 'image', async (ctx, a) => inspectImage((await Image.get(a, { root: ctx.config().root })).inspect()));

/** The image commands at the top level. */
export const imageCommands: Command[] = [pull, images, rmi, tag];

/** `image` management group. */
export const imageGroup: Command = {
  name: 'image',
  usage: 'COMMAND',
  summary: 'Manage images',
  subcommands: [
    { ...images, name: 'ls', aliases: ['list'], usage: '[OPTIONS] [REPOSITORY[:TAG]]' },
    pull,
    { ...rmi, name: 'rm', aliases: ['remove'] },
    tag,
    imageInspect,
  ],
};
