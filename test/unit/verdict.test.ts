import fc from 'fast-check';
import type { Taxonomy, TaxonomyLevel } from '../../core/investigation';
import { aggregateVerdicts, compareLevels, verdictOf, worstLevel } from '../../core/verdict';

const taxonomy = (level: TaxonomyLevel, predicate = 'Score'): Taxonomy => ({ level, namespace: 'Test', predicate, value: '1' });

describe('verdicts', () => {
  it.each<[TaxonomyLevel[], TaxonomyLevel]>([
    [[], 'info'],
    [['info'], 'info'],
    [['safe', 'info'], 'safe'],
    [['safe', 'suspicious', 'info'], 'suspicious'],
    [['malicious', 'safe'], 'malicious'],
    [['suspicious', 'malicious', 'suspicious'], 'malicious'],
  ])('the worst of %p is %p', (levels, worst) => {
    expect(worstLevel(levels)).toBe(worst);
  });

  it('orders info < safe < suspicious < malicious', () => {
    const levels: TaxonomyLevel[] = ['malicious', 'info', 'suspicious', 'safe'];
    expect([...levels].sort(compareLevels)).toEqual(['info', 'safe', 'suspicious', 'malicious']);
  });

  it('takes the worst taxonomy of a report, and info when it has none', () => {
    expect(verdictOf([taxonomy('safe', 'Whitelist'), taxonomy('suspicious', 'Reputation')])).toBe('suspicious');
    expect(verdictOf([])).toBe('info');
  });

  it('gives each subject the worst level any engine reported for it, and the worst of those overall', () => {
    const verdicts = aggregateVerdicts([
      { subjectKey: 'domain evil.com', taxonomies: [taxonomy('safe')] },
      { subjectKey: 'ip 8.8.8.8', taxonomies: [taxonomy('safe'), taxonomy('info')] },
      { subjectKey: 'domain evil.com', taxonomies: [taxonomy('malicious')] },
      { subjectKey: 'file invoice.pdf', taxonomies: [] },
    ]);
    expect(verdicts).toEqual({
      bySubject: { 'domain evil.com': 'malicious', 'ip 8.8.8.8': 'safe', 'file invoice.pdf': 'info' },
      overall: 'malicious',
    });
  });

  it('is info overall when nothing was analyzed', () => {
    expect(aggregateVerdicts([])).toEqual({ bySubject: {}, overall: 'info' });
  });

  it('keeps a subject key that is also an Object property name', () => {
    const verdicts = aggregateVerdicts([{ subjectKey: '__proto__', taxonomies: [taxonomy('suspicious')] }]);
    expect(Object.keys(verdicts.bySubject)).toEqual(['__proto__']);
    expect(verdicts.overall).toBe('suspicious');
  });
});

const level = fc.constantFrom<TaxonomyLevel>('info', 'safe', 'suspicious', 'malicious');
const levels = fc.array(level, { maxLength: 12 });
const report = fc.record({
  subjectKey: fc.constantFrom('ip 8.8.8.8', 'domain evil.com', 'url https://evil.com/a', 'file a.pdf', 'toString'),
  taxonomies: fc.array(level.map((l) => taxonomy(l)), { maxLength: 4 }),
});

describe('verdict properties', () => {
  it('the worst level is one of the levels, and none is worse', () => {
    fc.assert(fc.property(fc.array(level, { minLength: 1, maxLength: 12 }), (xs) => {
      const worst = worstLevel(xs);
      expect(xs).toContain(worst);
      for (const x of xs) expect(compareLevels(x, worst)).toBeLessThanOrEqual(0);
    }));
  });

  it('adding a level never makes the verdict better', () => {
    fc.assert(fc.property(levels, level, (xs, x) => {
      expect(compareLevels(worstLevel([...xs, x]), worstLevel(xs))).toBeGreaterThanOrEqual(0);
      expect(compareLevels(worstLevel([...xs, x]), x)).toBeGreaterThanOrEqual(0);
    }));
  });

  it('does not depend on the order of the levels or of the reports', () => {
    const shuffled = <T>(items: fc.Arbitrary<T[]>) =>
      items.chain((xs) => fc.tuple(fc.constant(xs), fc.shuffledSubarray(xs, { minLength: xs.length, maxLength: xs.length })));
    fc.assert(fc.property(shuffled(levels), ([xs, ys]) => {
      expect(worstLevel(ys)).toBe(worstLevel(xs));
    }));
    fc.assert(fc.property(shuffled(fc.array(report, { maxLength: 10 })), ([xs, ys]) => {
      const a = aggregateVerdicts(xs);
      const b = aggregateVerdicts(ys);
      expect(b.overall).toBe(a.overall);
      expect(Object.entries(b.bySubject).sort()).toEqual(Object.entries(a.bySubject).sort());
    }));
  });

  it('the overall verdict is the worst per-subject verdict, and each subject the worst of its taxonomies', () => {
    fc.assert(fc.property(fc.array(report, { maxLength: 10 }), (reports) => {
      const { bySubject, overall } = aggregateVerdicts(reports);
      expect(overall).toBe(worstLevel(Object.values(bySubject)));
      expect(overall).toBe(verdictOf(reports.flatMap((r) => r.taxonomies)));
      expect(Object.keys(bySubject).sort()).toEqual([...new Set(reports.map((r) => r.subjectKey))].sort());
      for (const [key, verdict] of Object.entries(bySubject)) {
        expect(verdict).toBe(verdictOf(reports.filter((r) => r.subjectKey === key).flatMap((r) => r.taxonomies)));
      }
    }));
  });
});
