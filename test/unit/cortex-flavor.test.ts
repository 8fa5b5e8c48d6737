import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { CortexFlavor, flavorToManifest } from '../../core/cortex-flavor';
import { resolveConfig } from '../../core/engine-manifest';
import { EngineRegistry } from '../../infra/engine-registry';

const ROOT = resolve(__dirname, '../..');
const exec = promisify(execFile);

/** Flavor files in the shape Cortex-Analyzers publishes them (analyzers/<Name>/<Flavor>.json, responders/...). */
const virusTotal = {
  name: 'VirusTotal_GetReport',
  version: '3.1',
  author: 'CERT-BDF',
  url: 'https://github.com/TheHive-Project/Cortex-Analyzers',
  license: 'AGPL-V3',
  description: 'Get the latest VirusTotal report for a file, hash, domain or an IP address.',
  dataTypeList: ['file', 'hash', 'domain', 'fqdn', 'ip', 'url'],
  command: 'VirusTotal/virustotal.py',
  baseConfig: 'VirusTotal',
  config: { service: 'get', check_tlp: true, max_tlp: 2, check_pap: true, max_pap: 2 },
  configurationItems: [
    { name: 'key', description: 'API key for VirusTotal', type: 'string', multi: false, required: true },
    { name: 'polling_interval', description: 'Seconds between two attempts', type: 'number', multi: false, required: false, defaultValue: 60 },
    { name: 'proxies', description: 'Proxies to go through', type: 'string', multi: true, required: false },
  ],
  registration_required: true,
  subscription_required: false,
  service_homepage: 'https://www.virustotal.com',
  service_logo: { path: 'assets/virustotal-logo.png', caption: 'logo' },
  screenshots: [],
};
const fileInfo = {
  name: 'FileInfo',
  version: '8.0',
  author: 'TheHive-Project',
  license: 'AGPL-V3',
  description: 'Parse files in several formats such as OLE and OpenXML to detect VBA macros, extract their source code',
  dataTypeList: ['file'],
  command: 'FileInfo/fileinfo_analyzer.py',
  baseConfig: 'FileInfo',
  dockerImage: 'cortexneurons/fileinfo:8',
  jobTimeout: 30,
  jobCache: 10,
  configurationItems: [{ name: 'manalyze_enable', description: 'Run Manalyze', type: 'boolean', multi: false, required: true, defaultValue: false }],
};
const mailer = {
  name: 'Mailer',
  version: '1.0',
  author: 'CERT-BDF',
  license: 'AGPL-V3',
  description: 'Send an email with information from a TheHive case or alert',
  dataTypeList: ['thehive:case', 'thehive:alert', 'thehive:case_artifact'],
  command: 'Mailer/mailer.py',
  baseConfig: 'Mailer',
  configurationItems: [
    { name: 'from', description: 'email address from which the mail is sent', type: 'string', multi: false, required: true },
    { name: 'smtp_host', description: 'SMTP server', type: 'string', multi: false, required: true, defaultValue: 'localhost' },
    { name: 'smtp_port', description: 'SMTP port', type: 'number', multi: false, required: true, defaultValue: 25 },
  ],
};

describe('Cortex-Analyzers flavors as engine manifests', () => {
  it('keeps name, version, author, license, url and data types, and turns Cortex\'s TLP/PAP config into maxTlp / maxPap', () => {
    const { manifest } = flavorToManifest(CortexFlavor.parse(virusTotal));
    expect(manifest).toMatchObject({
      name: 'virustotal_getreport', kind: 'analyzer', version: '3.1', author: 'CERT-BDF', license: 'AGPL-V3',
      url: 'https://github.com/TheHive-Project/Cortex-Analyzers', accepts: ['file', 'hash', 'domain', 'fqdn', 'ip', 'url'],
      image: 'cortexneurons/virustotal_getreport:3.1', protocol: 'cortex', maxTlp: 2, maxPap: 2,
      config: { service: 'get', key: '${VIRUSTOTAL_KEY}', polling_interval: '${VIRUSTOTAL_POLLING_INTERVAL}', proxies: '${VIRUSTOTAL_PROXIES}' },
      configItems: [
        { name: 'key', type: 'string', required: true, description: 'API key for VirusTotal' },
        { name: 'polling_interval', type: 'number', default: 60, description: 'Seconds between two attempts' },
        { name: 'proxies', type: 'string', multi: true, description: 'Proxies to go through' },
      ],
    });
  });

  it('gives egress to an analyzer that names an outside service, and none to a local one, each with a note saying why', () => {
    const remote = flavorToManifest(CortexFlavor.parse(virusTotal));
    expect(remote.manifest.network).toBe('egress');
    expect(remote.notes).toContain('set VIRUSTOTAL_KEY in the engine workers\' environment: a job without them fails, naming them');
    expect(remote.notes.join('\n')).toContain('network: egress, because it needs credentials or an address of an outside service');
    const local = flavorToManifest(CortexFlavor.parse(fileInfo));
    expect(local.manifest).toMatchObject({ network: 'none', image: 'cortexneurons/fileinfo:8', timeout: '30m', cache: '10m' });
    expect(flavorToManifest(CortexFlavor.parse(virusTotal), { network: 'none' }).manifest.network).toBe('none');
  });

  it('reads a flavor of TheHive objects, or one under responders/, as a responder', () => {
    expect(flavorToManifest(CortexFlavor.parse(mailer)).manifest).toMatchObject({ kind: 'responder', network: 'egress', accepts: mailer.dataTypeList });
    expect(flavorToManifest(CortexFlavor.parse({ ...virusTotal, dataTypeList: ['domain'] }), { path: 'Cortex-Analyzers/responders/Block/Block.json' }).manifest.kind).toBe('responder');
  });
});

