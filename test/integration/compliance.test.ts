import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { KeyStore } from '../../gateway/keys';
import type { ComplianceReport } from '../../core/compliance';
import { type AwsEmulator, startAwsEmulator } from '../helpers/aws-emulator';
import { enginesFolder } from '../helpers/fixtures';
import { poll, ROOT, startTestSystem, type TestSystem } from '../helpers/system';
import { startWebhookReceiver } from '../helpers/webhook-receiver';

const ACCOUNT = '123456789012';
const BUCKET = 'docket-public-bucket';

/**
 * Dome9 / CloudGuard findings remediated by real AWS bots (Python, boto3, in confined containers)
 * against a local AWS emulator that the bots reach only through a Docker network this test creates.
 */
describe('compliance events', () => {
  const sample = (name: string) => parseYaml(readFileSync(join(ROOT, 'engines', name, 'engine.yaml'), 'utf8'));
  const accountsFile = join(tmpdir(), `docket-accounts-${randomBytes(4).toString('hex')}.yaml`);
  const secret = `secret-${randomBytes(8).toString('hex')}`;
  let aws: AwsEmulator;
  let docket: TestSystem;
  let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
  let key: string;
  let instance: string;
  let reported = 0;

  /** A failed finding as Dome9 sends it, with a report time of its own so each test's key is new. */
  const finding = (complianceTags: string, entity: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    reportTime: new Date(Date.UTC(2026, 0, 10, 10, 0, (reported += 1))).toISOString(),
    status: 'Failed',
    findingKey: 'dome9-opaque-key',
    policy: { name: 'AWS CIS Foundations', description: null },
    bundle: { name: 'CIS', id: 21 },
    rule: { name: 'resource must be remediated', ruleId: 'D9.AWS.TEST.01', complianceTags, severity: 'High', logic: null },
    account: { id: ACCOUNT, name: 'test account', vendor: 'aws' },
    region: 'N. Virginia',
    entity: { region: 'us_east_1', type: 'Instance', ...entity },
    ...extra,
  });
  const send = async (body: unknown, options: { contentType?: string; as?: string | null } = {}) => {
    const headers: Record<string, string> = { 'content-type': options.contentType ?? 'application/json' };
    if (options.as !== null) headers.authorization = `Bearer ${options.as ?? key}`;
    const response = await fetch(`${docket.baseUrl}/v1/events/compliance`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: response.status, body: (await response.json()) as any };
  };
  const result = (workflowId: string) => docket.client.workflow.getHandle(workflowId).result() as Promise<ComplianceReport>;
  const botNotices = (workflowId: string) => receiver.received.map((r) => JSON.parse(r.body)).filter((b) => b.data?.compliance?.workflowId === workflowId);

  beforeAll(async () => {
    aws = await startAwsEmulator();
    receiver = await startWebhookReceiver();
    // The engine workers expand the bots' ${NAME} references from this process's environment.
    Object.assign(process.env, { DOCKET_AWS_ENDPOINT_URL: aws.endpoint, DOCKET_TEST_AWS_KEY_ID: 'AKIDDOCKETTEST', DOCKET_TEST_AWS_SECRET: secret });
    writeFileSync(accountsFile, stringify({
      singleAccount: true,
      accounts: { [ACCOUNT]: { name: 'test account', accessKeyIdEnv: 'DOCKET_TEST_AWS_KEY_ID', secretAccessKeyEnv: 'DOCKET_TEST_AWS_SECRET', region: 'us-east-1' } },
    }));
    docket = await startTestSystem({
      enginesDir: enginesFolder(['s3_block_public_access', 'ec2_stop_instance', 'tag_ec2_resource'].map(sample)),
      env: { DOCKET_ACCOUNTS_FILE: accountsFile, DOCKET_EGRESS_NETWORK: aws.network, DOCKET_WEBHOOK_URL: receiver.url },
    });
    key = (await new KeyStore(join(docket.dataDir, 'keys.json')).create('dome9', 'respond')).key;
    const created = await aws.python(`
import boto3, json, os
kw = dict(endpoint_url=os.environ['MOTO_ENDPOINT'], region_name='us-east-1')
boto3.client('s3', **kw).create_bucket(Bucket='${BUCKET}')
ec2 = boto3.client('ec2', **kw)
image = ec2.describe_images(Owners=['amazon'])['Images'][0]['ImageId']
print(json.dumps(ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType='t3.micro')['Instances'][0]['InstanceId']))
`);
    instance = created as string;
  });
  afterAll(async () => {
    await docket?.close();
    await receiver?.close();
    await aws?.close();
    rmSync(accountsFile, { force: true });
  });

  it('blocks public access on the bucket a finding names, once, however often the finding is sent', async () => {
    const event = finding('AUTO: s3_block_public_access | PCI', { id: BUCKET, name: BUCKET, type: 'S3Bucket' });
    const first = await send(event);
    expect(first.status).toBe(202);
    const [answer] = first.body.findings;
    expect(answer).toMatchObject({ result: 'started', bots: [{ bot: 's3_block_public_access', params: [], known: true }], unknownBots: [] });
    expect(answer.workflowId).toMatch(/^compliance~123456789012~D9\.AWS\.TEST\.01~docket-public-bucket~/);

    const report = await result(answer.workflowId);
    expect(report).toMatchObject({ status: 'Success', accountId: ACCOUNT, region: 'us-east-1' });
    expect(report.bots).toEqual([expect.objectContaining({ bot: 's3_block_public_access', outcome: 'passed', message: `blocked all public access to S3 bucket ${BUCKET}` })]);
    const block = await aws.python(`
import boto3, json, os
s3 = boto3.client('s3', endpoint_url=os.environ['MOTO_ENDPOINT'], region_name='us-east-1')
print(json.dumps(s3.get_public_access_block(Bucket='${BUCKET}')['PublicAccessBlockConfiguration']))
`);
    expect(block).toEqual({ BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true });

    // SNS posts the same finding again, wrapped and as text/plain.
    const sns = { Type: 'Notification', MessageId: 'm-1', TopicArn: 'arn:aws:sns:us-east-1:123456789012:dome9', Message: JSON.stringify(event) };
    const again = await send(JSON.stringify(sns), { contentType: 'text/plain; charset=UTF-8' });
    expect(again.status).toBe(200);
    expect(again.body.findings[0]).toMatchObject({ result: 'duplicate', workflowId: answer.workflowId });
    const runs: string[] = [];
    for await (const run of docket.client.workflow.list({ query: `WorkflowId = '${answer.workflowId}'` })) runs.push(run.runId);
    expect(runs).toHaveLength(1);

    // The account's secret reached the bot, through the engine worker, and never the workflow history.
    const history = await docket.client.workflow.getHandle(answer.workflowId).fetchHistory();
    // Payloads appear base64-encoded in the history's JSON form.
    const text = JSON.stringify(history).replace(/"data":"([A-Za-z0-9+/=]+)"/g, (_, data: string) => Buffer.from(data, 'base64').toString('utf8'));
    expect(text).toContain('${DOCKET_TEST_AWS_SECRET}');
    expect(text).not.toContain(secret);
  });

  it('stops an instance and then tags it, and reports each bot to the notification targets', async () => {
    const event = finding('AUTO: ec2_stop_instance | AUTO: tag_ec2_resource owner security-team', { id: instance, name: 'web-1' });
    const { body } = await send(event);
    const [answer] = body.findings;
    expect(answer.bots).toEqual([
      { bot: 'ec2_stop_instance', params: [], known: true },
      { bot: 'tag_ec2_resource', params: ['owner', 'security-team'], known: true },
    ]);
    const report = await result(answer.workflowId);
    expect(report.status).toBe('Success');
    expect(report.bots.map((bot) => [bot.bot, bot.outcome, bot.message])).toEqual([
      ['ec2_stop_instance', 'passed', `stopping EC2 instance ${instance} (it was running)`],
      ['tag_ec2_resource', 'passed', `tagged EC2 resource ${instance} with owner=security-team`],
    ]);
    const state = await aws.python(`
import boto3, json, os
ec2 = boto3.client('ec2', endpoint_url=os.environ['MOTO_ENDPOINT'], region_name='us-east-1')
found = ec2.describe_instances(InstanceIds=['${instance}'])['Reservations'][0]['Instances'][0]
print(json.dumps({'state': found['State']['Name'], 'tags': {t['Key']: t['Value'] for t in found.get('Tags', [])}}))
`);
    expect(state).toEqual({ state: 'stopped', tags: { owner: 'security-team' } });

    const notices = await poll(async () => botNotices(answer.workflowId), (found) => found.length === 2, 'both bots to be reported');
    expect(notices.map((notice) => [notice.type, notice.data.engine, notice.data.status, notice.data.compliance.outcome])).toEqual([
      ['task.finished', 'ec2_stop_instance', 'Success', 'passed'],
      ['task.finished', 'tag_ec2_resource', 'Success', 'passed'],
    ]);
    expect(notices[1].data.compliance).toMatchObject({
      accountId: ACCOUNT, region: 'us-east-1', entity: { id: instance, name: 'web-1' }, params: ['owner', 'security-team'],
      message: `tagged EC2 resource ${instance} with owner=security-team`,
    });
  });

  it('skips a passed finding and an untagged one with reasons, and reports an unknown bot while the others run', async () => {
    const { status, body } = await send({
      findings: [
        finding('AUTO: ec2_stop_instance', { id: instance, name: 'web-1' }, { status: 'Passed' }),
        finding('PCI | HIPAA', { id: instance, name: 'web-1' }),
        finding('AUTO: no_such_bot now | AUTO: tag_ec2_resource env prod', { id: instance, name: 'web-1' }),
      ],
    });
    expect(status).toBe(202);
    expect(body.started).toBe(1);
    expect(body.findings.map((f: any) => [f.index, f.result])).toEqual([[0, 'skipped'], [1, 'skipped'], [2, 'started']]);
    expect(body.findings[0].reason).toMatch(/status Passed/);
    expect(body.findings[1].reason).toMatch(/no AUTO: tag/);
    expect(body.findings[2].unknownBots).toEqual(['no_such_bot']);

    const report = await result(body.findings[2].workflowId);
    expect(report.status).toBe('Fail');
    expect(report.bots.map((bot) => [bot.bot, bot.outcome])).toEqual([['no_such_bot', 'failed'], ['tag_ec2_resource', 'passed']]);
    expect(report.bots[0].message).toMatch(/unknown bot no_such_bot/);
    const notices = await poll(async () => botNotices(body.findings[2].workflowId), (found) => found.length === 2, 'both outcomes to be reported');
    expect(notices[0].data).toMatchObject({ engine: 'no_such_bot', status: 'Fail', errors: [expect.stringMatching(/unknown bot/)] });
    const tags = await aws.python(`
import boto3, json, os
ec2 = boto3.client('ec2', endpoint_url=os.environ['MOTO_ENDPOINT'], region_name='us-east-1')
found = ec2.describe_instances(InstanceIds=['${instance}'])['Reservations'][0]['Instances'][0]
print(json.dumps({t['Key']: t['Value'] for t in found.get('Tags', [])}))
`);
    expect(tags).toEqual({ owner: 'security-team', env: 'prod' });
  });

  it('reports a failing bot with its own message', async () => {
    const { body } = await send(finding('AUTO: s3_block_public_access', { id: 'no-such-bucket', name: 'no-such-bucket', type: 'S3Bucket' }));
    const report = await result(body.findings[0].workflowId);
    expect(report.bots[0]).toMatchObject({ outcome: 'failed', message: expect.stringMatching(/s3_block_public_access: AWS refused: .*NoSuchBucket/) });
  });

  it('answers 400 naming the missing field, and starts nothing', async () => {
    const event = finding('AUTO: ec2_stop_instance', { id: instance, name: 'web-1' });
    delete (event.entity as Record<string, unknown>).region;
    const { status, body } = await send([event]);
    expect(status).toBe(400);
    expect(body.error.message).toContain('findings[0].entity.region: required');
  });

  it('refuses a finding from another account in single-account mode', async () => {
    const event = finding('AUTO: ec2_stop_instance', { id: instance, name: 'web-1' }, { account: { id: '210987654321', vendor: 'aws' } });
    const { status, body } = await send(event);
    expect(status).toBe(200);
    expect(body.findings[0]).toMatchObject({ result: 'refused', account: '210987654321' });
    expect(body.findings[0].reason).toMatch(/single-account mode/);
  });

  it("answers an SNS subscription confirmation with what the operator must do, and needs the respond role", async () => {
    const confirmation = {
      Type: 'SubscriptionConfirmation', MessageId: 'c-1', Token: 'tok-123', TopicArn: 'arn:aws:sns:us-east-1:123456789012:dome9',
      SubscribeURL: 'https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:dome9&Token=tok-123',
    };
    const { status, body } = await send(JSON.stringify(confirmation), { contentType: 'text/plain; charset=UTF-8' });
    expect(status).toBe(200);
    expect(body).toMatchObject({ kind: 'subscription-confirmation', confirmed: false, subscribeUrl: confirmation.SubscribeURL });
    expect(body.message).toContain('aws sns confirm-subscription --topic-arn arn:aws:sns:us-east-1:123456789012:dome9');
    expect((await send(confirmation, { as: null })).status).toBe(401);
  });
});
