import { z } from 'zod';
import { Taxonomy } from './investigation';

/** TheHive Cortex's `output.json`, as analyzers and responders written with cortexutils produce it. */
export const CortexArtifact = z.looseObject({
  dataType: z.string(),
  data: z.string().optional(),
  file: z.string().optional(),
  filename: z.string().optional(),
  message: z.string().optional(),
  tags: z.array(z.string()).optional(),
  tlp: z.number().optional(),
});

export const CortexOutput = z.discriminatedUnion('success', [
  z.looseObject({
    success: z.literal(true),
    full: z.unknown().optional(),
    summary: z.looseObject({ taxonomies: z.array(z.unknown()).default([]) }).optional(),
    artifacts: z.array(CortexArtifact).default([]),
    operations: z.array(z.looseObject({ type: z.string() })).default([]),
  }),
  z.looseObject({
    success: z.literal(false),
    errorMessage: z.string().default('the engine reported a failure without a message'),
  }),
]);
export type CortexOutput = z.infer<typeof CortexOutput>;

/** Keeps the taxonomies that have Cortex's shape; a malformed one is dropped, not fatal. */
export function readTaxonomies(raw: unknown[]): Taxonomy[] {
  const taxonomies: Taxonomy[] = [];
  for (const item of raw) {
    const parsed = Taxonomy.safeParse(item);
    if (parsed.success) taxonomies.push(parsed.data);
  }
  return taxonomies;
}

/** Cortex's `input.json` for one job. */
export interface CortexInput {
  /** The observable's value, or (responders) TheHive's object. */
  data?: string | Record<string, unknown>;
  file?: string;
  filename?: string;
  contentType?: string;
  dataType: string;
  tlp: number;
  pap: number;
  message: string;
  parameters: Record<string, unknown>;
  config: Record<string, unknown>;
}

/** The file name Cortex gives an attachment inside `/job/input`. */
export const CORTEX_ATTACHMENT = 'attachment';
