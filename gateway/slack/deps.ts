import type { DocketClient } from '../../contract/client';
import type { BlobStore } from '../../infra/blob-store';
import type { EngineRegistry } from '../../infra/engine-registry';
import type { EngineRunners } from '../../infra/engine-runner';
import type { Logger } from '../../infra/log';
import type { DocketSchedules } from '../../infra/schedule-control';
import type { SlackAccess } from './access';
import type { SlackSettings } from './settings';
import type { WorkQueue } from './work-queue';

/** What the Slack listeners work with; the gateway passes its own clients. */
export interface SlackDeps {
  settings: SlackSettings;
  /** Temporal: starts investigations and tasks, reads and decides them. */
  temporal: DocketClient;
  registry: EngineRegistry;
  /** Asked what each engine runs now (`engines`). */
  runners: EngineRunners;
  blobs: BlobStore;
  access: SlackAccess;
  /** Where acked requests wait for their turn. */
  work: WorkQueue;
  /** Docket's schedules, as `GET /v1/schedules` lists them. */
  schedules: Pick<DocketSchedules, 'list'>;
  log: Logger;
}
