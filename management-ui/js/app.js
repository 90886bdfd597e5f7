// Warren's management UI: the login form and the overview, polled every 5 s while the tab
// is visible. Pages talk only to /api, as any client does.

import { api, loggedIn, logIn, logOut, Unauthorized } from "./api.js";
import { count, perSecond } from "./format.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let timer = null;

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function showLogin(message) {
  clearInterval(timer);
  nav.hidden = true;
  const user = element("input", { name: "username", autocomplete: "username", required: "" });
  const password = element("input", {
    name: "password", type: "password", autocomplete: "current-password", required: "",
  });
  const error = element("p", { class: "error", role: "alert", text: message ?? "" });
  const form = element("form", { class: "login" }, [
    element("label", {}, ["Username", user]),
    element("label", {}, ["Password", password]),
    element("button", { type: "submit", text: "Log in" }),
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

function row(label, value, numeric = true) {
  return element("tr", {}, [
    element("th", { text: label }),
    element("td", { class: numeric ? "num" : "", text: value }),
  ]);
}

async function showOverview() {
  const o = await api("/overview");
  const totals = o.object_totals ?? {};
  const queued = o.queue_totals ?? {};
  const rates = o.message_stats ?? {};
  main.replaceChildren(
    element("h2", { text: "Overview" }),
    element("table", { id: "totals" }, [
      row("Connections", count(totals.connections)),
      row("Channels", count(totals.channels)),
      row("Exchanges", count(totals.exchanges)),
      row("Queues", count(totals.queues)),
      row("Consumers", count(totals.consumers)),
      row("Messages ready", count(queued.messages_ready)),
      row("Messages unacknowledged", count(queued.messages_unacknowledged)),
      row("Publish", perSecond(rates.publish_details?.rate)),
      row("Deliver", perSecond(rates.deliver_get_details?.rate)),
      row("Node", o.node, false),
      row("Version", `${o.product_name} ${o.product_version}`, false),
    ]),
  );
}

async function start() {
  const me = await api("/whoami");
  document.getElementById("whoami").textContent = me.name;
  nav.hidden = false;
  await showOverview();
  clearInterval(timer);
  timer = setInterval(() => {
    if (!document.hidden) showOverview().catch(onError);
  }, 5000);
}

function onError(e) {
  if (e instanceof Unauthorized) showLogin("Your session ended; log in again");
}

document.getElementById("logout").addEventListener("click", () => {
  logOut();
  showLogin();
});

if (loggedIn()) start().catch(() => showLogin());
else showLogin();
