import fc from 'fast-check';
import {
  ComplianceFinding,
  FINDING_KEY_MAX_LENGTH,
  MAX_FINDINGS_PER_EVENT,
  accountFor,
  findingKey,
  parseAutoTags,
  parseComplianceEvent,
  planRemediation,
  remediationRegion,
  singleAccountIdOf,
  validateComplianceAccounts,
  type ComplianceEvent,
} from '../../core/compliance';

/** A public S3 bucket as Dome9 continuous compliance reports it. */
const s3Finding = {
  policy: { name: 'Docket auto-remediation', description: 'Continuous compliance for production' },
  bundle: { name: 'AWS CIS Foundations v1.4.0', id: 284017 },
  reportTime: '2024-05-02T09:14:07.512Z',
  rule: {
    name: 'S3 Bucket should not be publicly accessible',
    ruleId: 'D9.AWS.NET.AG3.02',
    description: 'Public buckets expose their objects to anyone on the internet.',
    remediation: 'Turn on S3 Block Public Access for the bucket.',
    complianceTags: 'AUTO: s3_block_public_access|PCI 1.2.1',
    logic: "S3Bucket should not have acl.grants contain [uri like '%/global/AllUsers']",
    severity: 'High',
  },
  status: 'Failed',
  account: { id: '123456789012', name: 'acme-prod', vendor: 'aws' },
  region: 'N. Virginia',
  entity: {
    id: 'acme-public-assets',
    name: 'acme-public-assets',
    region: 'us_east_1',
    type: 'S3Bucket',
    accountNumber: '123456789012',
    tags: [{ key: 'team', value: 'web' }],
    versioning: { status: null, mfaDelete: false },
  },
  findingKey: 'oRv3dCq3+7Qb1VhZtWo0Ew',
};

/** An EC2 instance open to SSH from anywhere; the rule asks for two bots. */
const ec2Finding = {
  bundle: { name: 'Docket EC2 hygiene', id: 301122 },
  reportTime: '2024-05-02T09:14:08.004Z',
  rule: {
    name: 'Instance with SSH open to 0.0.0.0/0',
    ruleId: 'D9.AWS.NET.22',
    description: null,
    remediation: null,
    complianceTags: 'AUTO: ec2_stop_instance | CIS 4.1 |AUTO: tag_ec2_resource owner security-team',
    logic: "Instance should not have inboundRules contain [port=22 and scope='0.0.0.0/0']",
    severity: 'Critical',
  },
  status: 'failed',
  account: { id: '123456789012', name: 'acme-prod', vendor: 'aws' },
  entity: { id: 'i-0a1b2c3d4e5f67890', name: 'bastion-old', region: 'eu_west_1', type: 'Instance', vpc: { id: 'vpc-0f1e2d3c' } },
};

const passedFinding = {
  ...s3Finding,
  status: 'Passed',
  entity: { ...s3Finding.entity, id: 'acme-private-logs', name: 'acme-private-logs' },
};

const untaggedFinding = {
  ...ec2Finding,
  rule: { ...ec2Finding.rule, name: 'IAM user should have MFA', ruleId: 'D9.AWS.IAM.13', complianceTags: 'CIS 1.2|HIPAA' },
  entity: { id: 'AIDAXAMPLE0123456789', name: 'jdoe', region: '', type: 'IamUser' },
};

function parseFinding(doc: unknown): ComplianceFinding {
  return ComplianceFinding.parse(doc);
}

function findingsOf(event: ComplianceEvent): ComplianceFinding[] {
  if (!event.ok) throw new Error(event.error);
  if (event.kind !== 'findings') throw new Error(`expected findings, got ${event.kind}`);
  return event.findings;
}

function errorOf(event: ComplianceEvent): string {
  if (event.ok) throw new Error(`expected an error, got ${event.kind}`);
  return event.error;
}

function snsNotification(message: unknown) {
  return {
    Type: 'Notification',
    MessageId: '22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324',
    TopicArn: 'arn:aws:sns:us-east-1:123456789012:dome9-compliance',
    Subject: 'Dome9 compliance',
    Message: JSON.stringify(message),
    Timestamp: '2024-05-02T09:14:09.000Z',
    SignatureVersion: '1',
    Signature: 'EXAMPLEpH+...',
    SigningCertURL: 'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem',
  };
}

