import { z } from 'zod';
import { EngineDataType, ENGINE_NAME } from './engine-manifest';

/**
 * TheHive-Project's Cortex-Analyzers describes each analyzer and responder "flavor" in a JSON file
 * (name, version, dataTypeList, configurationItems, ...). Cortex reads them to list and run workers;
 * Docket turns them into engine manifests. Fields Docket has no use for (logos, screenshots) are
 * allowed and ignored.
 */
export const CortexFlavor = z.looseObject({
  name: z.string().min(1).max(100),
  version: z.union([z.string(), z.number()]).transform(String).default('1.0'),
  author: z.string().max(200).optional(),
  url: z.string().max(500).optional(),
  license: z.string().max(100).optional(),
  description: z.string().max(2000).default(''),
  dataTypeList: z.array(z.string()).min(1),
  command: z.string().optional(),
  dockerImage: z.string().optional(),
  baseConfig: z.string().optional(),
  config: z.record(z.string(), z.unknown()).default({}),
  configurationItems: z.array(z.looseObject({
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,99}$/, 'a config key: letters, digits, _ . -'),
    description: z.string().optional(),
    type: z.string().default('string'),
    multi: z.boolean().default(false),
    required: z.boolean().default(false),
    defaultValue: z.unknown().optional(),
  })).default([]),
  /** Minutes, as Cortex reads them. */
  jobTimeout: z.number().int().positive().optional(),
  jobCache: z.number().int().min(0).optional(),
  registration_required: z.boolean().optional(),
  subscription_required: z.boolean().optional(),
  service_homepage: z.string().optional(),
});
export type CortexFlavor = z.infer<typeof CortexFlavor>;

export interface FlavorOptions {
  /** `analyzer` or `responder`; by default a responder when the file sits under `responders/` or takes only TheHive objects. */
  kind?: 'analyzer' | 'responder';
  /** Overrides the egress guess: `egress` or `none`. */
  network?: 'egress' | 'none';
  /** The file's path, which tells a responder (Cortex-Analyzers keeps them under `responders/`). */
  path?: string;
}

export interface ImportedEngine {
  /** The manifest as a plain document, ready to be written as YAML and validated. */
  manifest: Record<string, unknown>;
  /** What a person should know about the import, written above the manifest. */
  notes: string[];
}

/** Cortex's own keys for the TLP / PAP limits, which become the manifest's maxTlp / maxPap. */
const MARKING_KEYS = new Set(['check_tlp', 'max_tlp', 'check_pap', 'max_pap']);
/** Configuration item names that mean an outside service: credentials, an address, a proxy. */
const SERVICE_ITEM = /(^|_)(key|api|apikey|token|secret|password|username|user|url|host|server|endpoint|proxy|account)(_|$)/i;
const ITEM_TYPES = new Set(['string', 'number', 'boolean']);

