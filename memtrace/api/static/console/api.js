// The console's only way to reach Memtrace: fetch with the key from this tab's sessionStorage in `x-api-key`.

const KEY = "memtrace.apiKey";

export class ApiError extends Error {
  constructor(status, message, hint) {
    super(message);
    this.status = status;
    this.hint = hint;
  }

  // What a person should read: the server's sentence, plus what to do about the common cases.
  describe() {
    if (this.status === 401) return `The API key was refused (401: ${this.message}). Sign in again with a valid key.`;
    if (this.status === 403) {
      return `This API key may not do that (403: ${this.message}). Forgetting memories and closing sessions need a key with the write permission.`;
    }
    if (this.status === 503 && this.hint) {
      return `This org has no Arc instance yet (503: ${this.message}). Hint: ${this.hint}`;
    }
    if (this.status === 405 || (this.status === 404 && this.message === "not found")) {
      return `Not available on this server (${this.status}: ${this.message}): it may need a newer Memtrace.`;
    }
    return `${this.message} (${this.status || "network"})`;
  }
}

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export async function call(method, path, { params, body } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { accept: "application/json", "x-api-key": key.get() || "" };
  if (body !== undefined) headers["content-type"] = "application/json";
  let resp;
  try {
    resp = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, `cannot reach Memtrace: ${err.message}`);
  }
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => ({ error: `unexpected answer from Memtrace (HTTP ${resp.status})` }));
  if (!resp.ok) throw new ApiError(resp.status, data.error || `HTTP ${resp.status}`, data.hint);
  return data;
}

export const get = (path, params) => call("GET", path, { params });
export const post = (path, body) => call("POST", path, { body });
export const seg = encodeURIComponent;
