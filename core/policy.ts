import { z } from 'zod';
import { describeIssues, ObservableType } from './engine-manifest';
import { type Observable, objectLabel, TaxonomyLevel, type TheHiveObject } from './investigation';
import { compareLevels } from './verdict';
import { parseDuration } from './units';

/**
 * The response policy: which responders act on which observables, and whether a person must approve
 * first. Rules are read from a YAML file (DOCKET_POLICY_FILE) and evaluated here, purely.
 */
export const PolicyRule = z.strictObject({
  name: z.string().min(1),
  when: z.strictObject({
    types: z.array(ObservableType).min(1).optional(),
    /** The observable's verdict must be at least this level. */
    verdict: TaxonomyLevel.optional(),
    /** At least one of these engines reported on the observable. */
    engines: z.array(z.string()).min(1).optional(),
    /** The observable carries at least one of these tags. */
    tags: z.array(z.string()).min(1).optional(),
  }).prefault({}),
  respond: z.array(z.string().min(1)).min(1),
  approval: z.enum(['required', 'none']).default('required'),
  expiry: z.union([z.string(), z.number()]).default('1h').transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined || ms <= 0) {
      ctx.addIssue({ code: 'custom', message: `expected a duration such as 30m or 24h, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return ms;
  }),
});
export type PolicyRule = z.infer<typeof PolicyRule>;

export const Policy = z.strictObject({ rules: z.array(PolicyRule).default([]) });
export type Policy = z.infer<typeof Policy>;

export function validatePolicy(doc: unknown, source: string): { ok: true; policy: Policy } | { ok: false; error: string } {
  const parsed = Policy.safeParse(doc ?? {});
  if (!parsed.success) return { ok: false, error: `${source}: ${describeIssues(parsed.error)}` };
  return { ok: true, policy: parsed.data };
}

export interface PolicyFacts {
  observable: Observable;
  verdict: TaxonomyLevel;
  /** Engines whose reports on this observable had taxonomies. */
  engines: string[];
}

export interface PlannedResponse {
  responder: string;
  observable: Observable;
  /** A TheHive object the responder acts on instead of the observable, which then only labels it. */
  object?: TheHiveObject;
  rule: string;
  approval: 'required' | 'none';
  expiryMs: number;
}

function matches(rule: PolicyRule, facts: PolicyFacts): boolean {
  const { when } = rule;
  if (when.types && !when.types.includes(facts.observable.type)) return false;
  if (when.verdict && compareLevels(facts.verdict, when.verdict) < 0) return false;
  if (when.engines && !when.engines.some((engine) => facts.engines.includes(engine))) return false;
  if (when.tags && !when.tags.some((tag) => facts.observable.tags?.includes(tag))) return false;
  return true;
}

/**
 * Responses the policy selects, one per (responder, observable): when two rules pick the same
 * responder for the same observable, the first rule wins, but approval is required if either asks.
 */
export function evaluatePolicy(policy: Policy, facts: PolicyFacts[]): PlannedResponse[] {
  const planned = new Map<string, PlannedResponse>();
  for (const fact of facts) {
    for (const rule of policy.rules) {
      if (!matches(rule, fact)) continue;
      for (const responder of rule.respond) {
        const key = responseKey(responder, fact.observable);
        const existing = planned.get(key);
        if (existing) {
          if (rule.approval === 'required') existing.approval = 'required';
          continue;
        }
        planned.set(key, { responder, observable: fact.observable, rule: rule.name, approval: rule.approval, expiryMs: rule.expiry });
      }
    }
  }
  return [...planned.values()];
}

/** How long a response asked for by name waits for a decision when no rule naming its responder says. */
export const REQUEST_EXPIRY_MS = 60 * 60 * 1000;

export interface ResponseGate {
  approval: 'required' | 'none';
  expiryMs: number;
  /** The rules that name the responder, which decided. */
  rules: string[];
}

/**
 * Whether a responder that was not selected by a rule's conditions (asked for by name, or by a
 * compliance finding's AUTO: tag) must wait for a person. Every rule naming the responder counts,
 * whatever its `when`: one saying `approval: required` is enough to wait, for the shortest expiry
 * among them. `unnamed` decides for a responder no rule names: `required` for requests from people
 * and schedules, `none` for AUTO: tags, which are the operator's standing order in Dome9's model.
 */
export function approvalFor(policy: Policy, responder: string, unnamed: 'required' | 'none'): ResponseGate {
  const naming = policy.rules.filter((rule) => rule.respond.includes(responder));
  if (!naming.length) return { approval: unnamed, expiryMs: REQUEST_EXPIRY_MS, rules: [] };
  const requiring = naming.filter((rule) => rule.approval === 'required');
  if (!requiring.length) return { approval: 'none', expiryMs: REQUEST_EXPIRY_MS, rules: naming.map((rule) => rule.name) };
  return { approval: 'required', expiryMs: Math.min(...requiring.map((rule) => rule.expiry)), rules: requiring.map((rule) => rule.name) };
}

/** A responder asked for by name, as the worker's engine registry describes it. */
export interface RequestedResponder {
  name: string;
  /** The observable types it acts on; absent when it is not a declared responder. */
  accepts?: string[];
}

/**
 * The responses asked for by name (`respond`): one per (responder, observable it accepts), each
 * gated by `approvalFor(…, 'required')`. A pair the policy already selected keeps the policy's
 * response, whose rule then decides. The rule of the others reads `requested by <requester>`.
 * A TheHive `object` goes to each responder that accepts its type, once, under the same gate.
 */
export function requestedResponses(
  policy: Policy,
  responders: RequestedResponder[],
  observables: Observable[],
  requester: string | undefined,
  selected: PlannedResponse[],
  object?: TheHiveObject,
): { planned: PlannedResponse[]; errors: string[] } {
  const planned: PlannedResponse[] = [];
  const errors: string[] = [];
  const taken = new Set(selected.map((response) => responseKey(response.responder, response.observable)));
  for (const responder of responders) {
    if (!responder.accepts) {
      errors.push(`responder ${responder.name} was asked for but is not declared on the worker; nothing was done with it`);
      continue;
    }
    if (object && responder.accepts.includes(object.dataType)) {
      const gate = approvalFor(policy, responder.name, 'required');
      planned.push({
        responder: responder.name, observable: objectLabel(object), object, rule: `requested by ${requester ?? 'an unnamed caller'}`,
        approval: gate.approval, expiryMs: gate.expiryMs,
      });
      continue;
    }
    const targets = observables.filter((observable) => responder.accepts!.includes(observable.type));
    if (!targets.length) {
      errors.push(`responder ${responder.name} was asked for, but it acts on ${responder.accepts.join(', ')} and no observable given is one`);
      continue;
    }
    const gate = approvalFor(policy, responder.name, 'required');
    for (const observable of targets) {
      const key = responseKey(responder.name, observable);
      if (taken.has(key)) continue;
      taken.add(key);
      planned.push({ responder: responder.name, observable, rule: `requested by ${requester ?? 'an unnamed caller'}`, approval: gate.approval, expiryMs: gate.expiryMs });
    }
  }
  return { planned, errors };
}

function responseKey(responder: string, observable: Observable): string {
  return `${responder}\u0000${observable.type}\u0000${observable.data}`;
}
