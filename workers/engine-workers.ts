import { type NativeConnection, Worker } from '@temporalio/worker';
import { createEngineActivities } from '../activities/engine-activities';
import type { BlobStore } from '../infra/blob-store';
import type { DockerRunner } from '../activities/docker-runner';
import type { EngineRegistry } from '../infra/engine-registry';
import type { Logger } from '../infra/log';
import type { ResultCache } from '../infra/result-cache';
import type { DocketMetrics } from '../infra/metrics';
import type { ProcessRunner } from '../activities/process-runner';
import { type EngineManifest, engineTaskQueue } from '../core/engine-manifest';

export interface EngineWorkersOptions {
  connection: NativeConnection;
  namespace: string;
  queuePrefix: string;
  registry: EngineRegistry;
  runner: DockerRunner;
  blobs: BlobStore;
  log: Logger;
  env: Record<string, string | undefined>;
  /** Engines this process serves; all when empty. */
  only?: string[];
  cache?: ResultCache;
  metrics?: DocketMetrics;
  processRunner?: ProcessRunner;
}

interface Running {
  worker: Worker;
  done: Promise<void>;
  concurrency: number;
}

/**
 * One worker per engine, each polling `engine.<name>` and running at most the manifest's
 * `concurrency` containers at once. `reload()` re-reads the manifests: engines that appeared get a
 * worker, engines that went away lose theirs, and a changed concurrency restarts that engine's worker.
 * A changed image needs no restart: each job looks its manifest up when it starts.
 */
export class EngineWorkers {
  private readonly running = new Map<string, Running>();

  constructor(private readonly options: EngineWorkersOptions) {}

  async start(): Promise<void> {
    await this.sync();
  }

  async reload(): Promise<void> {
    await this.options.registry.reload();
    for (const error of this.options.registry.errors) this.options.log.warn(`engines: skipped ${error}`);
    await this.sync();
  }

  engines(): string[] {
    return [...this.running.keys()].sort();
  }

  async shutdown(): Promise<void> {
    await Promise.all([...this.running.keys()].map((name) => this.stop(name)));
  }

  private wanted(): EngineManifest[] {
    const only = this.options.only ?? [];
    return this.options.registry.list().map((engine) => engine.manifest).filter((m) => !only.length || only.includes(m.name));
  }

  private async sync(): Promise<void> {
    const wanted = new Map(this.wanted().map((manifest) => [manifest.name, manifest]));
    await this.prepareEgress([...wanted.values()]);
    for (const [name, current] of this.running) {
      const manifest = wanted.get(name);
      if (!manifest || manifest.concurrency !== current.concurrency) await this.stop(name);
    }
    for (const manifest of wanted.values()) {
      if (!this.running.has(manifest.name)) await this.launch(manifest);
    }
  }

  /**
   * Creates and confines the egress network before the first egress job, so whether egress engines
   * are kept off the Docker host is in the log at start, not at the first job. A failure here is only
   * logged: each egress job tries again.
   */
  private async prepareEgress(manifests: EngineManifest[]): Promise<void> {
    const egress = manifests.filter((manifest) => manifest.network === 'egress' && manifest.runner === 'docker');
    if (!egress.length) return;
    try {
      await this.options.runner.ensureEgress();
    } catch (error) {
      this.options.log.warn(`egress: cannot prepare the network for ${egress.map((m) => m.name).join(', ')} yet: ${(error as Error).message}`);
    }
  }

  private async launch(manifest: EngineManifest): Promise<void> {
    const { options } = this;
    const worker = await Worker.create({
      connection: options.connection,
      namespace: options.namespace,
      taskQueue: engineTaskQueue(manifest.name, options.queuePrefix),
      activities: createEngineActivities(options),
      maxConcurrentActivityTaskExecutions: manifest.concurrency,
      // Heartbeats carry cancellations to the activity; the default throttle (80% of the heartbeat
      // timeout) would leave a cancelled container running for half a minute.
      maxHeartbeatThrottleInterval: '2 seconds',
      // Let a container finish its copy-out when the worker is asked to stop.
      shutdownGraceTime: '10 seconds',
    });
    const done = worker.run().catch((error) => options.log.error(`engine worker ${manifest.name} stopped: ${(error as Error).message}`));
    this.running.set(manifest.name, { worker, done, concurrency: manifest.concurrency });
  }

  private async stop(name: string): Promise<void> {
    const running = this.running.get(name);
    if (!running) return;
    this.running.delete(name);
    if (running.worker.getState() === 'RUNNING') running.worker.shutdown();
    await running.done;
  }
}