describe('compliance findings', () => {
  it('parses a failed S3 finding and keeps the fields Docket does not use', () => {
    const [finding] = findingsOf(parseComplianceEvent(s3Finding));
    expect(finding.status).toBe('Failed');
    expect(finding.bundle?.id).toBe('284017');
    expect(finding.entity).toMatchObject({ accountNumber: '123456789012', versioning: { status: null, mfaDelete: false } });
    expect(finding.findingKey).toBe('oRv3dCq3+7Qb1VhZtWo0Ew');
  });

  it('reads the status whatever its case, and accepts the nulls Dome9 sends for optional fields', () => {
    const [finding] = findingsOf(parseComplianceEvent(ec2Finding));
    expect(finding.status).toBe('Failed');
    expect(finding.rule.remediation).toBeNull();
  });

  it('names a missing entity.region', () => {
    const { region: _region, ...entity } = s3Finding.entity;
    expect(errorOf(parseComplianceEvent({ ...s3Finding, entity }))).toBe('entity.region: required');
  });

  it('names every missing required field', () => {
    const error = errorOf(parseComplianceEvent({ rule: { name: 'x' }, status: 'Failed', entity: { id: 'e' } }));
    for (const field of ['reportTime', 'rule.complianceTags', 'account', 'entity.name', 'entity.region']) {
      expect(error).toContain(`${field}: required`);
    }
  });

  it('refuses a status other than Passed or Failed, quoting it', () => {
    expect(errorOf(parseComplianceEvent({ ...s3Finding, status: 'Excluded' }))).toBe('status: expected Passed or Failed, got "Excluded"');
  });

  it('refuses a body that is not a finding at all', () => {
    expect(errorOf(parseComplianceEvent(null))).toContain('expected a Dome9 finding');
    expect(errorOf(parseComplianceEvent('{not json'))).toMatch(/^body is not JSON/);
  });
});

describe('batches', () => {
  it('accepts a JSON array of findings', () => {
    const findings = findingsOf(parseComplianceEvent([s3Finding, ec2Finding, passedFinding]));
    expect(findings.map((f) => f.entity.id)).toEqual(['acme-public-assets', 'i-0a1b2c3d4e5f67890', 'acme-private-logs']);
  });

  it('accepts an object with a findings array', () => {
    expect(findingsOf(parseComplianceEvent({ findings: [s3Finding, ec2Finding] }))).toHaveLength(2);
  });

  it('refuses the whole batch when one finding is bad, naming it by position', () => {
    const { region: _region, ...entity } = ec2Finding.entity;
    const bad = { ...ec2Finding, entity };
    expect(errorOf(parseComplianceEvent([s3Finding, passedFinding, bad]))).toBe('findings[2].entity.region: required');
    expect(errorOf(parseComplianceEvent({ findings: [s3Finding, passedFinding, bad] }))).toBe('findings[2].entity.region: required');
  });

  it('refuses a batch larger than one event may start', () => {
    const batch = Array.from({ length: MAX_FINDINGS_PER_EVENT + 1 }, () => s3Finding);
    expect(errorOf(parseComplianceEvent(batch))).toContain(`findings: at most ${MAX_FINDINGS_PER_EVENT} findings per event`);
  });

  it('reports the first issues of a very bad batch and counts the rest', () => {
    const error = errorOf(parseComplianceEvent(Array.from({ length: 20 }, () => ({}))));
    expect(error).toMatch(/^findings\[0\]\.reportTime: required/);
    expect(error).toMatch(/\(and \d+ more\)$/);
  });
});

