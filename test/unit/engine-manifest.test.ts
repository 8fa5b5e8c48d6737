import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineRegistry } from '../../infra/engine-registry';
import { expandEnv, validateManifest } from '../../core/engine-manifest';

const minimal = { name: 'demo', kind: 'analyzer', image: 'docket/demo:1.0', accepts: ['file'], protocol: 'file' };

describe('engine manifests', () => {
  it('fills in the hardening defaults and converts human units', () => {
    const result = validateManifest({ ...minimal, timeout: '90s', sizelimit: '10m', limits: { memory: '128m' } }, 'demo.yaml');
    if (!result.ok) throw new Error(result.error);
    expect(result.manifest).toMatchObject({
      timeout: 90_000, sizelimit: 10 * 1024 ** 2, network: 'none', retries: 2, concurrency: 2,
      limits: { memory: 128 * 1024 ** 2, cpus: 1, pids: 128, output: 16 * 1024 ** 2 },
      mountpoint: '/data', inputfilename: 'input', cache: 600_000,
    });
  });

  it('names the file and the field that is wrong', () => {
    const result = validateManifest({ ...minimal, limits: { memory: 'lots' }, protocol: 'carrier-pigeon' }, 'engines/demo/engine.yaml');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toContain('engines/demo/engine.yaml');
    expect(result.error).toContain('limits.memory');
    expect(result.error).toContain('protocol');
  });

  it('refuses unknown fields, so a typo does not silently do nothing', () => {
    const result = validateManifest({ ...minimal, timout: '10s' }, 'x.yaml');
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toContain('timout');
  });

  it('refuses host paths as volumes', () => {
    const result = validateManifest({ ...minimal, volumes: [{ name: '/etc', target: '/x' }] }, 'x.yaml');
    expect(result.ok).toBe(false);
  });

  it('expands ${NAME} from the environment in nested config', () => {
    expect(expandEnv({ key: '${API_KEY}', list: ['a-${ZONE}'], n: 3 }, { API_KEY: 's3cret', ZONE: 'eu' })).toEqual({
      key: 's3cret', list: ['a-eu'], n: 3,
    });
  });

  it('loads the good manifests of a folder and reports the bad ones by file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'docket-engines-'));
    const write = (name: string, text: string) => {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, 'engine.yaml'), text);
    };
    write('good', 'name: good\nkind: analyzer\nimage: docket/good:1.0\naccepts: [file]\nprotocol: cortex\n');
    write('bad', 'name: bad\nkind: analyser\nimage: docket/bad:1.0\naccepts: [file]\nprotocol: cortex\n');
    write('broken', 'name: [unclosed\n');
    const registry = await EngineRegistry.load(dir);
    expect(registry.names()).toEqual(['good']);
    expect(registry.errors).toHaveLength(2);
    expect(registry.errors.find((e) => e.includes('bad/engine.yaml'))).toContain('kind');
    expect(registry.errors.find((e) => e.includes('broken/engine.yaml'))).toContain('not valid YAML');
  });

  it('loads every sample engine shipped with Docket', async () => {
    const registry = await EngineRegistry.load(join(__dirname, '../../engines'));
    expect(registry.errors).toEqual([]);
    expect(registry.names()).toContain('fileinfo');
  });
});
