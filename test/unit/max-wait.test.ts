import { ConfigError, loadConfig } from '../../core/config';
import { jsonSchema } from '../../gateway/schemas';
import { MAX_WAIT_MS, waitParam } from '../../gateway/long-poll';

/** DOCKET_MAX_WAIT: how long a read may be held open, as the configuration reads it and `?wait=` enforces and documents it. */
describe('the longest wait a read may ask for', () => {
  it('is 10 minutes unless DOCKET_MAX_WAIT says less, and refuses a setting it cannot read or past 10 minutes', () => {
    expect(loadConfig({}).maxWaitMs).toBe(600_000);
    expect(loadConfig({ DOCKET_MAX_WAIT: '1s' }).maxWaitMs).toBe(1000);
    expect(loadConfig({ DOCKET_MAX_WAIT: '0' }).maxWaitMs).toBe(0);
    expect(() => loadConfig({ DOCKET_MAX_WAIT: 'soon' })).toThrow(/DOCKET_MAX_WAIT.*not a duration/);
    expect(() => loadConfig({ DOCKET_MAX_WAIT: '11m' })).toThrow(ConfigError);
  });

  it('takes ?wait= up to 60 s by default and refuses more with a message naming the bound', () => {
    const wait = waitParam();
    expect(wait.safeParse('60s').success).toBe(true);
    const refused = wait.safeParse('61s');
    expect(refused.success).toBe(false);
    expect(refused.error?.issues[0].message).toBe('wait is at most 60s');
    expect(waitParam(MAX_WAIT_MS * 10).safeParse('61s').success).toBe(false);
  });

  it('takes ?wait= up to a shorter DOCKET_MAX_WAIT, refuses more naming the setting, and documents the bound', () => {
    const wait = waitParam(1000);
    expect(wait.safeParse('1s').success).toBe(true);
    expect(wait.safeParse('1000ms').success).toBe(true);
    expect(wait.safeParse(undefined).success).toBe(true);
    const refused = wait.safeParse('2');
    expect(refused.success).toBe(false);
    expect(refused.error?.issues[0].message).toBe('wait is at most 1s on this gateway (DOCKET_MAX_WAIT)');
    expect(JSON.stringify(jsonSchema(wait, 'input'))).toContain('at most 1s on this gateway');
    expect(waitParam(0).safeParse('0').success).toBe(true);
    expect(waitParam(0).safeParse('1ms').success).toBe(false);
  });
});