describe('SNS', () => {
  it('unwraps a single finding from a Notification and keeps the message id', () => {
    const event = parseComplianceEvent(snsNotification(s3Finding));
    expect(findingsOf(event)[0].entity.id).toBe('acme-public-assets');
    expect(event).toMatchObject({ sns: { messageId: '22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324', topicArn: expect.stringContaining('dome9-compliance') } });
  });

  it('unwraps a batch from a Notification posted as text/plain', () => {
    const body = JSON.stringify(snsNotification({ findings: [s3Finding, ec2Finding] }));
    expect(findingsOf(parseComplianceEvent(body))).toHaveLength(2);
  });

  it('names the bad field inside the Message', () => {
    const { region: _region, ...entity } = ec2Finding.entity;
    expect(errorOf(parseComplianceEvent(snsNotification([s3Finding, { ...ec2Finding, entity }]))))
      .toBe('SNS Notification Message: findings[1].entity.region: required');
  });

  it('says when the Message is not JSON', () => {
    expect(errorOf(parseComplianceEvent({ ...snsNotification(s3Finding), Message: 'Dome9 says hi' })))
      .toMatch(/^SNS Notification Message is not JSON/);
  });

  it('returns a subscription confirmation for the gateway to confirm', () => {
    const event = parseComplianceEvent({
      Type: 'SubscriptionConfirmation',
      MessageId: '165545c9-2a5c-472c-8df2-7ff2be2b3b1b',
      Token: '2336412f37fb687f5d51e6e2425dacbba',
      TopicArn: 'arn:aws:sns:us-east-1:123456789012:dome9-compliance',
      Message: 'You have chosen to subscribe to the topic arn:aws:sns:us-east-1:123456789012:dome9-compliance.',
      SubscribeURL: 'https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:dome9-compliance&Token=2336412f37fb687f5d51e6e2425dacbba',
      Timestamp: '2024-05-02T09:00:00.000Z',
    });
    expect(event).toEqual({
      ok: true,
      kind: 'subscription-confirmation',
      subscribeUrl: expect.stringMatching(/^https:\/\/sns\.us-east-1\.amazonaws\.com\/\?Action=ConfirmSubscription/),
      token: '2336412f37fb687f5d51e6e2425dacbba',
      topicArn: 'arn:aws:sns:us-east-1:123456789012:dome9-compliance',
    });
  });

  it('refuses to confirm a subscription at a URL that is not SNS', () => {
    const error = errorOf(parseComplianceEvent({
      Type: 'SubscriptionConfirmation',
      Token: 't',
      TopicArn: 'arn:aws:sns:us-east-1:123456789012:dome9-compliance',
      SubscribeURL: 'http://169.254.169.254/latest/meta-data/',
    }));
    expect(error).toContain('SubscribeURL: not an https://sns.<region>.amazonaws.com URL');
  });

  it('acknowledges an unsubscribe confirmation and refuses unknown SNS types', () => {
    expect(parseComplianceEvent({ Type: 'UnsubscribeConfirmation', TopicArn: 'arn:aws:sns:us-east-1:1:t', Message: 'bye' }))
      .toEqual({ ok: true, kind: 'unsubscribe-confirmation', topicArn: 'arn:aws:sns:us-east-1:1:t' });
    expect(errorOf(parseComplianceEvent({ Type: 'Shrug', TopicArn: 'arn:aws:sns:us-east-1:1:t' }))).toContain('unsupported SNS message type "Shrug"');
  });
});

describe('AUTO tags', () => {
  it('reads each AUTO part of a |-separated list and ignores the rest', () => {
    expect(parseAutoTags(ec2Finding.rule.complianceTags)).toEqual([
      { bot: 'ec2_stop_instance', params: [] },
      { bot: 'tag_ec2_resource', params: ['owner', 'security-team'] },
    ]);
  });

  it('tolerates any case and a missing space, keeps the case of params, and lower-cases the bot', () => {
    expect(parseAutoTags('auto:EC2_Stop_Instance|Auto:  tag_ec2_resource   Owner\tSecurity-Team ')).toEqual([
      { bot: 'ec2_stop_instance', params: [] },
      { bot: 'tag_ec2_resource', params: ['Owner', 'Security-Team'] },
    ]);
  });

  it('finds nothing in an empty string, plain tags, an AUTO without a bot, or AUTO not at the start', () => {
    expect(parseAutoTags('')).toEqual([]);
    expect(parseAutoTags('CIS 1.2|HIPAA')).toEqual([]);
    expect(parseAutoTags('AUTO:|AUTO:   ')).toEqual([]);
    expect(parseAutoTags('NOT AUTO: s3_delete_bucket')).toEqual([]);
  });
});

