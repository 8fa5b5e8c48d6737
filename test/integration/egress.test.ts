import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import type { BlobStore } from '../../infra/blob-store';
import { DockerRunner } from '../../activities/runners/docker';
import { EGRESS_NETWORK_LABEL, type EgressNetwork, ensureEgressNetwork, hostRules } from '../../activities/runners/docker-egress';
import { createLogger, type Logger } from '../../infra/log';
import { interpret, prepareJob } from '../../activities/protocols';
import { ensureImage } from '../../scripts/lib/images';
import { docker, observableSubject, tempBlobStore, testManifest } from '../helpers/engines';
import { ROOT } from '../helpers/system';

const run = promisify(execFile);
const IMAGE = 'docket/test-hostile:1';

/**
 * `network: egress` engines join a network Docket creates and keeps off the Docker host. The probe
 * is a listener this test starts on that network's gateway address (the host side of its bridge):
 * an engine on Docket's network cannot reach it, the same engine on a network the test creates
 * without Docket's rules can. No test traffic goes anywhere but those two test-created networks.
 */
describe('the egress network', () => {
  const suffix = randomBytes(3).toString('hex');
  const confinedName = `dkteg-${suffix}`;
  const controlName = `dktctl-${suffix}`;
  const lines: string[] = [];
  const log: Logger = createLogger('info', (line) => lines.push(line));
  let blobs: BlobStore;
  let egress: EgressNetwork;
  let gateway: string;
  let listener: Server;
  let port: number;
  const accepted: string[] = [];

  beforeAll(async () => {
    await ensureImage(IMAGE, join(ROOT, 'test/engines/hostile'), { force: true });
    blobs = await tempBlobStore();
    await docker.createNetwork({ Name: controlName, Driver: 'bridge', Labels: { 'docket.test': 'egress-control' } });
    // What an engine worker does at start when one of its engines has `network: egress`.
    egress = await new DockerRunner(docker, blobs, { egressNetwork: confinedName, log }).ensureEgress();
    gateway = egress.gateway ?? '';
    listener = createServer((socket) => {
      accepted.push(socket.remoteAddress ?? '');
      socket.end('hello');
    });
    listener.listen(0, gateway);
    await once(listener, 'listening');
    port = (listener.address() as AddressInfo).port;
  });

  afterAll(async () => {
    listener?.close();
    for (const name of [confinedName, controlName]) await docker.getNetwork(name).remove().catch(() => undefined);
    for (const rule of hostRules(confinedName)) {
      // Every copy, should a failed idempotence check have added one twice.
      for (let tries = 0; tries < 5; tries += 1) {
        const removed = await run(rule.program, ['-w', '-D', rule.chain, ...rule.rule]).then(() => true, () => false);
        if (!removed) break;
      }
    }
  });

  /** The probe: one TCP connection from an egress engine on `network` to the listener. */
  async function probe(network: string): Promise<string> {
    const runner = new DockerRunner(docker, blobs, { egressNetwork: network, log });
    const manifest = testManifest({ name: 'hostile-connect', image: IMAGE, protocol: 'stdout', command: ['/hostile', 'connect'], network: 'egress', timeout: '60s' });
    const job = prepareJob(manifest, { job: `egress-${network}`, subject: observableSubject('other', 'x'), tlp: 2, pap: 2, args: [gateway, String(port)] }, blobs);
    // Closing waits for the job's removals, which run after it answers, so no container is left on the network.
    const outcome = await interpret(manifest, await runner.run({ ...job, attempt: 1 }).finally(() => runner.close()), blobs);
    expect(outcome.status).toBe('success');
    return (await blobs.read(outcome.result!.sha256)).toString().trim();
  }

  it('is created by the engine worker: labelled as Docket\'s, a fixed bridge name, no traffic between its containers', async () => {
    expect(egress).toMatchObject({ name: confinedName, bridge: confinedName, confined: true });
    const info = await docker.getNetwork(confinedName).inspect();
    expect(info.Driver).toBe('bridge');
    expect(info.Labels?.[EGRESS_NETWORK_LABEL]).toBe('egress');
    expect(info.Options).toMatchObject({ 'com.docker.network.bridge.name': confinedName, 'com.docker.network.bridge.enable_icc': 'false' });
    expect(info.IPAM?.Config?.[0]?.Gateway).toBe(gateway);
  });

  it('has its host rules installed once however often a worker starts', async () => {
    await new DockerRunner(docker, blobs, { egressNetwork: confinedName, log }).ensureEgress();
    const { stdout: input } = await run('iptables', ['-w', '-S', 'INPUT']);
    const { stdout: user } = await run('iptables', ['-w', '-S', 'DOCKER-USER']);
    expect(input.split('\n').filter((line) => line.includes(`-i ${confinedName} `))).toHaveLength(1);
    expect(user.split('\n').filter((line) => line.includes(`-i ${confinedName} `))).toHaveLength(2);
    expect(lines.filter((line) => line.includes(`network ${confinedName} (bridge ${confinedName}) is confined`))).toHaveLength(2);
  });

  it('keeps an egress engine from connecting to the Docker host, which a network without the rules allows', async () => {
    expect(await probe(confinedName)).toBe('blocked');
    expect(accepted).toEqual([]);

    expect(await probe(controlName)).toBe('hello connected');
    expect(accepted).toHaveLength(1);
    expect(lines.some((line) => line.includes(`network ${controlName} (DOCKET_EGRESS_NETWORK) was not created by Docket`))).toBe(true);
  });

  it('tells the operator the exact commands when it cannot install the rules itself (a Docker host over TCP)', async () => {
    // The same Docker engine, reached over TCP on loopback as a remote DOCKER_HOST would be.
    const clients = new Set<Socket>();
    const tcp = createServer((client) => {
      clients.add(client);
      const daemon = connect('/var/run/docker.sock');
      client.on('close', () => daemon.destroy());
      daemon.on('close', () => client.destroy());
      client.on('error', () => undefined);
      daemon.on('error', () => undefined);
      client.pipe(daemon).pipe(client);
    });
    tcp.listen(0, '127.0.0.1');
    await once(tcp, 'listening');
    const said: string[] = [];
    try {
      const remote = new Docker({ host: '127.0.0.1', port: (tcp.address() as AddressInfo).port });
      const egress = await ensureEgressNetwork(remote, confinedName, createLogger('info', (line) => said.push(line)));
      expect(egress).toMatchObject({ name: confinedName, bridge: confinedName, confined: false });
    } finally {
      tcp.close();
      for (const client of clients) client.destroy();
    }
    const warning = said.join('\n');
    expect(warning).toContain(`network: egress engines on ${confinedName} CAN REACH THE DOCKER HOST`);
    expect(warning).toContain('the Docker host is remote (DOCKER_HOST)');
    expect(warning).toContain(`iptables -w -I INPUT 1 -i ${confinedName} -m conntrack '!' --ctstate ESTABLISHED,RELATED`);
    expect(warning).toContain(`iptables -w -I DOCKER-USER 1 -i ${confinedName} -m conntrack --ctstate DNAT`);
  });
});
