import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DefaultLogger, type ReplayWorkerOptions, Runtime, Worker } from '@temporalio/worker';
import { historyFromJson } from '../../scripts/lib/history-json';
import { ROOT } from '../helpers/system';

/**
 * Every history recorded from a release (test/fixtures/histories/<release>/*.json, written by
 * `npm run histories:record`) must replay against the current workflow code: a workflow that waits
 * days for an approval is resumed by whatever code runs after an upgrade. A change that cannot replay
 * uses `patched()` or a new workflow type (docs/architecture.md, "Upgrades and replay").
 */
const FIXTURES = join(ROOT, 'test', 'fixtures', 'histories');

// The replay worker's start and stop are logged at INFO; a history that does not replay is answered, not logged.
Runtime.install({ logger: new DefaultLogger('WARN') });

interface Fixture {
  /** `<release>/<file>`, which is also the workflow ID it is replayed under, so a failure names it. */
  name: string;
  json: unknown;
}

interface Failure {
  name: string;
  error: Error;
}

function fixtures(): Fixture[] {
  const releases = readdirSync(FIXTURES, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name).sort();
  return releases.flatMap((release) => readdirSync(join(FIXTURES, release))
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => ({ name: `${release}/${file}`, json: JSON.parse(readFileSync(join(FIXTURES, release, file), 'utf8')) })));
}

function replayOptions(): ReplayWorkerOptions {
  const bundle = process.env.DOCKET_TEST_BUNDLE;
  return bundle ? { workflowBundle: { codePath: bundle } } : { workflowsPath: join(ROOT, 'workflows') };
}

/** Replays the histories with one replay worker and answers those that did not replay, with why. */
async function replay(histories: Fixture[]): Promise<Failure[]> {
  const failures: Failure[] = [];
  const input = histories.map((fixture) => ({ workflowId: fixture.name, history: historyFromJson(fixture.json) }));
  for await (const result of Worker.runReplayHistories(replayOptions(), input)) {
    if (result.error) failures.push({ name: result.workflowId, error: result.error });
  }
  return failures;
}

function describeFailures(failures: Failure[], total: number): string {
  return `${failures.length} of ${total} recorded histories do not replay against the current workflow code; `
    + 'make the change replay-safe with patched() or a new workflow type (docs/architecture.md, "Upgrades and replay"):\n'
    + failures.map((failure) => `  ${failure.name}: ${failure.error.name}: ${failure.error.message}`).join('\n');
}

/** A copy of a history with one activity type renamed, as if a workflow now scheduled a different activity. */
function withActivityRenamed(json: unknown, from: string, to: string): unknown {
  const copy = structuredClone(json) as { events: Array<Record<string, any>> };
  const scheduled = copy.events.find((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === from);
  if (!scheduled) throw new Error(`the history schedules no ${from} activity to rename`);
  scheduled.activityTaskScheduledEventAttributes.activityType.name = to;
  return copy;
}

describe('replay of histories recorded from earlier releases', () => {
  const recorded = fixtures();

  it('finds recorded histories, each a Temporal history that starts a workflow', () => {
    expect(recorded.length).toBeGreaterThan(0);
    for (const fixture of recorded) {
      const [first] = historyFromJson(fixture.json).events!;
      expect({ name: fixture.name, started: Boolean(first.workflowExecutionStartedEventAttributes) }).toEqual({ name: fixture.name, started: true });
    }
  });

  it('replays every recorded history of every release against the current workflow code', async () => {
    const failures = await replay(recorded);
    if (failures.length) throw new Error(describeFailures(failures, recorded.length));
  });

  it('reports a history that no longer matches the code as not replaying, naming its file and the determinism error', async () => {
    const original = recorded.find((fixture) => fixture.name.endsWith('/investigation-approved.json'));
    expect(original).toBeDefined();
    const broken = { name: original!.name.replace('.json', '.activity-renamed.json'), json: withActivityRenamed(original!.json, 'loadPolicy', 'loadPolicyRenamed') };
    const failures = await replay([broken]);
    expect(failures.map((failure) => failure.name)).toEqual([broken.name]);
    expect(failures[0].error.name).toBe('DeterminismViolationError');
    expect(failures[0].error.message).toContain('loadPolicyRenamed');
    expect(describeFailures(failures, 1)).toContain(`${broken.name}: DeterminismViolationError`);
  });
});
