import type { Taxonomy, TaxonomyLevel } from './investigation';

/**
 * The verdict (docs/investigations.md, "Phases"): the worst taxonomy level per subject and
 * overall. A subject no engine said anything about is `info`, as Cortex reports unknowns.
 */

const SEVERITY: Record<TaxonomyLevel, number> = { info: 0, safe: 1, suspicious: 2, malicious: 3 };

/** Negative when `a` is less severe than `b`, zero when equal, positive when worse: a sort comparator. */
export function compareLevels(a: TaxonomyLevel, b: TaxonomyLevel): number {
  return SEVERITY[a] - SEVERITY[b];
}

/** The most severe of `levels`; `info` when there are none. */
export function worstLevel(levels: Iterable<TaxonomyLevel>): TaxonomyLevel {
  let worst: TaxonomyLevel = 'info';
  for (const level of levels) {
    if (compareLevels(level, worst) > 0) worst = level;
  }
  return worst;
}

/** The verdict of one engine report, or of several reports' taxonomies together. */
export function verdictOf(taxonomies: readonly Taxonomy[]): TaxonomyLevel {
  return worstLevel(taxonomies.map((taxonomy) => taxonomy.level));
}

export interface SubjectTaxonomies {
  /** Names the analyzed subject; reports with the same key (several engines) are one subject. */
  subjectKey: string;
  taxonomies: readonly Taxonomy[];
}

export interface Verdicts {
  /** A plain object rather than a Map, so that it travels in workflow payloads and query results. */
  bySubject: Record<string, TaxonomyLevel>;
  overall: TaxonomyLevel;
}

export function aggregateVerdicts(reports: readonly SubjectTaxonomies[]): Verdicts {
  const bySubject = new Map<string, TaxonomyLevel>();
  for (const { subjectKey, taxonomies } of reports) {
    bySubject.set(subjectKey, worstLevel([bySubject.get(subjectKey) ?? 'info', verdictOf(taxonomies)]));
  }
  // fromEntries defines own properties, so a key such as `__proto__` is kept like any other.
  return { bySubject: Object.fromEntries(bySubject), overall: worstLevel(bySubject.values()) };
}
