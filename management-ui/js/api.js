// The management API as the UI calls it: Basic auth from the login form, kept in
// sessionStorage; a 401 sends the user back to the login page.

const KEY = "warren.credentials";

export class Unauthorized extends Error {}

export function loggedIn() {
  return sessionStorage.getItem(KEY) !== null;
}

export function logIn(user, password) {
  sessionStorage.setItem(KEY, btoa(`${user}:${password}`));
}

export function logOut() {
  sessionStorage.removeItem(KEY);
}

/** Calls the API: `body` goes as JSON, `headers` are added (X-Reason, say). The answer's
 *  JSON comes back; a refusal throws an Error with the API's reason. */
export async function api(path, { method = "GET", body, headers: extra = {} } = {}) {
  const headers = { ...extra, authorization: `Basic ${sessionStorage.getItem(KEY) ?? ""}` };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
  }
  const response = await fetch(`/api${path}`, {
    method,
    headers,
    // Credentials go in our own header; "omit" also keeps a 401's WWW-Authenticate from
    // opening the browser's own login dialog (which would leave the request hanging).
    credentials: "omit",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    logOut();
    throw new Unauthorized("Login failed");
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const reason = data?.reason ?? response.statusText;
    throw new Error(typeof reason === "string" ? reason : JSON.stringify(reason));
  }
  return data;
}

/** Whether an error is the API's "not found": the object was deleted, or never was. */
export function notFound(e) {
  return !(e instanceof Unauthorized) && /not.?found/i.test(e?.message ?? "");
}

/** `/queues/%2F/name` for ("queues", "/", "name"): each segment encoded as the API expects. */
export function path(...segments) {
  return `/${segments.map(encodeURIComponent).join("/")}`;
}

/** A path with a query string from an object (undefined and empty values left out). */
export function withQuery(base, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const text = q.toString();
  return text ? `${base}?${text}` : base;
}

/** The vhosts the user may see, by name (for vhost pickers). */
export async function vhostNames() {
  const vhosts = await api("/vhosts?columns=name");
  return vhosts.map((v) => v.name);
}

/** Downloads what an API path answers, as a file named `filename`. */
export async function download(apiPath, filename) {
  const data = await api(apiPath);
  const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  URL.revokeObjectURL(url);
}
