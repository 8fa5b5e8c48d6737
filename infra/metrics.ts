import { Counter, Histogram, Registry } from 'prom-client';

/** How one engine job ended; the engine report's status, or `error` when the activity threw. */
export type EngineOutcome = 'success' | 'failure' | 'timeout' | 'error';

/**
 * Every Prometheus metric Docket exports, on a registry passed in, so one process serves the gateway's
 * and the engine workers' metrics from one `/metrics`, and a test reads a registry of its own.
 */
export class DocketMetrics {
  private readonly httpRequests: Counter<'route' | 'method' | 'status'>;
  private readonly httpSeconds: Histogram<'route' | 'method'>;
  private readonly engineJobs: Counter<'engine' | 'outcome'>;
  private readonly engineSeconds: Histogram<'engine'>;

  constructor(readonly registry: Registry = new Registry()) {
    this.httpRequests = new Counter({
      name: 'docket_http_requests_total',
      help: 'HTTP requests answered by the gateway, by route pattern, method and status code.',
      labelNames: ['route', 'method', 'status'],
      registers: [registry],
    });
    this.httpSeconds = new Histogram({
      name: 'docket_http_request_duration_seconds',
      help: 'Time to answer an HTTP request, by route pattern and method.',
      labelNames: ['route', 'method'],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers: [registry],
    });
    this.engineJobs = new Counter({
      name: 'docket_engine_jobs_total',
      help: 'Engine jobs finished, by engine and outcome (success, failure, timeout, error).',
      labelNames: ['engine', 'outcome'],
      registers: [registry],
    });
    this.engineSeconds = new Histogram({
      name: 'docket_engine_run_seconds',
      help: 'Wall time of one engine container run, by engine.',
      labelNames: ['engine'],
      buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
      registers: [registry],
    });
  }

  /** `route` is the route's pattern (`/result/:id`), never the URL, so the label set stays small. */
  httpRequest(route: string, method: string, status: number, seconds: number): void {
    this.httpRequests.inc({ route, method, status: String(status) });
    this.httpSeconds.observe({ route, method }, seconds);
  }

  /** One finished engine job; `seconds` is left out when the container never ran. */
  engineJob(engine: string, outcome: EngineOutcome, seconds?: number): void {
    this.engineJobs.inc({ engine, outcome });
    if (seconds !== undefined) this.engineSeconds.observe({ engine }, seconds);
  }
}
