import { menagerieFromReport, summarize } from '../../core/menagerie';
import type { EngineReport, InvestigationReport } from '../../core/investigation';

const job = (fields: Partial<EngineReport>): EngineReport => ({
  engine: 'fileinfo', subject: { kind: 'observable', observable: { type: 'domain', data: 'example.com' } },
  status: 'success', startedAt: '', finishedAt: '', summary: '', truncated: false, taxonomies: [], artifacts: [], attempt: 1, ...fields,
});
const report = (jobs: EngineReport[]): InvestigationReport => ({
  id: 'j1', status: 'Success', source: 'http', startedAt: '', finishedAt: '', observables: [], jobs, errors: [],
  verdicts: { bySubject: {}, overall: 'info' }, responses: [], notifications: [],
});

describe('Menagerie result', () => {
  it('keeps a short result whole (Menagerie lost results under its window)', () => {
    expect(summarize('ok')).toBe('ok');
  });

  it('cuts at 80 bytes without splitting a character', () => {
    expect(Buffer.byteLength(summarize('x'.repeat(200)))).toBe(80);
    const text = `${'a'.repeat(79)}é and more`;
    expect(summarize(text)).toBe('a'.repeat(79));
  });

  it('is Success with the first result when every engine succeeded', () => {
    expect(menagerieFromReport(report([job({ summary: 'PE32 executable' })]))).toEqual({
      status: 'Success', summary: 'PE32 executable', link: '/link/j1',
    });
  });

  it('is Fail, with the reason as its summary, when the only engine asked for was skipped', () => {
    const skipped = { ...report([]), status: 'Fail' as const, skipped: [{ engine: 'apktool', subject: job({}).subject, reason: 'apktool does not take text/plain files' }] };
    expect(menagerieFromReport(skipped)).toMatchObject({ status: 'Fail', summary: 'apktool skipped: apktool does not take text/plain files' });
  });

  it('is Fail with the failing engine message when one failed', () => {
    const result = menagerieFromReport(report([job({ summary: 'fine' }), job({ status: 'timeout', summary: 'engine ran past its timeout' })]));
    expect(result).toMatchObject({ status: 'Fail', summary: 'engine ran past its timeout' });
  });
});

