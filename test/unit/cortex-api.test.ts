import { applyRange, applySort, cortexDataTypes, cortexRoles, cortexWorkerId, matchesQuery, parseAtMost, SearchError } from '../../core/cortex-api';

describe('the Cortex API shapes', () => {
  const worker = { id: 'keyword_2_2', name: 'keyword', dataTypeList: ['domain', 'file'], jobCache: 10 };

  it('names workers <name>_<version> with dots made underscores, as Cortex names definitions', () => {
    expect(cortexWorkerId({ name: 'abuse_finder', version: '3.0' })).toBe('abuse_finder_3_0');
  });

  it('shows a responder that acts on observables as taking thehive:case_artifact, and keeps TheHive objects it names', () => {
    expect(cortexDataTypes({ kind: 'responder', accepts: ['ip', 'domain'] })).toEqual(['thehive:case_artifact']);
    expect(cortexDataTypes({ kind: 'responder', accepts: ['thehive:case'] })).toEqual(['thehive:case']);
    expect(cortexDataTypes({ kind: 'analyzer', accepts: ['ip', 'file'] })).toEqual(['ip', 'file']);
  });

  it('maps Docket roles to Cortex roles', () => {
    expect(cortexRoles('read')).toEqual(['read']);
    expect(cortexRoles('respond')).toEqual(['read', 'analyze']);
    expect(cortexRoles('admin')).toEqual(['read', 'analyze', 'orgadmin']);
  });

  it('matches Eq on lists, And, Or, Not, Contains and In, and an empty query matches everything', () => {
    expect(matchesQuery({}, worker)).toBe(true);
    expect(matchesQuery({ _field: 'dataTypeList', _value: 'file' }, worker)).toBe(true);
    expect(matchesQuery({ _and: [{ _field: 'name', _value: 'keyword' }, { _not: { _field: 'dataTypeList', _value: 'ip' } }] }, worker)).toBe(true);
    expect(matchesQuery({ _or: [{ _field: 'name', _value: 'x' }, { _contains: 'jobCache' }] }, worker)).toBe(true);
    expect(matchesQuery({ _in: { _field: 'name', _values: ['a', 'keyword'] } }, worker)).toBe(true);
    expect(matchesQuery({ _gte: { jobCache: 10 } }, worker)).toBe(true);
  });

  it('finds nothing through prototype names and refuses unknown operators and deep nesting', () => {
    expect(matchesQuery({ _contains: 'constructor' }, worker)).toBe(false);
    expect(matchesQuery({ _field: '__proto__', _value: null }, worker)).toBe(false);
    expect(() => matchesQuery({ _script: 'x' }, worker)).toThrow(SearchError);
    let deep: unknown = {};
    for (let i = 0; i < 40; i += 1) deep = { _not: deep };
    expect(() => matchesQuery(deep, worker)).toThrow(/nested deeper/);
  });

  it('reads ranges as Cortex does (0-10 is the first ten) and refuses others', () => {
    const items = Array.from({ length: 30 }, (_, i) => i);
    expect(applyRange(items, 'all', '0-10')).toHaveLength(30);
    expect(applyRange(items, undefined, '0-10')).toEqual(items.slice(0, 10));
    expect(applyRange(items, '5-7', 'all')).toEqual([5, 6]);
    expect(() => applyRange(items, 'ten', 'all')).toThrow(SearchError);
    expect(() => applyRange(items, '7-5', 'all')).toThrow(SearchError);
  });

  it('sorts by fields with + and -', () => {
    const docs = [{ name: 'b' }, { name: 'a' }, { name: 'c' }];
    expect(applySort(docs, '-name').map((doc) => doc.name)).toEqual(['c', 'b', 'a']);
    expect(applySort(docs, ['+name']).map((doc) => doc.name)).toEqual(['a', 'b', 'c']);
    expect(() => applySort(docs, 'na me')).toThrow(SearchError);
  });

  it('reads atMost as TheHive (Scala durations) and cortex4py (Inf) send it, capped at ten minutes', () => {
    expect(parseAtMost('1 minute')).toBe(60_000);
    expect(parseAtMost('1minute')).toBe(60_000);
    expect(parseAtMost('30 seconds')).toBe(30_000);
    expect(parseAtMost('90s')).toBe(90_000);
    expect(parseAtMost('Inf')).toBe(600_000);
    expect(parseAtMost('3 days')).toBe(600_000);
    expect(parseAtMost(undefined)).toBe(60_000);
    expect(parseAtMost('forever')).toBeUndefined();
  });
});
