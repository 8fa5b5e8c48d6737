import { Counter, Histogram, Registry } from 'prom-client';

/** How one engine job ended; the engine report's status, or `error` when the activity threw. */
export type EngineOutcome = 'success' | 'failure' | 'timeout' | 'error';

/** Which metric families a process records: the gateway's HTTP answers, the engine workers' jobs, or both (`docket all`). */
export interface MetricFamilies {
  http: boolean;
  engines: boolean;
}

/**
 * Every Prometheus metric Docket exports, on a registry passed in (a test reads a registry of its own).
 * Each role registers only the families it records, so the gateway's `/metrics` holds no engine series
 * stuck at zero: engine job counters live in the engines role's registry, which its role server
 * (system/role-server.ts) serves. Only `docket all` serves both from one registry.
 */
export class DocketMetrics {
  private readonly httpRequests?: Counter<'route' | 'method' | 'status'>;
  private readonly httpSeconds?: Histogram<'route' | 'method'>;
  private readonly engineJobs?: Counter<'engine' | 'outcome'>;
  private readonly engineSeconds?: Histogram<'engine'>;

  constructor(readonly registry: Registry = new Registry(), families: MetricFamilies = { http: true, engines: true }) {
    if (families.http) {
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
    }
    if (families.engines) {
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
  }

  /** `route` is the route's pattern (`/result/:id`), never the URL, so the label set stays small. */
  httpRequest(route: string, method: string, status: number, seconds: number): void {
    this.httpRequests?.inc({ route, method, status: String(status) });
    this.httpSeconds?.observe({ route, method }, seconds);
  }

  /** One finished engine job; `seconds` is left out when the container never ran. */
  engineJob(engine: string, outcome: EngineOutcome, seconds?: number): void {
    this.engineJobs?.inc({ engine, outcome });
    if (seconds !== undefined) this.engineSeconds?.observe({ engine }, seconds);
  }
}
