import { type InvestigationInput } from '../core/investigation';
import { type Plan, planJobs, subjectsOf } from '../core/plan';
import type { EngineRegistry } from './engine-registry';
import type { Logger } from './log';

export interface InvestigationActivityDeps {
  registry: EngineRegistry;
  log: Logger;
  queuePrefix: string;
}

export interface InvestigationPlan extends Plan {
  queuePrefix: string;
}

/** Light activities run by the main worker, beside the workflows. */
export function createInvestigationActivities(deps: InvestigationActivityDeps) {
  return {
    async planInvestigation(id: string, input: InvestigationInput): Promise<InvestigationPlan> {
      const engines = deps.registry.list().map((engine) => engine.manifest);
      const plan = planJobs(subjectsOf(input), input.engines, engines);
      deps.log.job(id, `planned ${plan.jobs.length} engine job(s)${plan.errors.length ? `; ${plan.errors.join('; ')}` : ''}`);
      return { ...plan, queuePrefix: deps.queuePrefix };
    },

    async logEvent(id: string, message: string): Promise<void> {
      deps.log.job(id, message);
    },
  };
}

export type InvestigationActivities = ReturnType<typeof createInvestigationActivities>;
