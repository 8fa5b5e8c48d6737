import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import type Docker from 'dockerode';
import type { Logger } from '../../infra/log';

/** Marks the networks Docket created and confines; a network without it is the operator's own. */
export const EGRESS_NETWORK_LABEL = 'docket.network';
export const DEFAULT_EGRESS_NETWORK = 'docket-egress';
/** Linux caps interface names at 15 characters (IFNAMSIZ less the terminating zero). */
const MAX_INTERFACE_NAME = 15;

export interface EgressNetwork {
  name: string;
  /** The bridge interface on the Docker host (Docket-managed networks only). */
  bridge?: string;
  /** The host side of the bridge, the address an engine would use to reach the Docker host. */
  gateway?: string;
  /** Whether the host-side rules are in place: true only once Docket has checked them itself. */
  confined: boolean;
}

/** One iptables rule: the program, its chain, and the match and target that follow `-I <chain>`. */
export interface HostRule {
  program: 'iptables' | 'ip6tables';
  chain: string;
  rule: string[];
}

/**
 * The rules that keep containers on `bridge` off the Docker host. Docker never touches INPUT, and
 * traffic from a container to any of the host's own addresses (the gateway, eth0, other bridges)
 * is delivered locally, so it meets INPUT, not DOCKER-USER: everything but replies is dropped there.
 * A port the host publishes for another container is DNATed and forwarded instead; DOCKER-USER,
 * the chain Docker evaluates first and never rewrites, drops that, and the link-local range where
 * cloud hosts serve instance credentials. IPv6 link-local addresses exist on every bridge even
 * without IPv6 networking, hence the ip6tables twin of the INPUT rule.
 */
export function hostRules(bridge: string): HostRule[] {
  const fromBridge = ['-i', bridge];
  const notReply = ['-m', 'conntrack', '!', '--ctstate', 'ESTABLISHED,RELATED'];
  const comment = ['-m', 'comment', '--comment', 'docket: egress engines stay off the Docker host'];
  return [
    { program: 'iptables', chain: 'INPUT', rule: [...fromBridge, ...notReply, ...comment, '-j', 'DROP'] },
    { program: 'ip6tables', chain: 'INPUT', rule: [...fromBridge, ...notReply, ...comment, '-j', 'DROP'] },
    { program: 'iptables', chain: 'DOCKER-USER', rule: [...fromBridge, '-m', 'conntrack', '--ctstate', 'DNAT', ...comment, '-j', 'DROP'] },
    { program: 'iptables', chain: 'DOCKER-USER', rule: [...fromBridge, '-d', '169.254.0.0/16', ...comment, '-j', 'DROP'] },
  ];
}

/** A rule as the shell command an operator runs, idempotent like the worker's own check. */
export function ruleCommand({ program, chain, rule }: HostRule): string {
  const args = rule.map((arg) => (/^[A-Za-z0-9_.,/:-]+$/.test(arg) ? arg : `'${arg}'`)).join(' ');
  return `${program} -w -C ${chain} ${args} 2>/dev/null || ${program} -w -I ${chain} 1 ${args}`;
}

/** The bridge interface name Docket gives a network it creates: the name itself when Linux allows it. */
export function bridgeName(network: string): string {
  if (network.length <= MAX_INTERFACE_NAME && /^[A-Za-z0-9_.-]+$/.test(network)) return network;
  return `docket-${createHash('sha256').update(network).digest('hex').slice(0, 8)}`;
}

/**
 * Makes sure the network `network: egress` engines join exists and cannot reach the Docker host.
 * A missing network is created (bridge, inter-container traffic off, fixed interface name, labelled
 * as Docket's) and its host rules are installed when this process can: root, in the Docker host's
 * own network namespace (the bridge interface is visible), with iptables. Otherwise the log says,
 * loudly, which commands the operator must run. A network the operator named that Docket did not
 * create is used as it is, with a warning: its confinement is the operator's.
 */