describe('remediation plans', () => {
  const knownBots = ['s3_block_public_access', 'ec2_stop_instance', 'tag_ec2_resource'];

  it('plans the S3 bot for the failed S3 finding', () => {
    expect(planRemediation(parseFinding(s3Finding), knownBots)).toEqual({
      kind: 'remediate',
      actions: [{ bot: 's3_block_public_access', params: [], known: true }],
    });
  });

  it('plans one action per AUTO tag, in order', () => {
    expect(planRemediation(parseFinding(ec2Finding), knownBots)).toEqual({
      kind: 'remediate',
      actions: [
        { bot: 'ec2_stop_instance', params: [], known: true },
        { bot: 'tag_ec2_resource', params: ['owner', 'security-team'], known: true },
      ],
    });
  });

  it('skips a passed finding even when its rule has AUTO tags', () => {
    expect(planRemediation(parseFinding(passedFinding), knownBots)).toEqual({ kind: 'skip', reason: 'status Passed: nothing to remediate' });
  });

  it('skips a failed finding whose rule has no AUTO tag', () => {
    const plan = planRemediation(parseFinding(untaggedFinding), knownBots);
    expect(plan).toEqual({ kind: 'skip', reason: expect.stringContaining('no AUTO: tag') });
  });

  it('reports an unknown bot without dropping the known ones', () => {
    const finding = parseFinding({ ...ec2Finding, rule: { ...ec2Finding.rule, complianceTags: 'AUTO: ec2_quarantine_instance sg-0123|AUTO: ec2_stop_instance' } });
    expect(planRemediation(finding, knownBots)).toEqual({
      kind: 'remediate',
      actions: [
        { bot: 'ec2_quarantine_instance', params: ['sg-0123'], known: false },
        { bot: 'ec2_stop_instance', params: [], known: true },
      ],
    });
  });
});

describe('finding keys', () => {
  const WORKFLOW_ID_SAFE = /^[\x21-\x7e]+$/;

  it('reads as account, rule id, entity and report time when they are plain', () => {
    expect(findingKey(parseFinding(ec2Finding))).toBe('compliance~123456789012~D9.AWS.NET.22~i-0a1b2c3d4e5f67890~2024-05-02T09:14:08.004Z');
  });

  it('uses the rule name when the rule has no id, hashing what is not safe', () => {
    const finding = parseFinding({ ...s3Finding, rule: { ...s3Finding.rule, ruleId: '' } });
    const key = findingKey(finding);
    expect(key).toMatch(/^compliance~123456789012~S3-Bucket-should-not-be-publicly=[0-9a-f]{16}~acme-public-assets~/);
    expect(key).toMatch(WORKFLOW_ID_SAFE);
  });

  const text = fc.string({ unit: 'binary', maxLength: 300 });
  const findingArb = fc.record({
    accountId: text, ruleName: text, ruleId: fc.option(text, { nil: undefined }), entityId: text, reportTime: text,
  }).map(({ accountId, ruleName, ruleId, entityId, reportTime }) => ({
    reportTime,
    status: 'Failed' as const,
    rule: { name: ruleName, ruleId, complianceTags: '' },
    account: { id: accountId },
    entity: { id: entityId, name: 'n', region: 'us_east_1' },
  }) as ComplianceFinding);

  it('is always a bounded string without whitespace or control characters', () => {
    fc.assert(fc.property(findingArb, (finding) => {
      const key = findingKey(finding);
      expect(key).toMatch(WORKFLOW_ID_SAFE);
      expect(key.length).toBeLessThanOrEqual(FINDING_KEY_MAX_LENGTH);
    }), { numRuns: 500 });
  });

  it('is the same for the same finding, even parsed again', () => {
    fc.assert(fc.property(findingArb, (finding) => {
      expect(findingKey(finding)).toBe(findingKey(structuredClone(finding)));
    }));
    expect(findingKey(parseFinding(s3Finding))).toBe(findingKey(findingsOf(parseComplianceEvent(snsNotification(s3Finding)))[0]));
  });

  it('differs when the entity differs', () => {
    fc.assert(fc.property(findingArb, text, (finding, otherEntity) => {
      fc.pre(otherEntity !== finding.entity.id);
      const other = { ...finding, entity: { ...finding.entity, id: otherEntity } };
      expect(findingKey(other)).not.toBe(findingKey(finding));
    }), { numRuns: 500 });
  });

  it('keeps apart ids that only differ in characters it has to replace', () => {
    const key = (entityId: string) => findingKey({ ...parseFinding(s3Finding), entity: { ...s3Finding.entity, id: entityId } } as ComplianceFinding);
    expect(key('arn:aws:iam::123456789012:role/a b')).not.toBe(key('arn:aws:iam::123456789012:role/a_b'));
    expect(key('a~b')).not.toBe(key('a-b'));
  });

  it('differs when the same failure is reported again later', () => {
    const later = parseFinding({ ...s3Finding, reportTime: '2024-05-02T10:14:07.512Z' });
    expect(findingKey(later)).not.toBe(findingKey(parseFinding(s3Finding)));
  });
});

