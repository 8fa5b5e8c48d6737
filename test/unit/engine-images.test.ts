import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { CONTEXT_LABEL, contextKey, ensureEngineImage, fromImages, localImages } from '../../scripts/lib/engine-images';
import { run } from '../../scripts/lib/images';

const BASE = 'docket/base:bookworm';

describe('which engine images npm start rebuilds', () => {
  const docker = new Docker();
  const image = `docket-test/context-label:${randomBytes(4).toString('hex')}`;
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'docket-engine-context-'));
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${BASE}\nCOPY hello.txt /hello.txt\n`);
    writeFileSync(join(dir, 'hello.txt'), 'first\n');
  });

  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await docker.getImage(image).remove({ force: true }).catch(() => undefined);
  });

  it('builds an image that lacks the label once, then keeps it without building while its folder is unchanged', async () => {
    await run('docker', ['build', '--quiet', '--tag', image, dir]);
    expect(await ensureEngineImage(image, dir, await localImages(docker))).toBe('built');
    const labelled = (await localImages(docker)).get(image);
    expect(labelled?.context).toBe(contextKey(dir, await localImages(docker)));
    expect(await ensureEngineImage(image, dir, await localImages(docker))).toBe('present');
    expect((await localImages(docker)).get(image)?.id).toBe(labelled?.id);
  });

  it('rebuilds when a file of its folder changes, and the new image holds the change', async () => {
    const before = (await localImages(docker)).get(image);
    writeFileSync(join(dir, 'hello.txt'), 'second\n');
    expect(await ensureEngineImage(image, dir, await localImages(docker))).toBe('built');
    const after = (await localImages(docker)).get(image);
    expect(after?.id).not.toBe(before?.id);
    expect(after?.context).not.toBe(before?.context);
    const inspect = await docker.getImage(image).inspect();
    expect(inspect.Config.Labels?.[CONTEXT_LABEL]).toBe(after?.context);
    const output = await run('docker', ['run', '--rm', '--network', 'none', image, 'cat', '/hello.txt']);
    expect(output).toBe('second\n');
  });

  it('rebuilds with --force even when the folder is unchanged', async () => {
    expect(await ensureEngineImage(image, dir, await localImages(docker), { force: true })).toBe('built');
  });

  it('counts a rebuilt base it starts FROM as a change', async () => {
    const images = await localImages(docker);
    const rebuiltBase = new Map(images);
    rebuiltBase.set(BASE, { id: 'sha256:another' });
    expect(contextKey(dir, rebuiltBase)).not.toBe(contextKey(dir, images));
  });

  it('reads the images a Dockerfile starts FROM, not its own stages', () => {
    const dockerfile = 'ARG X=1\nFROM --platform=linux/amd64 docket/base:bookworm AS build\nRUN true\nfrom build\nFROM docket/cloudbot:1.0 as bot\n';
    expect(fromImages(dockerfile)).toEqual(['docket/base:bookworm', 'docket/cloudbot:1.0']);
  });
});
