import { cronProblem, validateSchedule, type ScheduleResult } from '../../core/schedule-definition';

/** Halo's nightly "scan all servers" beat task, as a cron schedule. */
const nightlySweep = {
  id: 'nightly-ioc-sweep',
  description: 'Re-check yesterday\'s indicators against the threat feeds',
  cron: '30 2 * * MON-FRI',
  timezone: 'Europe/Paris',
  action: {
    investigate: {
      observables: [{ type: 'domain', data: 'updates.evil-cdn.example' }, { type: 'ip', data: '203.0.113.77' }],
      engines: ['virustotal', 'abuseipdb'],
    },
  },
  notify: [{ slack: '#soc-alerts' }, { webhook: 'https://hooks.example.com/docket/nightly' }],
};

/** A feed refresh every quarter hour, five minutes past the mark. */
const feedRefresh = {
  id: 'feed_refresh',
  interval: '15m',
  offset: '5m',
  action: { run: { engine: 'misp-sync', args: ['--since', '1h'], env: { MISP_URL: 'https://misp.internal', MISP_KEY: '${MISP_API_KEY}' } } },
  overlap: 'buffer_one',
  catchupWindow: '10m',
};

function errorOf(result: ScheduleResult): string {
  if (result.ok) throw new Error('expected the schedule to be refused');
  return result.error;
}

