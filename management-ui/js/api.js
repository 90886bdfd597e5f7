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

export async function api(path, { method = "GET", body } = {}) {
  const headers = { authorization: `Basic ${sessionStorage.getItem(KEY) ?? ""}` };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
  }
  const response = await fetch(`/api${path}`, {
    method,
    headers,
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
