/** Human units used in manifests and configuration: sizes like `50m`, durations like `240s`. */

// A Map: a unit is the manifest's text, and `50constructor` must not find a factor on the prototype.
const SIZE_FACTORS = new Map<string, number>([
  ['', 1], ['b', 1],
  ['k', 1024], ['kb', 1024], ['kib', 1024],
  ['m', 1024 ** 2], ['mb', 1024 ** 2], ['mib', 1024 ** 2],
  ['g', 1024 ** 3], ['gb', 1024 ** 3], ['gib', 1024 ** 3],
]);

const DURATION_FACTORS: Record<string, number> = {
  ms: 1, s: 1000, '': 1000, m: 60_000, h: 3_600_000, d: 86_400_000,
};

/** Parses `50m`, `1.5g`, `1024`, `16MiB` into bytes; returns undefined when the text is not a size. */
export function parseSize(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? Math.floor(text) : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!match) return undefined;
  const factor = SIZE_FACTORS.get(match[2].toLowerCase());
  if (factor === undefined) return undefined;
  return Math.floor(Number(match[1]) * factor);
}

/** Parses `240s`, `5m`, `1h`, `500ms` or a bare number of seconds into milliseconds. */
export function parseDuration(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? Math.round(text * 1000) : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|)\s*$/i.exec(text);
  if (!match) return undefined;
  return Math.round(Number(match[1]) * DURATION_FACTORS[match[2].toLowerCase()]);
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
