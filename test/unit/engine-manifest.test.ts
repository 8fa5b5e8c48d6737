import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineRegistry } from '../../infra/engine-registry';
import { EngineManifest, expandEnv, resolveConfig, takesFiletype, validateManifest } from '../../core/engine-manifest';

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

describe('manifest fields from Cortex', () => {
  it('defaults version to 1.0 and keeps author, license and url', () => {
    const result = validateManifest({ ...minimal, version: 3.1, author: 'TheHive-Project', license: 'AGPL-V3', url: 'https://example.org/analyzers' }, 'x.yaml');
    if (!result.ok) throw new Error(result.error);
    expect(result.manifest).toMatchObject({ version: '3.1', author: 'TheHive-Project', license: 'AGPL-V3' });
    const plain = validateManifest(minimal, 'x.yaml');
    expect(plain.ok && plain.manifest.version).toBe('1.0');
  });

  it('refuses a maxTlp or maxPap outside Cortex\'s scale, and a file type that is not a MIME type', () => {
    const result = validateManifest({ ...minimal, maxTlp: 5, maxPap: -1, filetypes: ['apk'] }, 'x.yaml');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toContain('maxTlp');
    expect(result.error).toContain('maxPap');
    expect(result.error).toContain('filetypes.0: a MIME type such as application/pdf');
  });

  it('matches file types by exact type, family and exclusion, ignoring parameters and case', () => {
    expect(takesFiletype([], 'application/pdf')).toBe(true);
    expect(takesFiletype(['text/*'], 'text/plain; charset=utf-8')).toBe(true);
    expect(takesFiletype(['text/*'], 'application/pdf')).toBe(false);
    expect(takesFiletype(['!application/pdf'], 'Application/PDF')).toBe(false);
    expect(takesFiletype(['!application/pdf'], 'text/plain')).toBe(true);
    expect(takesFiletype(['application/*', '!application/zip'], 'application/zip')).toBe(false);
  });

  it('reads stdout as text unless the manifest says json or base64', () => {
    expect(EngineManifest.parse({ ...minimal, protocol: 'stdout' }).stdout).toBe('text');
    expect(EngineManifest.parse({ ...minimal, protocol: 'stdout', stdout: 'base64' }).stdout).toBe('base64');
  });
});

describe('declared config items (a Cortex flavor\'s configurationItems)', () => {
  const manifest = EngineManifest.parse({
    ...minimal,
    config: { key: '${VT_KEY}', polling_interval: '${VT_POLL}', proxies: '${VT_PROXIES}', verify: '${VT_VERIFY}', service: 'get' },
    configItems: [
      { name: 'key', type: 'string', required: true },
      { name: 'polling_interval', type: 'number', default: 60 },
      { name: 'proxies', type: 'string', multi: true },
      { name: 'verify', type: 'boolean', default: true },
    ],
  });

  it('types, splits and defaults the values taken from the environment', () => {
    expect(resolveConfig(manifest, { VT_KEY: 'k-123', VT_POLL: '30', VT_PROXIES: 'http://p1:3128, http://p2:3128', VT_VERIFY: 'no' })).toEqual({
      ok: true, config: { key: 'k-123', polling_interval: 30, proxies: ['http://p1:3128', 'http://p2:3128'], verify: false, service: 'get' },
    });
    expect(resolveConfig(manifest, { VT_KEY: 'k-123' })).toEqual({ ok: true, config: { key: 'k-123', polling_interval: 60, verify: true, service: 'get' } });
  });

  it('refuses a required item that is missing, naming the variable to set', () => {
    expect(resolveConfig(manifest, {})).toEqual({
      ok: false, error: 'engine demo needs config key, which is empty: set VT_KEY in the engine worker\'s environment',
    });
  });

  it('refuses a value of the wrong type, naming the item', () => {
    const result = resolveConfig(manifest, { VT_KEY: 'k', VT_POLL: 'soon' });
    expect(result).toEqual({ ok: false, error: 'engine demo: config polling_interval must be a number, got "soon"' });
  });
});

