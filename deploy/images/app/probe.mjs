// A container healthcheck without curl: exits 0 when the URL answers 2xx within five seconds.
const url = process.argv[2];
if (!url) {
  console.error('usage: node probe.mjs <url>');
  process.exit(2);
}
try {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!response.ok) console.error(`${url} answered ${response.status}`);
  process.exit(response.ok ? 0 : 1);
} catch (error) {
  console.error(`${url} did not answer: ${error.message}`);
  process.exit(1);
}
