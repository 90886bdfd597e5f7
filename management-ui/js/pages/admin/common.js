// What every admin page uses: the admin tabs and the title, the check that the user may see the
// page, API calls whose errors read well, tags, and parts of a page that refresh themselves.

import { api, Unauthorized, withQuery } from "../../api.js";
import { button, h, muted, route } from "../../dom.js";

const TABS = [
  ["users", "Users"],
  ["vhosts", "Virtual hosts"],
  ["policies", "Policies"],
  ["limits", "Limits"],
  ["feature-flags", "Feature flags"],
];

/** The admin sub-navigation, `current` marked as the page shown. */
function tabs(current) {
  return h(
    "nav",
    { class: "tabs", "aria-label": "Admin" },
    TABS.map(([segment, text]) =>
      h("a", { href: route("admin", segment), text, "aria-current": segment === current ? "page" : undefined }),
    ),
  );
}

/** Starts an admin page: tabs, then the title (a text or an h2). */
export function start(view, tab, title) {
  view.root.classList.add("admin");
  const heading = typeof title === "string" ? h("h2", { text: title }) : title;
  view.root.append(tabs(tab), heading);
}

/** The logged-in user: {name, tags: [...]}. */
export async function whoami() {
  const me = await api("/whoami");
  return { name: me.name, tags: tagList(me.tags) };
}

/** A message for pages only some tags may use; true when the user has none of them. */
export function refuse(view, me, allowed = ["administrator"]) {
  if (me.tags.some((t) => allowed.includes(t))) return false;
  view.root.append(
    h("p", {
      class: "error",
      role: "alert",
      text: `This page needs the ${allowed.join(" or ")} tag; ${me.name} has ${me.tags.join(", ") || "no tags"}.`,
    }),
  );
  return true;
}

/** RabbitMQ's validation texts come with Erlang's `<<"...">>` HTML-escaped; show them plain. */
function plain(text) {
  return String(text)
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, "&")
    .trim();
}

/** api(), with the error's text made readable. */
export async function call(apiPath, options) {
  try {
    return await api(apiPath, options);
  } catch (e) {
    if (e instanceof Unauthorized) throw e;
    throw new Error(plain(e.message));
  }
}

/** Whether a user or vhost of that name exists: asked through the list filtered by name (no
 *  404 in the browser's console), then matched exactly. */
export async function exists(kind, name) {
  const reply = await call(withQuery(`/${kind}`, { page: 1, page_size: 500, name, columns: "name" }));
  const items = Array.isArray(reply) ? reply : reply.items ?? [];
  return items.some((item) => item.name === name);
}

/** The names of all users, for pickers. */
export async function userNames() {
  const users = await call("/users?columns=name");
  return users.map((u) => u.name).sort();
}

/** Tags as the API gives them (a list, or a comma-separated text) → a list. */
export function tagList(tags) {
  if (Array.isArray(tags)) return tags.filter(Boolean);
  return String(tags ?? "")
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
}

/** Tags as badges (or a muted dash). */
export function badges(tags) {
  const list = tagList(tags);
  if (!list.length) return muted("–");
  return h("span", {}, list.map((t) => h("span", { class: "badge", text: t })));
}

/** The tags an input holds, cleaned: "a, ,b" → "a,b". */
export function cleanTags(text) {
  return tagList(text).join(",");
}

export function capitalise(text) {
  const s = String(text ?? "");
  return s ? s[0].toUpperCase() + s.slice(1) : "";
}

export function code(text) {
  return h("code", { text: text ?? "" });
}

/** A small "Clear"/"Delete" button that asks first, then runs `action` and `after`; an error
 *  shows in the alert line of the panel the button is in. */
export function clearButton(text, question, action, after, label) {
  return button(
    text,
    async (event) => {
      const target = event.currentTarget;
      if (!window.confirm(question)) return;
      const alert = target.closest(".panel")?.querySelector("p.error[role=alert]");
      target.disabled = true;
      try {
        await action();
        if (alert) alert.textContent = "";
        await after?.();
      } catch (e) {
        if (e instanceof Unauthorized) throw e;
        if (alert) alert.textContent = plain(e.message);
        else window.alert(plain(e.message));
      } finally {
        target.disabled = false;
      }
    },
    { class: "danger small", "aria-label": label },
  );
}

/** A part of the page refreshed by replacing its content; errors show in its alert line. */
export function part(id) {
  const body = h("div", { class: "scroll", id });
  const error = h("p", { class: "error", role: "alert" });
  return {
    node: h("div", {}, [error, body]),
    show(...nodes) {
      error.textContent = "";
      body.replaceChildren(...nodes);
    },
    fail(e) {
      error.textContent = plain(e.message);
    },
  };
}

/** Runs `fn` now and on every poll; its errors show in `target` (a part). */
export function live(view, target, fn) {
  return view.poll(async () => {
    try {
      await fn();
    } catch (e) {
      if (e instanceof Unauthorized) throw e;
      target.fail(e);
    }
  });
}
