import type { InvestigationReport } from './investigation';

/** IBM Menagerie's `GET /result/<id>` answer. */
export type MenagerieStatus = 'Received' | 'Running' | 'Success' | 'Fail';

export interface MenagerieResult {
  status: MenagerieStatus;
  summary: string;
  link: string;
}

export const SUMMARY_BYTES = 80;

/**
 * The first 80 bytes of a result, cut on a character boundary. Menagerie's own code returned nothing
 * for results shorter than its window; here every result has a summary.
 */
export function summarize(bytes: Uint8Array | string): string {
  const buffer = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  let end = Math.min(buffer.length, SUMMARY_BYTES);
  // Step back over UTF-8 continuation bytes so a multi-byte character is never split.
  if (end < buffer.length) while (end > 0 && (buffer[end] & 0xc0) === 0x80) end -= 1;
  return new TextDecoder().decode(buffer.subarray(0, end));
}

export function linkFor(id: string): string {
  return `/link/${encodeURIComponent(id)}`;
}

/** A finished investigation in Menagerie's terms: Success when every engine job succeeded. */
export function menagerieFromReport(report: InvestigationReport): MenagerieResult {
  const failed = report.status === 'Fail' || report.jobs.some((job) => job.status !== 'success');
  const first = report.jobs.find((job) => job.status !== 'success') ?? report.jobs[0];
  // A job whose engine did not take the file (or its TLP) ran nothing: the reason is its summary.
  const skipped = report.skipped?.[0];
  const summary = first ? first.summary : summarize(skipped ? `${skipped.engine} skipped: ${skipped.reason}` : report.errors.join('; ') || 'no engine ran');
  return { status: failed ? 'Fail' : 'Success', summary, link: linkFor(report.id) };
}