describe('npm run engines -- import', () => {
  const flavors = mkdtempSync(join(tmpdir(), 'docket-flavors-'));
  for (const [folder, flavor] of [['analyzers/VirusTotal', virusTotal], ['analyzers/FileInfo', fileInfo], ['responders/Mailer', mailer]] as const) {
    mkdirSync(join(flavors, folder), { recursive: true });
    writeFileSync(join(flavors, folder, `${flavor.name}.json`), JSON.stringify(flavor, null, 2));
  }
  const cli = (...args: string[]) => exec(join(ROOT, 'node_modules/.bin/tsx'), [join(ROOT, 'scripts/engines.ts'), ...args], { cwd: ROOT });

  it('writes manifests Docket loads, whose required config fails a job naming the variable to set', async () => {
    const out = mkdtempSync(join(tmpdir(), 'docket-imported-'));
    const { stdout } = await cli('import', '--out', out, ...['analyzers/VirusTotal/VirusTotal_GetReport.json', 'analyzers/FileInfo/FileInfo.json', 'responders/Mailer/Mailer.json'].map((file) => join(flavors, file)));
    expect(stdout).toContain('virustotal_getreport/engine.yaml: analyzer virustotal_getreport, network egress');
    const registry = await EngineRegistry.load(out);
    expect(registry.errors).toEqual([]);
    expect(registry.names()).toEqual(['fileinfo', 'mailer', 'virustotal_getreport']);
    expect(readFileSync(join(out, 'virustotal_getreport/engine.yaml'), 'utf8')).toMatch(/^# Imported from the Cortex flavor VirusTotal_GetReport.json/);

    const vt = registry.get('virustotal_getreport')!;
    expect(resolveConfig(vt, {})).toEqual({ ok: false, error: 'engine virustotal_getreport needs config key, which is empty: set VIRUSTOTAL_KEY in the engine worker\'s environment' });
    expect(resolveConfig(vt, { VIRUSTOTAL_KEY: 'k' })).toEqual({ ok: true, config: { service: 'get', key: 'k', polling_interval: 60 } });
    const mailerManifest = registry.get('mailer')!;
    expect(mailerManifest).toMatchObject({ kind: 'responder', accepts: ['thehive:case', 'thehive:alert', 'thehive:case_artifact'] });
    expect(resolveConfig(mailerManifest, { MAILER_FROM: 'soc@example.org' })).toEqual({ ok: true, config: { from: 'soc@example.org', smtp_host: 'localhost', smtp_port: 25 } });
    expect(resolveConfig(registry.get('fileinfo')!, {})).toEqual({ ok: true, config: { manalyze_enable: false } });
  });

  it('refuses a file that is not a flavor, naming the file and the field, and writes nothing', async () => {
    const bad = join(flavors, 'broken.json');
    writeFileSync(bad, JSON.stringify({ name: 'Broken', version: '1.0' }));
    const out = mkdtempSync(join(tmpdir(), 'docket-imported-'));
    await expect(cli('import', '--out', out, join(flavors, 'analyzers/FileInfo/FileInfo.json'), bad)).rejects.toMatchObject({
      stderr: expect.stringContaining(`${bad}: not a Cortex flavor file: dataTypeList:`),
    });
    expect((await EngineRegistry.load(out)).names()).toEqual([]);
  });

  it('keeps an existing manifest unless --force', async () => {
    const out = mkdtempSync(join(tmpdir(), 'docket-imported-'));
    const file = join(flavors, 'analyzers/FileInfo/FileInfo.json');
    await cli('import', '--out', out, file);
    await expect(cli('import', '--out', out, file)).rejects.toMatchObject({ stderr: expect.stringContaining('exists: remove it or import with --force') });
    await cli('import', '--out', out, '--force', '--egress', file);
    expect((await EngineRegistry.load(out)).get('fileinfo')?.network).toBe('egress');
  });
});
