import { EngineManifest } from '../../core/engine-manifest';
import { planJobs, subjectsOf } from '../../core/plan';

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

  it('says there is nothing to analyze', () => {
    expect(planJobs([], undefined, engines).errors).toEqual(['nothing to analyze: give observables, files or text']);
  });
});
