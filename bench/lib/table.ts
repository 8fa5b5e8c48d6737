import { appendFileSync } from 'node:fs';

/**
 * One line of the benchmarks' table: what was measured through Docket, the baseline measured in the
 * same run, their ratio (oriented so that the goal reads beside it) and the goal.
 */
export interface Figure {
  figure: string;
  docket: string;
  baseline: string;
  ratio?: number;
  goal: string;
}

/** Where `npm run bench` (bench/all.ts) collects every benchmark's figures, one JSON object a line. */
export const FIGURES_FILE_ENV = 'DOCKET_BENCH_FIGURES';

/** Prints a benchmark's figures as a table and hands them to `npm run bench` when it runs this benchmark. */
export function reportFigures(bench: string, figures: Figure[]): void {
  printFigures(figures);
  const file = process.env[FIGURES_FILE_ENV];
  if (!file) return;
  appendFileSync(file, figures.map((figure) => `${JSON.stringify({ bench, ...figure })}\n`).join(''));
}

/** A Markdown table, as the README's Benchmarks section holds it. */
export function printFigures(figures: Figure[]): void {
  const rows = [
    ['what', 'Docket', 'baseline', 'ratio', 'goal'],
    ...figures.map((figure) => [figure.figure, figure.docket, figure.baseline, formatRatio(figure.ratio), figure.goal]),
  ];
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const line = (row: string[]) => `| ${row.map((cell, column) => cell.padEnd(widths[column])).join(' | ')} |`;
  process.stdout.write(`${[line(rows[0]), line(widths.map((width) => '-'.repeat(width))), ...rows.slice(1).map(line)].join('\n')}\n`);
}

function formatRatio(ratio: number | undefined): string {
  return ratio === undefined || !Number.isFinite(ratio) ? '' : ratio.toFixed(2);
}
