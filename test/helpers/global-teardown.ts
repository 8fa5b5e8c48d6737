import { rmSync } from 'node:fs';
import type { DevServer } from '../../system/temporal-dev';

export default async function globalTeardown(): Promise<void> {
  const server = (globalThis as { __docketTemporal?: DevServer }).__docketTemporal;
  await server?.stop();
  if (process.env.DOCKET_TEST_DIR) rmSync(process.env.DOCKET_TEST_DIR, { recursive: true, force: true });
}
