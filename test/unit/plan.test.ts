import { EngineManifest } from '../../core/engine-manifest';
import { markingReason, planJobs, splitEngineRequest, subjectsOf } from '../../core/plan';

const engine = (name: string, accepts: string[], kind = 'analyzer') =>
  EngineManifest.parse({ name, kind, image: `docket/${name}:1.0`, accepts, protocol: 'cortex' });
const engines = [engine('fileinfo', ['file']), engine('whois', ['domain', 'fqdn']), engine('blocklist', ['domain', 'url'], 'responder')];
const file = { sha256: 'a'.repeat(64), size: 3 };

describe('planning engine jobs', () => {
  it('runs every analyzer that accepts each subject by default, never a responder', () => {
    const plan = planJobs(subjectsOf({ files: [file], observables: [{ type: 'domain', data: 'evil.example' }] }), undefined, engines);
    expect(plan.jobs.map((job) => job.engine)).toEqual(['fileinfo', 'whois']);
    expect(plan.errors).toEqual([]);
  });

  it('names the declared engines when one asked for is unknown', () => {
    const plan = planJobs(subjectsOf({ files: [file], observables: [] }), ['filenfo'], engines);
    expect(plan.jobs).toEqual([]);
    expect(plan.errors[0]).toBe('engine filenfo is not declared; the engines are: blocklist, fileinfo, whois');
  });

  it('says which engines accept what when none takes the subject', () => {
    const plan = planJobs(subjectsOf({ files: [], observables: [{ type: 'ip', data: '203.0.113.9' }] }), ['whois'], engines);
    expect(plan.errors[0]).toContain('no requested engine accepts ip (whois: domain/fqdn)');
  });

  it('never plans a responder as an analysis, even when it is named, and says where to ask for it', () => {
    const plan = planJobs(subjectsOf({ files: [], observables: [{ type: 'url', data: 'https://x.invalid/' }] }), ['blocklist'], engines);
    expect(plan.jobs).toEqual([]);
    expect(plan.errors).toEqual([expect.stringContaining('engine blocklist is a responder, so it never runs as an analysis: ask for it in "respond"')]);
  });

  it('plans the named analyzers beside a named responder, and only them', () => {
    const plan = planJobs(subjectsOf({ files: [], observables: [{ type: 'domain', data: 'evil.example' }] }), ['whois', 'blocklist'], engines);
    expect(plan.jobs.map((job) => job.engine)).toEqual(['whois']);
  });

  it('analyzes nothing when the engine list is empty beside responders asked for, and everything it accepts without them', () => {
    const subjects = subjectsOf({ files: [], observables: [{ type: 'domain', data: 'evil.example' }] });
    expect(planJobs(subjects, [], engines, ['blocklist'])).toEqual({ jobs: [], errors: [], skipped: [] });
    expect(planJobs(subjects, [], engines).jobs.map((job) => job.engine)).toEqual(['whois']);
    expect(planJobs(subjects, undefined, engines, ['blocklist']).jobs.map((job) => job.engine)).toEqual(['whois']);
  });

  it('says there is nothing to analyze', () => {
    expect(planJobs([], undefined, engines).errors).toEqual(['nothing to analyze: give observables, files or text']);
  });
});

describe('sorting what a caller asked to run', () => {
  it('moves responders named among the engines to respond, leaving an empty engine list when only responders were named', () => {
    expect(splitEngineRequest(['blocklist'], undefined, engines)).toEqual({ ok: true, engines: [], respond: ['blocklist'] });
    expect(splitEngineRequest(['whois', 'blocklist'], ['blocklist'], engines)).toEqual({ ok: true, engines: ['whois'], respond: ['blocklist'] });
  });

  it('leaves a request without responders as it was', () => {
    expect(splitEngineRequest(undefined, undefined, engines)).toEqual({ ok: true, respond: [] });
    expect(splitEngineRequest(['whois', 'nosuch'], [], engines)).toEqual({ ok: true, engines: ['whois', 'nosuch'], respond: [] });
  });

  it('refuses an unknown responder or an analyzer in respond, naming the responders', () => {
    expect(splitEngineRequest(undefined, ['blocklst'], engines)).toEqual({ ok: false, error: 'respond: no responder blocklst is declared; the responders are: blocklist' });
    expect(splitEngineRequest(undefined, ['whois'], engines)).toEqual({
      ok: false, error: 'respond: whois is an analyzer, not a responder: name it in engines; the responders are: blocklist',
    });
  });

  it('does not take inherited property names for engines', () => {
    expect(splitEngineRequest(undefined, ['constructor'], engines).ok).toBe(false);
    expect(splitEngineRequest(['__proto__', 'toString'], undefined, engines)).toEqual({ ok: true, engines: ['__proto__', 'toString'], respond: [] });
  });
});