/** The manifest for one flavor, with the notes that explain what was decided for it. */
export function flavorToManifest(flavor: CortexFlavor, options: FlavorOptions = {}): ImportedEngine {
  const notes: string[] = [];
  const name = engineName(flavor.name);
  const kind = options.kind ?? guessKind(flavor, options.path);
  const accepts = flavor.dataTypeList.filter((type) => EngineDataType.safeParse(type).success);
  const dropped = flavor.dataTypeList.filter((type) => !accepts.includes(type));
  if (dropped.length) notes.push(`data types Docket has no observable type for were left out: ${dropped.join(', ')}`);
  const image = flavor.dockerImage ?? `cortexneurons/${flavor.name.toLowerCase()}:${flavor.version}`;
  if (!flavor.dockerImage) notes.push(`image: the name Cortex-Analyzers publishes ${flavor.name} under; build or load it on every engine host (docker pull, or docker build of its folder)`);

  const prefix = envName(flavor.baseConfig ?? flavor.name);
  const config: Record<string, unknown> = {};
  const marking: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flavor.config)) {
    if (MARKING_KEYS.has(key)) marking[key] = value;
    else config[key] = value;
  }
  const configItems = flavor.configurationItems.map((item) => {
    const variable = `${prefix}_${envName(item.name)}`;
    config[item.name] = `\${${variable}}`;
    const type = ITEM_TYPES.has(item.type) ? item.type : 'string';
    if (type !== item.type) notes.push(`config ${item.name}: Cortex type ${item.type} is read as a string`);
    return {
      name: item.name,
      type,
      ...(item.multi ? { multi: true } : {}),
      ...(item.required ? { required: true } : {}),
      ...(item.description ? { description: item.description } : {}),
      ...(item.defaultValue !== undefined && item.defaultValue !== null ? { default: item.defaultValue } : {}),
    };
  });
  const required = configItems.filter((item) => item.required && item.default === undefined).map((item) => `${prefix}_${envName(item.name)}`);
  if (required.length) notes.push(`set ${required.join(', ')} in the engine workers' environment: a job without them fails, naming them`);

  const network = options.network ?? (reachesOut(flavor, kind) ? 'egress' : 'none');
  if (network === 'egress') {
    notes.push(options.network
      ? 'network: egress, as asked'
      : 'network: egress, because it needs credentials or an address of an outside service (or is a responder); import with --offline to keep it off the network');
  } else {
    notes.push(options.network ? 'network: none, as asked (--offline)' : 'network: none: it names no outside service; import with --egress if it does reach out');
  }

  const manifest: Record<string, unknown> = {
    name,
    kind,
    version: flavor.version,
    ...(flavor.author ? { author: flavor.author } : {}),
    ...(flavor.license ? { license: flavor.license } : {}),
    ...(flavor.url ? { url: flavor.url } : {}),
    description: flavor.description,
    image,
    accepts,
    protocol: 'cortex',
    network,
    ...(flavor.jobTimeout ? { timeout: `${flavor.jobTimeout}m` } : {}),
    ...(flavor.jobCache !== undefined && kind === 'analyzer' ? { cache: `${flavor.jobCache}m` } : {}),
    ...(marking.check_tlp === true && typeof marking.max_tlp === 'number' ? { maxTlp: marking.max_tlp } : {}),
    ...(marking.check_pap === true && typeof marking.max_pap === 'number' ? { maxPap: marking.max_pap } : {}),
    config,
    ...(configItems.length ? { configItems } : {}),
  };
  return { manifest, notes };
}

/** A Cortex worker name as a Docket engine name: lower case, anything else than letters, digits, - and _ as _. */
export function engineName(cortexName: string): string {
  const name = cortexName.toLowerCase().replace(/[^a-z0-9_-]/g, '_').replace(/^[^a-z0-9]+/, '').slice(0, 63);
  if (!ENGINE_NAME.test(name)) throw new Error(`the Cortex name ${JSON.stringify(cortexName)} gives no usable engine name`);
  return name;
}

/** `VirusTotal` + `key` → `VIRUSTOTAL_KEY`: flavors sharing a baseConfig share their variables, as they share their Cortex config. */
function envName(text: string): string {
  return text.toUpperCase().replace(/[^A-Z0-9]+/g, '_').replace(/^_+|_+$/g, '');
}

function guessKind(flavor: CortexFlavor, path?: string): 'analyzer' | 'responder' {
  if (path && /(^|[\\/])responders[\\/]/.test(path)) return 'responder';
  return flavor.dataTypeList.every((type) => type.startsWith('thehive:')) ? 'responder' : 'analyzer';
}

/**
 * Most Cortex-Analyzers flavors query a service (VirusTotal, Shodan, MISP...); the ones that do say
 * so by asking for a key, an address or an account, or by their registration flags. Responders act
 * on outside systems (mail, firewalls, ticketing). Local ones (FileInfo, Yara) ask for none of that.
 */
function reachesOut(flavor: CortexFlavor, kind: 'analyzer' | 'responder'): boolean {
  if (kind === 'responder') return true;
  if (flavor.registration_required || flavor.subscription_required || flavor.service_homepage) return true;
  return flavor.configurationItems.some((item) => SERVICE_ITEM.test(item.name));
}
