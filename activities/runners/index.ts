import type Docker from 'dockerode';
import type { EngineManifest } from '../../core/engine-manifest';
import type { BlobStore } from '../../infra/blob-store';
import { type EngineRunner, EngineRunners } from '../../infra/engine-runner';
import type { Logger } from '../../infra/log';
import { DockerRunner } from './docker';
import { ProcessRunner } from './process';

/** What any runner may be built from; each takes the parts it needs. */
export interface RunnerDeps {
  docker: Docker;
  blobs: BlobStore;
  log: Logger;
  /** The Docker network `network: egress` engines join (DOCKET_EGRESS_NETWORK). */
  egressNetwork?: string;
  /** DOCKET_PROCESS_RUNNER=on: `runner: process` engines may run unconfined local commands. */
  processRunner: boolean;
  /** DOCKET_WARM_FOLDERS: warm job folders the Docker runner keeps ready per shape; 0 (or unset) keeps none. */
  warmFolders?: number;
}

/** Every runner, by manifest `runner:` value: the one place a new runner is registered. */
const RUNNERS: Record<EngineManifest['runner'], (deps: RunnerDeps) => EngineRunner> = {
  // Warm job folders take the holder's start off each job's critical path (DockerRunner, `pool`).
  docker: (deps) => new DockerRunner(deps.docker, deps.blobs, {
    egressNetwork: deps.egressNetwork, log: deps.log, pool: deps.warmFolders ? { ready: deps.warmFolders } : undefined,
  }),
  process: (deps) => new ProcessRunner(deps.blobs, deps.processRunner),
};

/** One of each runner, for a process that serves (or describes) engines of every kind. */
export function createRunners(deps: RunnerDeps): EngineRunners {
  return new EngineRunners(Object.values(RUNNERS).map((create) => create(deps)));
}
