import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { loadConfig } from '../../core/config';
import { silentLogger } from '../../infra/log';
import { startSystem } from '../../system/start-system';
import { temporalTarget } from '../../system/temporal-connection';
import { namespaceRetentionMs } from '../../system/temporal-namespace';
import { freePort, portIsFree, startDevServer, type DevServer } from '../../system/temporal-dev';
import {
  DEFAULT_SERVER_BIN, MAX_MEMBERSHIP_PORT, prepareNamespace, setupDatabases, startServer, type RunningServer, type ServerSettings,
} from '../../system/temporal-server';
import { enginesFolder, fileinfoManifest, getJson, upload } from '../helpers/fixtures';
import { poll, startTestSystem, type TestSystem } from '../helpers/system';

const PG_BIN = '/usr/lib/postgresql/15/bin';
const DAY_MS = 86_400_000;

function asPostgres(command: string, args: string[]): void {
  execFileSync('runuser', ['-u', 'postgres', '--', join(PG_BIN, command), ...args], { stdio: 'pipe' });
}

/** A CA, and certificates it signs: the server's for localhost and 127.0.0.1, and a client's. */
function makeCertificates(dir: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=docket test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
  const sign = (name: string, subject: string, extensions: string) => {
    writeFileSync(join(dir, `${name}.ext`), extensions);
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', subject, '-keyout', `${name}.key`, '-out', `${name}.csr`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
  };
  sign('server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  sign('client', '/CN=docket', 'extendedKeyUsage=clientAuth\n');
}

/** A free loopback port the membership table can store (a smallint), searched a bounded number of times. */
async function freeMembershipPort(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const port = 20_000 + Math.floor(Math.random() * (MAX_MEMBERSHIP_PORT - 20_000));
    if (!taken.has(port) && await portIsFree(port)) {
      taken.add(port);
      return port;
    }
  }
  throw new Error(`no free port between 20000 and ${MAX_MEMBERSHIP_PORT} after 200 tries`);
}

