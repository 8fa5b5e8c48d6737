import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import type { BlobStore } from '../../infra/blob-store';
import type { EngineRegistry } from '../../infra/engine-registry';
import type { Logger } from '../../infra/log';
import type { DocketSchedules } from '../../infra/schedule-control';
import type { Investigations } from '../investigations';
import type { SlackAccess } from './access';
import type { SlackSettings } from './settings';
import type { WorkQueue } from './work-queue';

/** What the Slack listeners work with; the gateway passes its own clients. */
export interface SlackDeps {
  settings: SlackSettings;
  investigations: Investigations;
  /** Temporal, for starting `task` workflows and listing schedules. */
  client: Client;
  /** The main worker's task queue. */
  taskQueue: string;
  registry: EngineRegistry;
  docker: Docker;
  blobs: BlobStore;
  access: SlackAccess;
  /** Where acked requests wait for their turn. */
  work: WorkQueue;
  /** Docket's schedules, as `GET /v1/schedules` lists them. */
  schedules: Pick<DocketSchedules, 'list'>;
  log: Logger;
}