describe('schedule definitions', () => {
  it('accepts a cron schedule and fills in the defaults', () => {
    const result = validateSchedule(nightlySweep, 'schedules/nightly-ioc-sweep.yaml');
    if (!result.ok) throw new Error(result.error);
    expect(result.schedule).toEqual({
      ...nightlySweep,
      action: { investigate: { ...nightlySweep.action.investigate, observables: nightlySweep.action.investigate.observables } },
      overlap: 'skip',
      catchupWindow: 60_000,
      paused: false,
    });
    expect(result.schedule.interval).toBeUndefined();
  });

  it('accepts an interval schedule with an offset, in milliseconds', () => {
    const result = validateSchedule(feedRefresh, 'schedules/feed_refresh.yaml');
    if (!result.ok) throw new Error(result.error);
    expect(result.schedule).toMatchObject({
      id: 'feed_refresh', interval: 900_000, offset: 300_000, timezone: 'UTC', overlap: 'buffer_one', catchupWindow: 600_000,
      description: '', paused: false, notify: [],
      action: { run: { engine: 'misp-sync', args: ['--since', '1h'], env: { MISP_KEY: '${MISP_API_KEY}' } } },
    });
    expect(result.schedule.cron).toBeUndefined();
  });

  it('accepts the cron macros and normalizes spacing', () => {
    for (const cron of ['@hourly', '@daily', '@weekly', '@monthly', '@yearly', '@midnight']) {
      expect(validateSchedule({ ...nightlySweep, cron }, 'x.yaml').ok).toBe(true);
    }
    const result = validateSchedule({ ...nightlySweep, cron: '  */5   9-17 * jan,jul 1-5/2 ' }, 'x.yaml');
    if (!result.ok) throw new Error(result.error);
    expect(result.schedule.cron).toBe('*/5 9-17 * jan,jul 1-5/2');
  });

  it('accepts an investigation from text alone, and a paused schedule', () => {
    const result = validateSchedule({ ...nightlySweep, paused: true, action: { investigate: { text: 'beacon to 198.51.100.9' } } }, 'x.yaml');
    if (!result.ok) throw new Error(result.error);
    expect(result.schedule.paused).toBe(true);
    expect(result.schedule.action.investigate?.observables).toEqual([]);
  });

  const withoutCron = (({ cron: _cron, ...rest }) => rest)(nightlySweep);

  it.each<[string, Record<string, unknown>, string]>([
    ['no id', { id: undefined }, 'id: required'],
    ['an id that is not a slug', { id: 'Nightly Sweep' }, 'id: a slug'],
    ['a cron with six fields', { cron: '0 30 2 * * *' }, 'cron: expected 5 fields'],
    ['a cron hour out of range', { cron: '0 25 * * *' }, 'cron: hour: "25" is not a valid hour (0-23)'],
    ['a cron month name that is not one', { cron: '0 2 * Smarch *' }, 'cron: month: "Smarch" is not a valid month'],
    ['a cron range that runs backwards', { cron: '0 2 * * FRI-MON' }, 'cron: day of week: range FRI-MON runs backwards'],
    ['a cron step of zero', { cron: '*/0 * * * *' }, 'cron: minute: step "0" is not a positive whole number'],
    ['an unknown cron macro', { cron: '@fortnightly' }, 'cron: unknown macro @fortnightly'],
    ['both cron and interval', { interval: '1h' }, 'interval: give cron or interval, not both'],
    ['an offset without interval', { offset: '5m' }, 'offset: only meaningful with interval'],
    ['a timezone that is not an IANA name', { timezone: 'Paris time' }, 'timezone: an IANA time zone name'],
    ['no action', { action: undefined }, 'action: required: investigate or run'],
    ['an action that both investigates and runs', { action: { ...nightlySweep.action, run: { engine: 'yara' } } }, 'action: give investigate or run, not both'],
    ['an action that does neither', { action: {} }, 'action: give investigate or run'],
    ['an investigation with nothing to look at', { action: { investigate: { engines: ['virustotal'] } } }, 'action.investigate.observables: give at least one observable'],
    ['an observable of an unknown type', { action: { investigate: { observables: [{ type: 'hostname', data: 'a.example' }] } } }, 'action.investigate.observables.0.type'],
    ['an engine name with capitals', { action: { investigate: { text: 'x', engines: ['VirusTotal'] } } }, 'action.investigate.engines.0: an engine name'],
    ['a run without an engine', { action: { run: { args: ['x'] } } }, 'action.run.engine: required'],
    ['an env value mixing a literal and a placeholder', { action: { run: { engine: 'yara', env: { AUTH: 'Bearer ${TOKEN}' } } } }, 'action.run.env.AUTH: a literal, or ${NAME} alone'],
    ['an unknown overlap policy', { overlap: 'queue' }, 'overlap'],
    ['a catch-up window without a unit', { catchupWindow: '90' }, 'catchupWindow: expected a duration with its unit'],
    ['a catch-up window shorter than Temporal allows', { catchupWindow: '5s' }, 'catchupWindow: at least 10s'],
    ['paused as text', { paused: 'yes' }, 'paused'],
    ['a webhook that is not a URL', { notify: [{ webhook: 'hooks.example.com/x' }] }, 'notify.0.webhook: an http(s) URL'],
    ['a Slack channel without #', { notify: [{ slack: 'soc alerts' }] }, 'notify.0.slack: a Slack channel'],
    ['a notify entry with two targets', { notify: [{ slack: '#soc', webhook: 'https://hooks.example.com/x' }] }, 'notify.0: one target per entry'],
    ['a misspelt field', { pasued: true }, 'pasued'],
  ])('refuses %s, naming the field', (_what, change, expected) => {
    const error = errorOf(validateSchedule({ ...nightlySweep, ...change }, 'schedules/nightly.yaml'));
    expect(error).toMatch(/^schedules\/nightly\.yaml: /);
    expect(error).toContain(expected);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['neither cron nor interval', {}, "cron: required: give cron (such as '0 * * * *') or interval"],
    ['an interval without a unit', { interval: 15 }, 'interval: expected a duration such as 15m'],
    ['an interval string without a unit', { interval: '15' }, 'interval: expected a duration with its unit'],
    ['an interval under a minute', { interval: '30s' }, 'interval: at least 1m'],
    ['an offset as long as the interval', { interval: '1h', offset: '1h' }, 'offset: must be shorter than interval'],
    ['an offset that is not a duration', { interval: '1h', offset: 'soon' }, 'offset: expected a duration'],
  ])('refuses %s in an interval schedule', (_what, change, expected) => {
    expect(errorOf(validateSchedule({ ...withoutCron, ...change }, 'x.yaml'))).toContain(expected);
  });

  it('reports every mistake in one pass, including the missing cron or interval', () => {
    const error = errorOf(validateSchedule({ ...withoutCron, id: 'X', overlap: 'queue', notify: [{}] }, 'x.yaml'));
    for (const field of ['id:', 'overlap:', 'notify.0: give webhook or slack', 'cron: required']) expect(error).toContain(field);
  });

  it('refuses a document that is not a mapping', () => {
    expect(errorOf(validateSchedule('cron: 0 * * * *', 'x.yaml'))).toContain('x.yaml: (top level)');
  });
});

describe('cron expressions', () => {
  it.each(['0 * * * *', '*/15 * * * *', '0 9-17/2 * * 1-5', '0 0 1,15 * ?', '0 0 * * 7', '0 12 ? DEC SUN'])('accepts %s', (cron) => {
    expect(cronProblem(cron)).toBeUndefined();
  });

  it.each(['', '* * * *', '60 * * * *', '0 0 0 * *', '0 0 * 13 *', '0 0 * * 8', '1-2-3 * * * *', '0 0 * * ?/2/3', '0 ? * * *'])('refuses %j', (cron) => {
    expect(cronProblem(cron)).toBeDefined();
  });
});
