import type { NativeConnectionOptions } from '@temporalio/worker';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { Config } from '../core/config';

export interface TemporalTarget {
  /** Good for both `Connection.connect` (client) and `NativeConnection.connect` (workers). */
  connection: Pick<NativeConnectionOptions, 'tls' | 'apiKey' | 'metadata'> & { address: string };
  namespace: string;
  /** Whether TLS is on, for messages that tell a plain-text mismatch apart. */
  tls: boolean;
}

/**
 * Where Docket's Temporal is and how to reach it, read the way every Temporal SDK and the `temporal` CLI
 * read it (@temporalio/envconfig): a profile from the config file (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE),
 * overridden by TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_* and
 * TEMPORAL_GRPC_META_*. One set of settings then serves Docket, the CLI and the Web UI alike, Temporal
 * Cloud included. What none of them says falls back to Docket's own defaults: the dev server that
 * `npm start` runs on DOCKET_TEMPORAL_PORT, and the `default` namespace.
 */
export function temporalTarget(config: Config, env: Record<string, string | undefined>): TemporalTarget {
  const vars: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value) vars[name] = value;
  // A caller may hand the address in through the config alone (the tests do); it weighs as the variable would.
  if (config.TEMPORAL_ADDRESS) vars.TEMPORAL_ADDRESS = config.TEMPORAL_ADDRESS;
  let loaded;
  try {
    loaded = loadClientConnectConfig({ overrideEnvVars: vars });
  } catch (error) {
    throw new Error(`cannot read the Temporal connection settings (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE, TEMPORAL_TLS_*): ${(error as Error).message}; fix the profile file or the variables named`);
  }
  const { address, tls, apiKey, metadata } = loaded.connectionOptions;
  return {
    connection: {
      address: address ?? config.temporalAddress,
      ...(tls !== undefined && tls !== null ? { tls } : {}),
      ...(apiKey !== undefined ? { apiKey } : {}),
      ...(metadata ? { metadata } : {}),
    },
    namespace: loaded.namespace ?? config.TEMPORAL_NAMESPACE,
    tls: tls !== undefined && tls !== null && tls !== false,
  };
}
