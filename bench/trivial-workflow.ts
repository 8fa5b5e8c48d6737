import { proxyActivities } from '@temporalio/workflow';

/** Three activities that do nothing: the round trips a workflow of this shape costs, and nothing else. */
export interface TrivialActivities {
  first(input: string): Promise<string>;
  second(input: string): Promise<string>;
  third(input: string): Promise<string>;
}

const { first, second, third } = proxyActivities<TrivialActivities>({ startToCloseTimeout: '1 minute' });

/** bench/orchestration.ts's baseline: the cheapest workflow with as many activities as an investigation that runs no engine. */
export async function benchTrivial(input: string): Promise<string> {
  return third(await second(await first(input)));
}
