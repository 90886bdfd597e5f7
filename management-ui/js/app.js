// Warren's management UI: the login form, the navigation and the router. Each page is a module
// of pages/ that renders into the main element and registers what to refresh; live parts are
// polled every 5 s while the tab is visible. Pages talk only to /api, as any client does.

import { api, loggedIn, logIn, logOut, Unauthorized } from "./api.js";
import { h } from "./dom.js";
import * as overview from "./pages/overview.js";
import * as connections from "./pages/connections.js";
import * as channels from "./pages/channels.js";
import * as exchanges from "./pages/exchanges.js";
import * as queues from "./pages/queues.js";
import * as admin from "./pages/admin.js";

const POLL_MS = 5000;
const main = document.getElementById("main");
const nav = document.getElementById("nav");

/** Routes: the location's path segments (after `#/`) → the page that shows them. */
const ROUTES = [
  [[], overview.show],
  [["overview"], overview.show],
  [["connections"], connections.list],
  [["connections", "*"], connections.detail],
  [["channels"], channels.list],
  [["channels", "*"], channels.detail],
  [["exchanges"], exchanges.list],
  [["exchanges", "*", "*"], exchanges.detail],
  [["queues"], queues.list],
  [["queues", "*", "*"], queues.detail],
  [["admin"], admin.users],
  [["admin", "users"], admin.users],
  [["admin", "users", "*"], admin.user],
  [["admin", "vhosts"], admin.vhosts],
  [["admin", "vhosts", "*"], admin.vhost],
  [["admin", "policies"], admin.policies],
  [["admin", "limits"], admin.limits],
  [["admin", "feature-flags"], admin.featureFlags],
];

function segments() {
  const raw = location.hash.replace(/^#\/?/, "").split("?")[0];
  return raw === "" ? [] : raw.split("/").map(decodeURIComponent);
}

function match(parts) {
  for (const [pattern, page] of ROUTES) {
    if (pattern.length !== parts.length) continue;
    const args = [];
    if (pattern.every((p, i) => p === "*" ? args.push(parts[i]) > 0 : p === parts[i])) {
      return [page, args];
    }
  }
  return null;
}

/** What a page is given: where to render, and a way to have parts of it refreshed. */
class View {
  constructor(root) {
    this.root = root;
    this.polls = [];
  }

  /** Calls `fn` now and then every 5 s while the page is shown and the tab visible. */
  poll(fn) {
    this.polls.push(fn);
    return run(fn);
  }
}

let current = null;
let timer = null;

async function run(fn) {
  try {
    await fn();
  } catch (e) {
    if (e instanceof Unauthorized) showLogin("Your session ended; log in again");
    // Other errors are shown by the part that failed.
  }
}

function tick() {
  if (document.hidden || !current) return;
  for (const fn of current.polls) run(fn);
}

function highlight(parts) {
  const top = parts[0] ?? "overview";
  for (const a of nav.querySelectorAll("a[data-page]")) {
    if (a.dataset.page === top) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function render() {
  if (!loggedIn()) return showLogin();
  const parts = segments();
  highlight(parts);
  const view = new View(h("div", { class: "page" }));
  current = view;
  main.replaceChildren(view.root);
  const found = match(parts);
  if (!found) {
    view.root.append(h("h2", { text: "Not found" }), h("p", { text: "There is no such page." }));
    return;
  }
  const [page, args] = found;
  try {
    await page(view, ...args);
  } catch (e) {
    if (e instanceof Unauthorized) return showLogin("Your session ended; log in again");
    if (current === view) {
      view.root.append(h("p", { class: "error", role: "alert", text: e.message }));
    }
  }
}

function showLogin(message) {
  current = null;
  nav.hidden = true;
  const user = h("input", { name: "username", id: "username", autocomplete: "username", required: true });
  const password = h("input", {
    name: "password", id: "password", type: "password", autocomplete: "current-password", required: true,
  });
  const error = h("p", { class: "error", role: "alert", text: message ?? "" });
  const form = h("form", { class: "login" }, [
    h("h2", { text: "Log in" }),
    h("label", { class: "field" }, [h("span", { text: "Username" }), user]),
    h("label", { class: "field" }, [h("span", { text: "Password" }), password]),
    h("button", { type: "submit", text: "Log in" }),
    error,
  ]);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    logIn(user.value, password.value);
    try {
      await start();
    } catch (e) {
      showLogin(e instanceof Unauthorized ? "Login failed" : e.message);
    }
  });
  main.replaceChildren(form);
  user.focus();
}

async function start() {
  const me = await api("/whoami");
  document.getElementById("whoami").textContent = me.name;
  nav.hidden = false;
  await render();
}

document.getElementById("logout").addEventListener("click", () => {
  logOut();
  showLogin();
});
window.addEventListener("hashchange", () => render());
document.addEventListener("visibilitychange", tick);
clearInterval(timer);
timer = setInterval(tick, POLL_MS);

if (loggedIn()) start().catch(() => showLogin());
else showLogin();