describe('Docket on the Go-built Temporal server, PostgreSQL 15 and mTLS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'docket-temporal-prod-'));
  const pgData = join(dir, 'pg', 'data');
  const pgSockets = join(dir, 'pg', 'run');
  const tlsDir = join(dir, 'tls');
  let pgPort = 0;
  let server: RunningServer | undefined;
  let docket: TestSystem | undefined;
  let temporalEnv: Record<string, string> = {};
  const engines = enginesFolder([fileinfoManifest]);

  beforeAll(async () => {
    mkdirSync(pgSockets, { recursive: true });
    mkdirSync(tlsDir);
    execFileSync('chown', ['-R', 'postgres:postgres', join(dir, 'pg')]);
    execFileSync('chmod', ['755', dir]);
    const pwfile = join(dir, 'pg', 'admin-password');
    writeFileSync(pwfile, 'admin-secret\n');
    execFileSync('chown', ['postgres:postgres', pwfile]);
    asPostgres('initdb', ['-D', pgData, '-U', 'postgres', `--pwfile=${pwfile}`, '--auth-local=peer', '--auth-host=scram-sha-256', '-E', 'UTF8']);
    pgPort = await freePort();
    asPostgres('pg_ctl', ['-D', pgData, '-l', join(dir, 'pg', 'postgres.log'), '-w', '-o', `-p ${pgPort} -k ${pgSockets} -c listen_addresses=127.0.0.1`, 'start']);

    makeCertificates(tlsDir);
    const frontend = await freePort();
    const taken = new Set<number>();
    const ports = {
      frontend, frontendHttp: await freePort(), history: await freePort(), matching: await freePort(), worker: await freePort(),
      frontendMembership: await freeMembershipPort(taken), historyMembership: await freeMembershipPort(taken),
      matchingMembership: await freeMembershipPort(taken), workerMembership: await freeMembershipPort(taken), metrics: await freePort(),
    };
    const settings: ServerSettings = {
      dir: join(dir, 'temporal'), binDir: process.env.DOCKET_TEMPORAL_BIN ?? DEFAULT_SERVER_BIN, bindIp: '127.0.0.1', ports, historyShards: 4,
      postgres: { host: '127.0.0.1', port: pgPort, user: 'temporal', password: 'temporal-secret', adminUser: 'postgres', database: 'temporal', visibilityDatabase: 'temporal_visibility' },
      tls: { certFile: join(tlsDir, 'server.pem'), keyFile: join(tlsDir, 'server.key'), clientCaFile: join(tlsDir, 'ca.pem') },
    };
    process.env.PGPASSWORD = 'admin-secret';
    try {
      await setupDatabases(settings, silentLogger);
    } finally {
      delete process.env.PGPASSWORD;
    }

    temporalEnv = {
      TEMPORAL_ADDRESS: `127.0.0.1:${frontend}`,
      TEMPORAL_NAMESPACE: 'docket',
      TEMPORAL_TLS_CLIENT_CERT_PATH: join(tlsDir, 'client.pem'),
      TEMPORAL_TLS_CLIENT_KEY_PATH: join(tlsDir, 'client.key'),
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: join(tlsDir, 'ca.pem'),
      TEMPORAL_TLS_SERVER_NAME: 'localhost',
      DOCKET_RETENTION: '7d',
    };
    const config = loadConfig(temporalEnv);
    const target = temporalTarget(config, temporalEnv);
    server = await startServer(settings, target);
    const connection = await Connection.connect(target.connection);
    try {
      await prepareNamespace(connection, 'docket', config.retentionMs, silentLogger);
    } finally {
      await connection.close();
    }
    docket = await startTestSystem({ enginesDir: engines, env: temporalEnv });
  });

  afterAll(async () => {
    await docket?.close();
    await server?.stop();
    try {
      asPostgres('pg_ctl', ['-D', pgData, '-m', 'fast', '-w', 'stop']);
    } catch {
      // Already down, or never started: the folder goes either way.
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('analyzes an upload to fileinfo to Success, and lists it by a search attribute (advanced visibility)', async () => {
    const accepted = await upload(docket!.baseUrl, 'fileinfo', 'a sample for the production server\n', 'notes.txt');
    expect({ status: accepted.status, body: accepted.status === 200 ? 'accepted' : accepted.body }).toEqual({ status: 200, body: 'accepted' });
    const jobid = accepted.body.jobid as string;
    const result = await poll(() => getJson(`${docket!.baseUrl}/result/${jobid}`), (r) => ['Success', 'Fail'].includes(r.body.status), `job ${jobid}`);
    expect(result.body.status).toBe('Success');

    const listed = await poll(
      () => getJson(`${docket!.baseUrl}/v1/investigations?source=http`),
      (r) => r.status !== 200 || JSON.stringify(r.body).includes(jobid),
      `job ${jobid} in the list filtered by source`,
      30_000,
    );
    expect(listed.status).toBe(200);
    expect(JSON.stringify(listed.body)).toContain(jobid);
    const other = await getJson(`${docket!.baseUrl}/v1/investigations?source=slack`);
    expect(other.status).toBe(200);
    expect(JSON.stringify(other.body)).not.toContain(jobid);
  });

  it('refuses a client that presents no certificate, and one that does not speak TLS', async () => {
    const address = temporalEnv.TEMPORAL_ADDRESS;
    const caOnly = await Connection.connect({
      address, connectTimeout: 5000,
      tls: { serverNameOverride: 'localhost', serverRootCACertificate: readFileSync(join(tlsDir, 'ca.pem')) },
    }).then(async (connection) => {
      try {
        await connection.workflowService.getSystemInfo({});
        return 'answered';
      } finally {
        await connection.close();
      }
    }, (error: Error) => error.message);
    expect(caOnly).not.toBe('answered');

    const plain = await Connection.connect({ address, connectTimeout: 5000 }).then(async (connection) => {
      try {
        await connection.workflowService.getSystemInfo({});
        return 'answered';
      } finally {
        await connection.close();
      }
    }, (error: Error) => error.message);
    expect(plain).not.toBe('answered');
  });

  it('keeps the namespace history for DOCKET_RETENTION', async () => {
    expect(await namespaceRetentionMs(docket!.client.connection as Connection, 'docket')).toBe(7 * DAY_MS);
  });
});

describe('history retention on the dev server', () => {
  let dev: DevServer | undefined;
  afterAll(async () => {
    await dev?.stop();
  });

  it('sets the dev server namespace to DOCKET_RETENTION instead of its 24 hours', async () => {
    dev = await startDevServer({ port: await freePort(), namespace: 'retention' });
    const env = { TEMPORAL_ADDRESS: dev.address, TEMPORAL_NAMESPACE: 'retention', DOCKET_RETENTION: '3d' };
    const before = await Connection.connect({ address: dev.address });
    try {
      expect(await namespaceRetentionMs(before, 'retention')).toBe(DAY_MS);
    } finally {
      await before.close();
    }
    const dataDir = mkdtempSync(join(tmpdir(), 'docket-retention-'));
    const system = await startSystem({
      config: loadConfig({ ...env, DOCKET_DATA_DIR: dataDir, DOCKET_PORT: '0' }),
      env, log: silentLogger, workers: false, gateway: false,
    });
    try {
      expect(await namespaceRetentionMs(system.client.connection as Connection, 'retention')).toBe(3 * DAY_MS);
    } finally {
      await system.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
