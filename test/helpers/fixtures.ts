import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

/** A temporary engines folder holding the given manifests (objects written as YAML). */
export function enginesFolder(manifests: Array<Record<string, unknown>>): string {
  const dir = mkdtempSync(join(tmpdir(), 'docket-engines-'));
  for (const manifest of manifests) {
    const folder = join(dir, String(manifest.name));
    mkdirSync(folder);
    writeFileSync(join(folder, 'engine.yaml'), stringify(manifest));
  }
  return dir;
}

export const fileinfoManifest = {
  name: 'fileinfo', kind: 'analyzer', image: 'docket/fileinfo:1.0', accepts: ['file'], protocol: 'cortex', timeout: '60s',
};

export async function upload(baseUrl: string, engine: string, content: Buffer | string, filename = 'sample.txt', field = 'upload') {
  const form = new FormData();
  form.append(field, new Blob([content]), filename);
  const response = await fetch(`${baseUrl}/${engine}/upload`, { method: 'POST', body: form });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

export async function getJson(url: string) {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

/** The policy most tests use: malicious web destinations go to `blocklist` after a person approves. */
export function writeApprovalPolicy(path: string, expiry = '1h'): void {
  writeFileSync(path, [
    'rules:',
    '  - name: block malicious web destinations',
    '    when: { types: [url, domain, fqdn, ip], verdict: malicious }',
    '    respond: [blocklist]',
    '    approval: required',
    `    expiry: ${expiry}`,
  ].join('\n'));
}