describe('engines that apply but do not run (skipped, never failed)', () => {
  const apktool = EngineManifest.parse({ name: 'apktool', kind: 'analyzer', image: 'docket/apktool:1.0', accepts: ['file'], protocol: 'file', filetypes: ['application/vnd.android.package-archive'] });
  const anyButPdf = EngineManifest.parse({ name: 'strings', kind: 'analyzer', image: 'docket/strings:1.0', accepts: ['file'], protocol: 'file', filetypes: ['!application/pdf'] });
  const textOnly = EngineManifest.parse({ name: 'notes', kind: 'analyzer', image: 'docket/notes:1.0', accepts: ['file'], protocol: 'file', filetypes: ['text/*'] });
  const secret = EngineManifest.parse({ name: 'vt', kind: 'analyzer', image: 'docket/vt:1.0', accepts: ['domain'], protocol: 'cortex', maxTlp: 1, maxPap: 2 });
  const typed = (contentType?: string) => ({ ...file, contentType });

  it('skips an analyzer that does not take the file type detected, with the reason, and runs the rest', () => {
    const plan = planJobs(subjectsOf({ files: [typed('text/plain')], observables: [] }), undefined, [apktool, engines[0], anyButPdf, textOnly]);
    expect(plan.jobs.map((job) => job.engine)).toEqual(['fileinfo', 'strings', 'notes']);
    expect(plan.skipped).toEqual([{
      engine: 'apktool', subject: { kind: 'file', file: typed('text/plain') },
      reason: 'apktool does not take text/plain files (it takes application/vnd.android.package-archive)',
    }]);
    expect(plan.errors).toEqual([]);
  });

  it('honours exclusions and families of MIME types', () => {
    const plan = planJobs(subjectsOf({ files: [typed('application/pdf')], observables: [] }), undefined, [anyButPdf, textOnly]);
    expect(plan.jobs).toEqual([]);
    expect(plan.skipped?.map((job) => job.reason)).toEqual([
      'strings does not take application/pdf files (it takes any file but application/pdf)',
      'notes does not take application/pdf files (it takes text/*)',
    ]);
  });

  it('runs a file of unknown type (from before detection) on every engine that takes files', () => {
    const plan = planJobs(subjectsOf({ files: [typed(undefined)], observables: [] }), undefined, [apktool]);
    expect(plan.jobs.map((job) => job.engine)).toEqual(['apktool']);
  });

  it('skips an engine above its maxTlp or maxPap, as Cortex refuses with check_tlp / check_pap', () => {
    const subjects = subjectsOf({ files: [], observables: [{ type: 'domain', data: 'evil.example' }] });
    expect(planJobs(subjects, undefined, [secret], [], { tlp: 1, pap: 2 }).jobs.map((job) => job.engine)).toEqual(['vt']);
    expect(planJobs(subjects, undefined, [secret], [], { tlp: 2, pap: 2 }).skipped?.[0].reason).toContain('the data is TLP 2 and vt takes data up to TLP 1 (maxTlp)');
    expect(planJobs(subjects, undefined, [secret], [], { tlp: 0, pap: 3 }).skipped?.[0].reason).toContain('the data is PAP 3 and vt acts up to PAP 2 (maxPap)');
  });

  it('lets an engine without maxTlp / maxPap take any marking', () => {
    expect(markingReason(engines[1], { tlp: 4, pap: 3 })).toBeUndefined();
  });
});