describe('accounts', () => {
  const doc = {
    accounts: {
      '123456789012': { name: 'acme-prod', accessKeyIdEnv: 'PROD_AWS_ACCESS_KEY_ID', secretAccessKeyEnv: 'PROD_AWS_SECRET_ACCESS_KEY' },
      '210987654321': { roleArn: 'arn:aws:iam::210987654321:role/docket-remediation', region: 'eu-west-1' },
    },
  };

  function configOf(value: unknown) {
    const result = validateComplianceAccounts(value, 'DOCKET_COMPLIANCE_ACCOUNTS');
    if (!result.ok) throw new Error(result.error);
    return result.config;
  }

  it('finds the configured account of a finding', () => {
    const config = configOf(doc);
    const choice = accountFor(parseFinding(s3Finding), config.accounts, singleAccountIdOf(config));
    expect(choice).toEqual({ ok: true, accountId: '123456789012', account: expect.objectContaining({ name: 'acme-prod', region: 'us-east-1' }) });
  });

  it('refuses a finding from an account that is not configured', () => {
    const finding = parseFinding({ ...s3Finding, account: { id: '999999999999' } });
    expect(accountFor(finding, configOf(doc).accounts)).toEqual({ ok: false, reason: expect.stringMatching(/^account 999999999999 is not configured/) });
  });

  it('does not take an account id such as "constructor" from the object prototype', () => {
    const finding = parseFinding({ ...s3Finding, account: { id: 'constructor' } });
    expect(accountFor(finding, configOf(doc).accounts).ok).toBe(false);
  });

  it('in single-account mode refuses findings from other accounts', () => {
    const config = configOf({ singleAccount: true, accounts: { '123456789012': doc.accounts['123456789012'] } });
    expect(singleAccountIdOf(config)).toBe('123456789012');
    const finding = parseFinding({ ...s3Finding, account: { id: '210987654321' } });
    const choice = accountFor(finding, { ...config.accounts, ...configOf(doc).accounts }, singleAccountIdOf(config));
    expect(choice).toEqual({ ok: false, reason: expect.stringMatching(/^single-account mode: findings from other accounts are refused/) });
  });

  it('names what is wrong in an account entry', () => {
    const result = validateComplianceAccounts({
      singleAccount: true,
      accounts: {
        '111111111111': { accessKeyIdEnv: 'KEY' },
        '222222222222': { region: 'eu-west-1' },
        '333333333333': { roleArn: 'docket-remediation' },
      },
    }, 'compliance.yaml');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toMatch(/^compliance\.yaml: /);
    expect(result.error).toContain('accounts.111111111111.secretAccessKeyEnv: required with accessKeyIdEnv');
    expect(result.error).toContain('accounts.222222222222: give accessKeyIdEnv and secretAccessKeyEnv, or roleArn to assume');
    expect(result.error).toContain('accounts.333333333333.roleArn: an IAM role ARN');
    expect(result.error).toContain('singleAccount: single-account mode needs exactly one entry in accounts, found 3');
  });

  it('acts in the entity region written the AWS way, or the account region for global entities', () => {
    const account = configOf(doc).accounts['210987654321'];
    expect(remediationRegion(parseFinding(ec2Finding), account)).toBe('eu-west-1');
    expect(remediationRegion(parseFinding(s3Finding), account)).toBe('us-east-1');
    expect(remediationRegion(parseFinding(untaggedFinding), { ...account, region: 'ap-southeast-2' })).toBe('ap-southeast-2');
  });
});
