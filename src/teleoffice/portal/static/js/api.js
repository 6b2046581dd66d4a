// The REST API, as the page uses it: JSON over fetch with the HttpOnly session
// cookie (the page never sees the token), and the CSRF header the server wants
// on every write made with the cookie (portal/deps.py).

export const CSRF_HEADER = "X-Teleoffice-CSRF";
const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

/** A failed request: HTTP status, the API's error code and message. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

const unauthenticatedListeners = new Set();

/** Called with the ApiError whenever a request is refused with 401 (the session ended). */
export function onUnauthenticated(fn) {
  unauthenticatedListeners.add(fn);
  return () => unauthenticatedListeners.delete(fn);
}

/** An absolute path under /api for `path` ("/me" or "/api/me" both work). */
export function apiUrl(path) {
  return path.startsWith("/api/") || path === "/api" ? path : `/api${path.startsWith("/") ? "" : "/"}${path}`;
}

/**
 * Send one request; resolves to the parsed JSON (null for an empty answer),
 * rejects with ApiError (status 0 with code "network" when the server could
 * not be reached).
 */
export async function api(method, path, body) {
  method = method.toUpperCase();
  const headers = { Accept: "application/json" };
  if (!SAFE.has(method)) headers[CSRF_HEADER] = "1";
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(apiUrl(path), init);
  } catch (err) {
    throw new ApiError(0, "network", String(err && err.message ? err.message : err));
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    const retry = response.headers.get("Retry-After");
    const failure = new ApiError(
      response.status,
      error.code || "error",
      error.message || response.statusText || `HTTP ${response.status}`,
      retry === null ? null : Number(retry),
    );
    if (response.status === 401 && apiUrl(path) !== "/api/login") {
      for (const fn of unauthenticatedListeners) fn(failure);
    }
    throw failure;
  }
  return data;
}
