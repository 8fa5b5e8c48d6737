import { z } from 'zod';
import { describeIssues, ObservableType } from './engine-manifest';
import { type Observable, TaxonomyLevel } from './investigation';
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
        const key = `${responder}\u0000${fact.observable.type}\u0000${fact.observable.data}`;
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
