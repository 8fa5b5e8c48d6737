import type { EngineManifest } from './engine-manifest';
import type { InvestigationInput, Subject } from './investigation';

export interface PlannedJob {
  engine: string;
  subject: Subject;
  timeoutMs: number;
  retries: number;
}

export interface Plan {
  jobs: PlannedJob[];
  /** Why a requested engine or subject got no job, in words a person can act on. */
  errors: string[];
}

/** The subjects an input names directly: its observables and its files. */
export function subjectsOf(input: Pick<InvestigationInput, 'observables' | 'files'>): Subject[] {
  return [
    ...input.files.map((file): Subject => ({ kind: 'file', file })),
    ...input.observables.map((observable): Subject => ({ kind: 'observable', observable })),
  ];
}

function subjectType(subject: Subject): string {
  return subject.kind === 'file' ? 'file' : subject.observable.type;
}

/**
 * Pairs subjects with engines: the requested engines, or by default every analyzer that accepts the
 * subject's type. Responders run only when named (or selected by the response policy).
 */
export function planJobs(subjects: Subject[], requested: string[] | undefined, engines: EngineManifest[]): Plan {
  const byName = new Map(engines.map((engine) => [engine.name, engine]));
  const errors: string[] = [];
  let candidates: EngineManifest[];
  if (requested && requested.length) {
    candidates = [];
    for (const name of new Set(requested)) {
      const engine = byName.get(name);
      if (engine) candidates.push(engine);
      else errors.push(`engine ${name} is not declared; the engines are: ${[...byName.keys()].sort().join(', ') || 'none'}`);
    }
  } else {
    candidates = engines.filter((engine) => engine.kind === 'analyzer');
  }
  const jobs: PlannedJob[] = [];
  for (const subject of subjects) {
    const type = subjectType(subject);
    const accepting = candidates.filter((engine) => (engine.accepts as string[]).includes(type));
    if (!accepting.length && candidates.length) {
      errors.push(`no ${requested?.length ? 'requested ' : ''}engine accepts ${type} (${candidates.map((e) => `${e.name}: ${e.accepts.join('/')}`).join(', ')})`);
    }
    for (const engine of accepting) {
      jobs.push({ engine: engine.name, subject, timeoutMs: engine.timeout, retries: engine.retries });
    }
  }
  if (!subjects.length) errors.push('nothing to analyze: give observables, files or text');
  return { jobs, errors };
}