export async function ensureEgressNetwork(docker: Docker, name: string, log: Logger): Promise<EgressNetwork> {
  const info = (await inspectNetwork(docker, name)) ?? (await createNetwork(docker, name));
  if (info.Labels?.[EGRESS_NETWORK_LABEL] !== 'egress') {
    log.warn(
      `egress: network ${name} (DOCKET_EGRESS_NETWORK) was not created by Docket, so Docket does not confine it: ` +
      `network: egress engines on it may reach the Docker host and its services. Unset DOCKET_EGRESS_NETWORK to use ` +
      `Docket's own ${DEFAULT_EGRESS_NETWORK}, unless this network is confined as you intend.`,
    );
    return { name, confined: false };
  }
  const bridge = info.Options?.['com.docker.network.bridge.name'];
  const gateway = info.IPAM?.Config?.[0]?.Gateway;
  if (!bridge) {
    log.warn(`egress: network ${name} has no fixed bridge interface name, so no host rules can name it: remove it (docker network rm ${name}) and Docket recreates it`);
    return { name, gateway, confined: false };
  }
  const blocker = await whyNotLocal(docker, bridge);
  if (blocker) {
    warnOperator(name, bridge, blocker, log);
    return { name, bridge, gateway, confined: false };
  }
  try {
    await installHostRules(bridge);
  } catch (error) {
    warnOperator(name, bridge, (error as Error).message, log);
    return { name, bridge, gateway, confined: false };
  }
  log.info(`egress: network ${name} (bridge ${bridge}) is confined: its containers cannot open connections to the Docker host`);
  return { name, bridge, gateway, confined: true };
}

type NetworkInfo = {
  Labels?: Record<string, string>;
  Options?: Record<string, string>;
  IPAM?: { Config?: Array<{ Gateway?: string }> };
};

async function inspectNetwork(docker: Docker, name: string): Promise<NetworkInfo | undefined> {
  try {
    return (await docker.getNetwork(name).inspect()) as NetworkInfo;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    throw error;
  }
}

async function createNetwork(docker: Docker, name: string): Promise<NetworkInfo> {
  try {
    await docker.createNetwork({
      Name: name,
      Driver: 'bridge',
      CheckDuplicate: true,
      EnableIPv6: false,
      Labels: { [EGRESS_NETWORK_LABEL]: 'egress' },
      Options: {
        'com.docker.network.bridge.name': bridgeName(name),
        'com.docker.network.bridge.enable_icc': 'false',
      },
    });
  } catch (error) {
    // Another worker on this host created it first; what it created is what is used.
    if ((error as { statusCode?: number }).statusCode !== 409) throw error;
  }
  const info = await inspectNetwork(docker, name);
  if (!info) throw new Error(`Docker created network ${name} but cannot find it`);
  return info;
}

/** Why this process cannot write the Docker host's firewall, or undefined when it can. */
async function whyNotLocal(docker: Docker, bridge: string): Promise<string | undefined> {
  const modem = docker.modem as { socketPath?: unknown; host?: unknown };
  // docker-modem keeps a function that finds the default socket until its first request.
  const socket = typeof modem.socketPath === 'string' || typeof modem.socketPath === 'function';
  if (!socket || modem.host) return 'the Docker host is remote (DOCKER_HOST)';
  if (!existsSync(`/sys/class/net/${bridge}`)) {
    return `bridge ${bridge} is not in this process's network namespace (a worker in a container, or a remote Docker host)`;
  }
  if (process.getuid?.() !== 0) return 'this worker does not run as root';
  return undefined;
}

async function installHostRules(bridge: string): Promise<void> {
  for (const rule of hostRules(bridge)) {
    // A kernel without IPv6 has no link-local addresses to guard, and no ip6tables tables either.
    if (rule.program === 'ip6tables' && !existsSync('/proc/net/if_inet6')) continue;
    const present = await iptables(rule.program, ['-w', '-C', rule.chain, ...rule.rule]);
    if (present.code === 0) continue;
    const inserted = await iptables(rule.program, ['-w', '-I', rule.chain, '1', ...rule.rule]);
    if (inserted.code !== 0) {
      throw new Error(`${rule.program} could not add the ${rule.chain} rule: ${inserted.output.trim() || `exit ${inserted.code}`}`);
    }
  }
}

function warnOperator(name: string, bridge: string, reason: string, log: Logger): void {
  const commands = hostRules(bridge).map((rule) => `  ${ruleCommand(rule)}`).join('\n');
  log.error(
    `egress: network: egress engines on ${name} CAN REACH THE DOCKER HOST and its services: Docket could not ` +
    `install the rules that stop them (${reason}). Run these as root on the Docker host, again after every reboot ` +
    `(Docket cannot check them from here, so this message comes back at every start):\n${commands}`,
  );
}

/** Runs iptables or ip6tables; a missing program is an exit code, so callers report it uniformly. */
function iptables(program: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => { output += chunk; });
    child.stderr.on('data', (chunk) => { output += chunk; });
    child.on('error', (error) => resolve({ code: 127, output: `${program}: ${error.message}` }));
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}
