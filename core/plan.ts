import { type EngineManifest, takesFiletype } from './engine-manifest';
import { type InvestigationInput, type SkippedEngineJob, type Subject, subjectType } from './investigation';

export interface PlannedJob {
  engine: string;
  subject: Subject;
  timeoutMs: number;
  retries: number;
}

/** An engine that applies to a subject's type but does not run on it (TLP, PAP, file type): not a failure. */
export type SkippedJob = SkippedEngineJob;

export interface Plan {
  jobs: PlannedJob[];
  /** Why a requested engine or subject got no job, in words a person can act on. */
  errors: string[];
  /** Absent from plans recorded before engines could be skipped. */
  skipped?: SkippedJob[];
}

/** The TLP and PAP of the data, which engines' maxTlp / maxPap are checked against. */
export interface Marking {
  tlp: number;
  pap: number;
}

/**
 * Why `engine` must not run on `subject`, decided before any container starts; undefined when it
 * may. Cortex's max_tlp / max_pap, and the file types the engine takes (a file's type as Docket
 * detected it; a file of unknown type, from before detection, goes to every engine that takes files).
 */
export function skipReason(engine: EngineManifest, subject: Subject, marking: Marking): string | undefined {
  const marked = markingReason(engine, marking);
  if (marked) return marked;
  const type = subject.kind === 'file' ? subject.file.contentType : undefined;
  if (type && !takesFiletype(engine.filetypes, type)) {
    return `${engine.name} does not take ${type} files (it takes ${describeFiletypes(engine.filetypes)})`;
  }
  return undefined;
}

/** Why an engine must not see data of this TLP or PAP (Cortex's check_tlp / check_pap); undefined when it may. */
export function markingReason(engine: { engine?: string; name?: string; maxTlp?: number; maxPap?: number }, marking: Marking): string | undefined {
  const name = engine.name ?? engine.engine ?? 'the engine';
  if (engine.maxTlp !== undefined && marking.tlp > engine.maxTlp) {
    return `the data is TLP ${marking.tlp} and ${name} takes data up to TLP ${engine.maxTlp} (maxTlp); lower the TLP only if the data may go to it`;
  }
  if (engine.maxPap !== undefined && marking.pap > engine.maxPap) {
    return `the data is PAP ${marking.pap} and ${name} acts up to PAP ${engine.maxPap} (maxPap)`;
  }
  return undefined;
}

function describeFiletypes(filetypes: readonly string[]): string {
  const included = filetypes.filter((pattern) => !pattern.startsWith('!'));
  const excluded = filetypes.filter((pattern) => pattern.startsWith('!')).map((pattern) => pattern.slice(1));
  const taken = included.length ? included.join(', ') : 'any file';
  return excluded.length ? `${taken} but ${excluded.join(', ')}` : taken;
}

/** The subjects an input names directly: its observables and its files. */
export function subjectsOf(input: Pick<InvestigationInput, 'observables' | 'files'>): Subject[] {
  return [
    ...input.files.map((file): Subject => ({ kind: 'file', file })),
    ...input.observables.map((observable): Subject => ({ kind: 'observable', observable })),
  ];
}

/** Where a responder named among the analyses is sent instead; the same words everywhere. */
export function responderNotAnalysis(name: string): string {
  return `engine ${name} is a responder, so it never runs as an analysis: ask for it in "respond" `
    + '(that needs the respond role, and it waits for approval unless the policy says approval: none)';
}

/**
 * Pairs subjects with engines: the requested analyzers, or by default every analyzer that accepts
 * the subject's type. A responder is never planned here, even when named: responders act only as
 * responses (the policy's, or those asked for in `respond`), which carry their approval. An empty
 * engine list beside responders asked for means nothing is analyzed first.
 */
export function planJobs(subjects: Subject[], requested: string[] | undefined, engines: EngineManifest[], respond: string[] = [], marking: Marking = { tlp: 2, pap: 2 }): Plan {
  const byName = new Map(engines.map((engine) => [engine.name, engine]));
  const errors: string[] = [];
  let candidates: EngineManifest[];
  if (requested && requested.length) {
    candidates = [];
    for (const name of new Set(requested)) {
      const engine = byName.get(name);
      if (!engine) errors.push(`engine ${name} is not declared; the engines are: ${[...byName.keys()].sort().join(', ') || 'none'}`);
      else if (engine.kind === 'responder') errors.push(responderNotAnalysis(name));
      else candidates.push(engine);
    }
  } else if (requested && respond.length) {
    candidates = [];
  } else {
    candidates = engines.filter((engine) => engine.kind === 'analyzer');
  }
  const jobs: PlannedJob[] = [];
  const skipped: SkippedJob[] = [];
  for (const subject of subjects) {
    const type = subjectType(subject);
    const accepting = candidates.filter((engine) => (engine.accepts as string[]).includes(type));
    if (!accepting.length && candidates.length) {
      errors.push(`no ${requested?.length ? 'requested ' : ''}engine accepts ${type} (${candidates.map((e) => `${e.name}: ${e.accepts.join('/')}`).join(', ')})`);
    }
    for (const engine of accepting) {
      const reason = skipReason(engine, subject, marking);
      if (reason) skipped.push({ engine: engine.name, subject, reason });
      else jobs.push({ engine: engine.name, subject, timeoutMs: engine.timeout, retries: engine.retries });
    }
  }
  if (!subjects.length) errors.push('nothing to analyze: give observables, files or text');
  return { jobs, errors, skipped };
}

export type EngineRequest =
  | { ok: true; engines?: string[]; respond: string[] }
  | { ok: false; error: string };

/**
 * What a caller asked to run, sorted by kind before anything starts: responders named in `engines`
 * move to `respond` (so the entry point can check the respond role and the workflow can make them
 * responses), and every name in `respond` must be a declared responder. When `engines` named only
 * responders, it becomes an empty list: the caller asked for no analysis.
 */
export function splitEngineRequest(engines: string[] | undefined, respond: string[] | undefined, manifests: EngineManifest[]): EngineRequest {
  const byName = new Map(manifests.map((manifest) => [manifest.name, manifest]));
  const responders = () => manifests.filter((manifest) => manifest.kind === 'responder').map((manifest) => manifest.name).sort().join(', ') || 'none';
  const asked = new Set<string>();
  for (const name of respond ?? []) {
    const manifest = byName.get(name);
    if (!manifest) return { ok: false, error: `respond: no responder ${name} is declared; the responders are: ${responders()}` };
    if (manifest.kind !== 'responder') return { ok: false, error: `respond: ${name} is an analyzer, not a responder: name it in engines; the responders are: ${responders()}` };
    asked.add(name);
  }
  if (engines === undefined) return { ok: true, respond: [...asked] };
  const analyses: string[] = [];
  for (const name of engines) {
    if (byName.get(name)?.kind === 'responder') asked.add(name);
    else analyses.push(name);
  }
  return { ok: true, engines: analyses, respond: [...asked] };
}
