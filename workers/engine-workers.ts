import { type NativeConnection, Worker } from '@temporalio/worker';
import { createEngineActivities } from '../activities/engine-activities';
import type { BlobStore } from '../infra/blob-store';
import type { EngineRegistry } from '../infra/engine-registry';
import type { EngineRunners } from '../infra/engine-runner';
import type { Logger } from '../infra/log';
import type { ResultCache } from '../infra/result-cache';
import type { DocketMetrics } from '../infra/metrics';
import { type EngineManifest, engineTaskQueue } from '../core/engine-manifest';

export interface EngineWorkersOptions {
  connection: NativeConnection;
  namespace: string;
  queuePrefix: string;
  registry: EngineRegistry;
  runners: EngineRunners;
  blobs: BlobStore;
  log: Logger;
  env: Record<string, string | undefined>;
  /** Engines this process serves; all when empty. */
  only?: string[];
  cache?: ResultCache;
  metrics?: DocketMetrics;
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

  /** Each engine's Temporal worker state (RUNNING while it polls), for the engines role's readiness. */
  states(): Array<{ engine: string; state: string }> {
    return [...this.running].map(([engine, running]) => ({ engine, state: running.worker.getState() }));
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
    await this.prepareRunners([...wanted.values()]);
    for (const [name, current] of this.running) {
      const manifest = wanted.get(name);
      if (!manifest || manifest.concurrency !== current.concurrency) await this.stop(name);
    }
    for (const manifest of wanted.values()) {
      if (!this.running.has(manifest.name)) await this.launch(manifest);
    }
  }

  /**
   * Lets each runner ready what its engines need before their first job (Docker creates and confines
   * the egress network), so whether egress engines are kept off the Docker host is in the log at
   * start, not at the first job. A failure here is only logged: each job tries again.
   */
  private async prepareRunners(manifests: EngineManifest[]): Promise<void> {
    for (const runner of this.options.runners.list()) {
      const served = manifests.filter((manifest) => manifest.runner === runner.kind);
      if (!served.length) continue;
      try {
        await runner.prepare(served);
      } catch (error) {
        this.options.log.warn(`engines: ${runner.title} cannot prepare for ${served.map((m) => m.name).join(', ')} yet: ${(error as Error).message}`);
      }
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
