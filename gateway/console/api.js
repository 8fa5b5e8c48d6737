// Talks to the gateway's API with the signed-in key. The key lives in sessionStorage: it is gone when
// the tab closes, and other tabs and sites never see it.

const KEY = 'docket.key';

export function storedKey() {
  return sessionStorage.getItem(KEY);
}

export function storeKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

/** An answer the gateway refused, carrying its `{"error": {"code", "message"}}`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra = {}, key = storedKey()) {
  return key ? { ...extra, authorization: `Bearer ${key}` } : extra;
}

async function refusal(response) {
  let body;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  const message = body?.error?.message ?? `the gateway answered ${response.status} ${response.statusText}`;
  return new ApiError(response.status, body?.error?.code ?? 'error', message);
}

// Every refusal passes through here, so the app can send a person whose key stopped working (revoked,
// or never valid) back to the sign-in page from wherever they are. Callers without a key see the
// refusal where it happened instead: its message says which role the action needs.
let onUnauthorized = () => undefined;
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

async function call(path, init = {}, key) {
  const response = await fetch(path, { ...init, headers: headers(init.headers, key), credentials: 'omit', cache: 'no-store' });
  if (!response.ok) {
    const error = await refusal(response);
    if (response.status === 401 && key === undefined && storedKey()) onUnauthorized(error);
    throw error;
  }
  return response;
}

export async function getJson(path) {
  return (await call(path)).json();
}

export async function postJson(path, body) {
  const response = await call(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) });
  return response.json();
}

/** A multipart POST; the browser writes the boundary itself. */
export async function postForm(path, form) {
  return (await call(path, { method: 'POST', body: form })).json();
}

/** The bytes of a result, with the headers that say what they are. */
export async function getBlob(path) {
  const response = await call(path);
  return { blob: await response.blob(), type: response.headers.get('content-type') ?? 'application/octet-stream' };
}

/**
 * Whether `key` (or no key, when `key` is null) may read investigations. Resolves true or false, or
 * throws an ApiError with the gateway's message when the key itself was refused.
 */
export async function canRead(key) {
  try {
    await call('/v1/investigations?pageSize=1', {}, key ?? '');
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401 && !key) return false;
    throw error;
  }
}
