import { approvalFor, evaluatePolicy, Policy, REQUEST_EXPIRY_MS, requestedResponses } from '../../core/policy';

const policy = (rules: unknown[]) => Policy.parse({ rules });
const url = { type: 'url' as const, data: 'https://x.invalid/' };
const domain = { type: 'domain' as const, data: 'x.invalid' };
const blocklist = { name: 'blocklist', accepts: ['url', 'domain', 'ip', 'fqdn'] };

describe('the approval a responder asked for by name waits for', () => {
  it('is required when no rule names the responder', () => {
    expect(approvalFor(policy([]), 'blocklist', 'required')).toEqual({ approval: 'required', expiryMs: REQUEST_EXPIRY_MS, rules: [] });
  });

  it('is none only when every rule naming the responder says none, whatever their conditions', () => {
    const rules = [
      { name: 'vip', when: { tags: ['vip'] }, respond: ['blocklist'], approval: 'none' },
      { name: 'feeds', when: { verdict: 'malicious' }, respond: ['blocklist', 'ticket'], approval: 'none' },
    ];
    expect(approvalFor(policy(rules), 'blocklist', 'required')).toMatchObject({ approval: 'none', rules: ['vip', 'feeds'] });
  });

  it('is required, for the shortest expiry, when one rule naming the responder requires it', () => {
    const rules = [
      { name: 'vip', respond: ['blocklist'], approval: 'none' },
      { name: 'slow', respond: ['blocklist'], approval: 'required', expiry: '24h' },
      { name: 'quick', respond: ['blocklist'], approval: 'required', expiry: '30m' },
    ];
    expect(approvalFor(policy(rules), 'blocklist', 'none')).toEqual({ approval: 'required', expiryMs: 30 * 60_000, rules: ['slow', 'quick'] });
  });

  it('follows the caller\'s default for an unnamed responder (an AUTO: tag is a standing order)', () => {
    const rules = [{ name: 'block', respond: ['blocklist'], approval: 'required' }];
    expect(approvalFor(policy(rules), 'ec2_stop_instance', 'none').approval).toBe('none');
    expect(approvalFor(policy(rules), 'blocklist', 'none').approval).toBe('required');
  });
});

describe('responses asked for by name', () => {
  it('become one pending response per observable the responder accepts, naming the requester', () => {
    const { planned, errors } = requestedResponses(policy([]), [blocklist], [url, { type: 'hash', data: 'a'.repeat(64) }], 'alice', []);
    expect(errors).toEqual([]);
    expect(planned).toEqual([{ responder: 'blocklist', observable: url, rule: 'requested by alice', approval: 'required', expiryMs: REQUEST_EXPIRY_MS }]);
  });

  it('run without approval only when the policy says none for the responder', () => {
    const { planned } = requestedResponses(policy([{ name: 'trusted', respond: ['blocklist'], approval: 'none' }]), [blocklist], [domain], 'schedule nightly', []);
    expect(planned).toEqual([expect.objectContaining({ approval: 'none', rule: 'requested by schedule nightly' })]);
  });

  it('leave a pair the policy already selected to the policy\'s response', () => {
    const rules = policy([{ name: 'block malicious', respond: ['blocklist'], approval: 'required' }]);
    const selected = evaluatePolicy(rules, [{ observable: url, verdict: 'malicious', engines: [] }]);
    const { planned } = requestedResponses(rules, [blocklist], [url, domain], 'alice', selected);
    expect(planned.map((response) => response.observable)).toEqual([domain]);
  });

  it('say why nothing was asked of an undeclared responder or one that accepts none of the observables', () => {
    const { planned, errors } = requestedResponses(policy([]), [{ name: 'gone' }, { name: 'isolate', accepts: ['hostname'] }], [url], 'alice', []);
    expect(planned).toEqual([]);
    expect(errors).toEqual([
      'responder gone was asked for but is not declared on the worker; nothing was done with it',
      'responder isolate was asked for, but it acts on hostname and no observable given is one',
    ]);
  });
});
