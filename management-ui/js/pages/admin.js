// The admin pages, after RabbitMQ 3.10's Admin tab: users (tags, password, permissions, topic
// permissions, limits), virtual hosts (metadata, tracing, permissions, limits), policies and
// operator policies, limits, and feature flags. Every page starts with the admin tabs.
//
// Two API behaviours shape the forms: a PUT of a user without a password clears the user's
// password (so "update" sends the stored hash back when the password is left alone), and a PUT
// of a vhost replaces its metadata (so the tracing switch sends the description and tags too).

import { api, logIn, path, Unauthorized, vhostNames, withQuery } from "../api.js";
import { argumentsEditor } from "../args.js";
import { button, checkbox, dangerButton, facts, field, form, h, input, link, route, section, select } from "../dom.js";
import { bytes, count, perSecond } from "../format.js";
import { pagedTable, staticTable } from "../table.js";

// ---------------------------------------------------------------------------------------------
// Shared pieces.

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

/** Starts an admin page: tabs, then the title. */
function start(view, tab, title) {
  view.root.classList.add("admin");
  const heading = typeof title === "string" ? h("h2", { text: title }) : title;
  view.root.append(tabs(tab), heading);
}

/** The tags RabbitMQ's UI offers as buttons, with the labels it gives them. */
const USER_TAGS = [
  ["administrator", "Admin"],
  ["monitoring", "Monitoring"],
  ["policymaker", "Policymaker"],
  ["management", "Management"],
  ["impersonator", "Impersonator"],
];

const VHOST_LIMITS = [
  ["max-connections", "Max connections"],
  ["max-queues", "Max queues"],
];

const USER_LIMITS = [
  ["max-connections", "Max connections"],
  ["max-channels", "Max channels"],
];

/** Policy keys RabbitMQ 3.10's UI offers (those Warren acts on first). */
const POLICY_KEYS = [
  { key: "message-ttl", type: "number", label: "Message TTL" },
  { key: "expires", type: "number", label: "Auto expire" },
  { key: "max-length", type: "number", label: "Max length" },
  { key: "max-length-bytes", type: "number", label: "Max length bytes" },
  { key: "overflow", type: "string", label: "Overflow behaviour", value: "reject-publish" },
  { key: "dead-letter-exchange", type: "string", label: "Dead letter exchange" },
  { key: "dead-letter-routing-key", type: "string", label: "Dead letter routing key" },
  { key: "alternate-exchange", type: "string", label: "Alternate exchange" },
  { key: "queue-mode", type: "string", label: "Lazy mode", value: "lazy" },
  { key: "queue-version", type: "number", label: "Version", value: "2" },
  { key: "delivery-limit", type: "number", label: "Delivery limit" },
  { key: "max-in-memory-length", type: "number", label: "Max in memory length" },
  { key: "max-in-memory-bytes", type: "number", label: "Max in memory bytes" },
];

/** The keys an operator policy may set. */
const OPERATOR_POLICY_KEYS = [
  { key: "message-ttl", type: "number", label: "Message TTL" },
  { key: "expires", type: "number", label: "Auto expire" },
  { key: "max-length", type: "number", label: "Max length" },
  { key: "max-length-bytes", type: "number", label: "Max length bytes" },
  { key: "max-in-memory-length", type: "number", label: "Max in memory length" },
  { key: "max-in-memory-bytes", type: "number", label: "Max in memory bytes" },
  { key: "delivery-limit", type: "number", label: "Delivery limit" },
];

const APPLY_TO = [
  ["all", "Exchanges and queues"],
  ["exchanges", "Exchanges"],
  ["queues", "Queues"],
];

const QUEUE_TYPES = [
  ["classic", "Classic"],
  ["quorum", "Quorum"],
  ["stream", "Stream"],
];

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
async function call(apiPath, options) {
  try {
    return await api(apiPath, options);
  } catch (e) {
    if (e instanceof Unauthorized) throw e;
    throw new Error(plain(e.message));
  }
}

function isNotFound(e) {
  return !(e instanceof Unauthorized) && /not.?found/i.test(e.message);
}

/** Whether a user or vhost of that name exists: asked through the list filtered by name (no
 *  404 in the browser's console), then matched exactly. */
async function exists(kind, name) {
  const reply = await call(withQuery(`/${kind}`, { page: 1, page_size: 500, name, columns: "name" }));
  const items = Array.isArray(reply) ? reply : reply.items ?? [];
  return items.some((item) => item.name === name);
}

/** The logged-in user: {name, tags: [...]}. */
async function whoami() {
  const me = await api("/whoami");
  return { name: me.name, tags: tagList(me.tags) };
}

/** Tags as the API gives them (a list, or a comma-separated text) → a list. */
function tagList(tags) {
  if (Array.isArray(tags)) return tags.filter(Boolean);
  return String(tags ?? "")
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
}

/** Tags as badges (or a muted dash). */
function badges(tags) {
  const list = tagList(tags);
  if (!list.length) return h("span", { class: "muted", text: "–" });
  return h("span", {}, list.map((t) => h("span", { class: "badge", text: t })));
}

/** The tags an input holds, cleaned: "a, ,b" → "a,b". */
function cleanTags(text) {
  return tagList(text).join(",");
}

/** A `select` with its own id (dom.select names it f-{name}). */
function choice(name, id, options, selected) {
  const node = select(name, options, selected);
  node.id = id;
  return node;
}

/** Replaces a select's options, keeping the chosen one when it is still there. */
function setOptions(node, options, placeholder) {
  const keep = node.value;
  const items = options.map((o) => (Array.isArray(o) ? o : [o, o]));
  node.replaceChildren(
    ...(placeholder && !items.length ? [h("option", { value: "", text: placeholder })] : []),
    ...items.map(([value, text]) => h("option", { value, text })),
  );
  if (items.some(([value]) => value === keep)) node.value = keep;
}

/** A message for pages only administrators may use; true when the user is not one. */
function refuse(view, me, allowed = ["administrator"]) {
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

/** A small "Clear"/"Delete" button that asks first, then runs `action` and `after`; an error
 *  shows in the alert line of the panel the button is in. */
function clearButton(text, question, action, after, label) {
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

/** A table in a horizontally scrolling box, with an id. */
function scrollTable(id, columns, items, empty) {
  const table = staticTable(columns, items, empty);
  if (id) table.id = id;
  return table;
}

/** A part of the page refreshed by replacing its content; errors show in its alert line. */
function part(id) {
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
function live(view, target, fn) {
  return view.poll(async () => {
    try {
      await fn();
    } catch (e) {
      if (e instanceof Unauthorized) throw e;
      target.fail(e);
    }
  });
}

/** A permission regex input (".*" unless told). */
function regex(name, id, label, value = ".*") {
  return field(label, input(name, { id, value, autocomplete: "off", spellcheck: "false" }));
}

/** "No limit" or the limits of one limits entry ({value: {...}} or RabbitMQ's `[]`). */
function limitEntries(value) {
  if (!value || Array.isArray(value)) return [];
  return Object.entries(value);
}

/** A limit value from a form: an integer (RabbitMQ takes negative as "no limit"). */
function limitValue(text) {
  const n = Number(text);
  if (String(text).trim() === "" || !Number.isInteger(n)) throw new Error("The limit must be a whole number.");
  return n;
}

/** The names of all users, for pickers. */
async function userNames() {
  const users = await call("/users?columns=name");
  return users.map((u) => u.name).sort();
}

/** A definition as a list of key = value lines. */
function definitionList(definition) {
  const entries = Object.entries(definition ?? {});
  if (!entries.length) return h("span", { class: "muted", text: "–" });
  return h(
    "ul",
    { class: "kv" },
    entries.map(([k, v]) =>
      h("li", {}, [h("span", { class: "key", text: k }), " = ", typeof v === "string" ? v : JSON.stringify(v)]),
    ),
  );
}

/**
 * Fills an argumentsEditor with an object (args.js has no setter): clears it, adds one row
 * per entry with the editor's own "Add a row" button, and sets key, value and type.
 */
function fillArguments(editor, object) {
  editor.clear();
  const rows = editor.node.querySelector(".arg-rows");
  const addRow = editor.node.querySelector(".actions button");
  Object.entries(object ?? {}).forEach(([key, value], i) => {
    if (i > 0) addRow.click();
    const row = rows.lastElementChild;
    const type =
      typeof value === "number" ? "number" : typeof value === "boolean" ? "boolean" : typeof value === "string" ? "string" : "list";
    row.querySelector(".arg-key").value = key;
    row.querySelector(".arg-value").value = type === "list" ? JSON.stringify(value) : String(value);
    row.querySelector(".arg-type").value = type;
  });
}

// ---------------------------------------------------------------------------------------------
// Users.

/** A tags input with RabbitMQ's "Set" buttons that add a tag (and "None" that clears). */
function tagsField(id, value = "") {
  const tags = input("tags", { id, value, autocomplete: "off", spellcheck: "false" });
  const add = (tag) => {
    const list = tagList(tags.value);
    if (!list.includes(tag)) list.push(tag);
    tags.value = list.join(", ");
    tags.focus();
  };
  return h("div", { class: "tags-field" }, [
    field("Tags", tags, "Comma-separated, e.g. administrator, monitoring"),
    h("div", { class: "tag-buttons", role: "group", "aria-label": "Add a tag" }, [
      h("span", { class: "muted", text: "Set: " }),
      ...USER_TAGS.map(([tag, label]) =>
        h("button", {
          type: "button",
          class: "link",
          text: label,
          title: tag,
          "data-tag": tag,
          "aria-label": `Add tag ${tag}`,
          onclick: () => add(tag),
        }),
      ),
      h("button", {
        type: "button",
        class: "link",
        text: "None",
        "aria-label": "Remove all tags",
        onclick: () => {
          tags.value = "";
          tags.focus();
        },
      }),
    ]),
  ]);
}

/** Password, confirmation and a checkbox that turns both off (and says what it means). */
function passwordFields({ passwordId, confirmId, checkName, checkLabel, passwordLabel = "Password" }) {
  const password = input("password", { id: passwordId, type: "password", autocomplete: "new-password" });
  const confirm = input("password-confirm", { id: confirmId, type: "password", autocomplete: "new-password" });
  const toggle = checkbox(checkName, checkLabel);
  const box = toggle.querySelector("input");
  box.addEventListener("change", () => {
    password.disabled = box.checked;
    confirm.disabled = box.checked;
  });
  return {
    nodes: [
      h("div", { class: "pair" }, [field(passwordLabel, password), field("Confirm password", confirm)]),
      toggle,
    ],
    reset() {
      password.disabled = false;
      confirm.disabled = false;
    },
  };
}

export async function users(view) {
  start(view, "users", "Users");
  const me = await whoami();
  if (refuse(view, me)) return;

  let access = new Map(); // user → the vhosts it has permissions on
  const table = pagedTable({
    path: "/users",
    id: "users-table",
    columns: [
      { label: "Name", sort: "name", value: (u) => link(u.name, "admin", "users", u.name) },
      { label: "Tags", sort: "tags", value: (u) => badges(u.tags) },
      {
        label: "Can access virtual hosts",
        value: (u) => {
          const vhosts = access.get(u.name);
          return vhosts?.length ? vhosts.join(", ") : h("span", { class: "muted", text: "No access" });
        },
      },
      { label: "Has password", value: (u) => (u.password_hash ? "Yes" : "No") },
    ],
    empty: "No users.",
  });

  const pw = passwordFields({
    passwordId: "user-password",
    confirmId: "user-password-confirm",
    checkName: "no-password",
    checkLabel: "No password (the user cannot log in with a password)",
  });
  const add = form(
    { class: "stack", id: "add-user" },
    [
      field("Username", input("username", { id: "user-name", required: true, autocomplete: "off", spellcheck: "false" })),
      ...pw.nodes,
      tagsField("user-tags"),
      h("div", { class: "actions" }, [h("button", { type: "submit", text: "Add user" })]),
    ],
    async (v, node) => {
      const name = v.username.trim();
      if (!name) throw new Error("Give the user a name.");
      const body = { tags: cleanTags(v.tags) };
      if (v["no-password"]) {
        body.password_hash = "";
      } else {
        if (!v.password) throw new Error("Give a password, or tick “No password”.");
        if (v.password !== v["password-confirm"]) throw new Error("The passwords do not match.");
        body.password = v.password;
      }
      // A PUT on an existing user would replace it (and its password): refuse here instead.
      if (await exists("users", name)) throw new Error(`A user named “${name}” already exists; change it on its page.`);
      await call(path("users", name), { method: "PUT", body });
      node.reset();
      pw.reset();
      await table.refresh().catch(() => {});
      return name;
    },
    (name) => `User ${name} added.`,
  );

  view.root.append(section("All users", [table.node]), section("Add a user", [add]));

  await view.poll(async () => {
    try {
      const permissions = await call("/permissions");
      const next = new Map();
      for (const p of permissions) {
        if (!next.has(p.user)) next.set(p.user, []);
        next.get(p.user).push(p.vhost);
      }
      for (const list of next.values()) list.sort();
      access = next;
    } catch (e) {
      if (e instanceof Unauthorized) throw e;
    }
    await table.refresh();
  });
}

export async function user(view, name) {
  start(view, "users", h("h2", {}, ["User ", h("span", { class: "name", text: name })]));
  const me = await whoami();
  if (refuse(view, me)) return;
  let current;
  try {
    current = await call(path("users", name));
  } catch (e) {
    if (!isNotFound(e)) throw e;
    view.root.append(
      h("p", { class: "error", role: "alert", text: `There is no user named “${name}”.` }),
      h("p", {}, [link("All users", "admin", "users")]),
    );
    return;
  }
  const vhosts = await vhostNames();

  // Overview.
  const overview = part("user-facts");

  // Update.
  const pw = passwordFields({
    passwordId: "update-password",
    confirmId: "update-password-confirm",
    checkName: "clear-password",
    checkLabel: "Remove the password (the user can no longer log in with one)",
    passwordLabel: "New password",
  });
  const tagsBox = tagsField("update-tags", tagList(current.tags).join(", "));
  const update = form(
    { class: "stack", id: "update-user" },
    [
      ...pw.nodes,
      h("p", {
        class: "hint muted",
        text:
          "Leave both password fields empty to keep the current password: the API clears a password " +
          "when an update names none, so this form sends the stored password hash back.",
      }),
      tagsBox,
      h("div", { class: "actions" }, [h("button", { type: "submit", text: "Update user" })]),
    ],
    async (v, node) => {
      const fresh = await call(path("users", name));
      const body = { tags: cleanTags(v.tags) };
      let newPassword = null;
      if (v["clear-password"]) {
        body.password_hash = "";
      } else if (v.password || v["password-confirm"]) {
        if (v.password !== v["password-confirm"]) throw new Error("The passwords do not match.");
        body.password = v.password;
        newPassword = v.password;
      } else {
        body.password_hash = fresh.password_hash ?? "";
        if (fresh.hashing_algorithm) body.hashing_algorithm = fresh.hashing_algorithm;
      }
      await call(path("users", name), { method: "PUT", body });
      // Changing one's own password: keep the session working with the new one.
      if (newPassword !== null && name === me.name) logIn(name, newPassword);
      for (const el of node.querySelectorAll("input[type=password]")) el.value = "";
      await refreshUser();
      return v["clear-password"] ? "removed" : newPassword !== null ? "changed" : "kept";
    },
    (what) => `User updated; password ${what}.`,
  );

  // Permissions.
  const permissions = part("user-permissions");
  const setPermission = form(
    { class: "inline", id: "set-permission" },
    [
      field("Virtual host", choice("vhost", "perm-vhost", vhosts)),
      regex("configure", "perm-configure", "Configure regexp"),
      regex("write", "perm-write", "Write regexp"),
      regex("read", "perm-read", "Read regexp"),
      h("button", { type: "submit", text: "Set permission" }),
    ],
    async (v) => {
      await call(path("permissions", v.vhost, name), {
        method: "PUT",
        body: { configure: v.configure, write: v.write, read: v.read },
      });
      await refreshPermissions();
      return v.vhost;
    },
    (vhost) => `Permission on ${vhost} set.`,
  );

  // Topic permissions.
  const topics = part("user-topic-permissions");
  const topicForm = topicPermissionForm({
    fixed: { user: name },
    pickerName: "vhost",
    pickerLabel: "Virtual host",
    pickerId: "topic-vhost",
    options: vhosts,
    after: () => refreshTopics(),
  });

  // Limits.
  const limitsPart = part("user-limits");
  const setLimit = form(
    { class: "inline", id: "set-user-limit" },
    [
      field("Limit", choice("limit", "user-limit-name", USER_LIMITS)),
      field("Value", input("value", { id: "user-limit-value", type: "number", step: "1", required: true, class: "num" })),
      h("button", { type: "submit", text: "Set limit" }),
    ],
    async (v, node) => {
      await call(path("user-limits", name, v.limit), { method: "PUT", body: { value: limitValue(v.value) } });
      node.querySelector("[name=value]").value = "";
      await refreshLimits();
      return v.limit;
    },
    (limit) => `Limit ${limit} set.`,
  );

  // Delete.
  const deleteStatus = h("p", { class: "status", role: "status" });
  const remove = dangerButton(
    "Delete this user",
    `Delete user ${name}? Its permissions go with it.`,
    async () => {
      try {
        await call(path("users", name), { method: "DELETE" });
        location.hash = route("admin", "users");
      } catch (e) {
        if (e instanceof Unauthorized) throw e;
        deleteStatus.className = "status error";
        deleteStatus.textContent = e.message;
      }
    },
    { id: "delete-user" },
  );

  view.root.append(
    h("div", { class: "grid" }, [section("Overview", [overview.node]), section("Update this user", [update])]),
    section("Permissions", [permissions.node, h("h4", { text: "Set permission" }), setPermission]),
    section("Topic permissions", [topics.node, h("h4", { text: "Set topic permission" }), topicForm]),
    section("User limits", [limitsPart.node, h("h4", { text: "Set a limit" }), setLimit]),
    section("Delete this user", [h("div", { class: "actions" }, [remove]), deleteStatus]),
  );

  async function refreshUser() {
    const [u, perms] = await Promise.all([call(path("users", name)), call(path("users", name, "permissions"))]);
    current = u;
    overview.show(
      facts([
        ["Name", u.name],
        ["Tags", badges(u.tags)],
        ["Has password", u.password_hash ? "Yes" : "No"],
        ["Hashing algorithm", u.hashing_algorithm ?? ""],
        [
          "Can access virtual hosts",
          perms.length ? perms.map((p) => p.vhost).sort().join(", ") : h("span", { class: "muted", text: "No access" }),
        ],
      ]),
    );
  }

  async function refreshPermissions() {
    const perms = await call(path("users", name, "permissions"));
    permissions.show(
      scrollTable(
        "user-permissions-table",
        [
          { label: "Virtual host", value: (p) => link(p.vhost, "admin", "vhosts", p.vhost) },
          { label: "Configure regexp", value: (p) => code(p.configure) },
          { label: "Write regexp", value: (p) => code(p.write) },
          { label: "Read regexp", value: (p) => code(p.read) },
          {
            label: "",
            value: (p) =>
              clearButton(
                "Clear",
                `Clear the permissions of ${name} on ${p.vhost}?`,
                () => call(path("permissions", p.vhost, name), { method: "DELETE" }),
                () => Promise.all([refreshPermissions(), refreshUser()]),
                `Clear permission on ${p.vhost}`,
              ),
          },
        ],
        perms,
        "No permissions: this user cannot use any virtual host.",
      ),
    );
  }

  async function refreshTopics() {
    const list = await call(path("users", name, "topic-permissions"));
    topics.show(
      scrollTable(
        "user-topic-permissions-table",
        [
          { label: "Virtual host", value: (p) => link(p.vhost, "admin", "vhosts", p.vhost) },
          { label: "Exchange", value: (p) => p.exchange },
          { label: "Write regexp", value: (p) => code(p.write) },
          { label: "Read regexp", value: (p) => code(p.read) },
          {
            label: "",
            value: (p) =>
              clearButton(
                "Clear",
                `Clear the topic permissions of ${name} on ${p.vhost} (all its exchanges)?`,
                () => call(path("topic-permissions", p.vhost, name), { method: "DELETE" }),
                refreshTopics,
                `Clear topic permissions on ${p.vhost}`,
              ),
          },
        ],
        list,
        "No topic permissions.",
      ),
    );
  }

  async function refreshLimits() {
    const list = await call(path("user-limits", name));
    const entries = list.flatMap((l) => limitEntries(l.value));
    limitsPart.show(
      scrollTable(
        "user-limits-table",
        [
          { label: "Limit", value: ([k]) => k },
          { label: "Value", num: true, value: ([, v]) => count(v) },
          {
            label: "",
            value: ([k]) =>
              clearButton(
                "Clear",
                `Clear ${k} of ${name}?`,
                () => call(path("user-limits", name, k), { method: "DELETE" }),
                refreshLimits,
                `Clear ${k}`,
              ),
          },
        ],
        entries,
        "No limits.",
      ),
    );
  }

  await Promise.all([
    live(view, overview, refreshUser),
    live(view, permissions, refreshPermissions),
    live(view, topics, refreshTopics),
    live(view, limitsPart, refreshLimits),
  ]);
}

function code(text) {
  return h("code", { text: text ?? "" });
}

/**
 * The "Set topic permission" form: one side fixed (user or vhost), the other picked.
 * The exchange input suggests the vhost's topic exchanges and defaults to amq.topic.
 */
function topicPermissionForm({ fixed, pickerName, pickerLabel, pickerId, options, after }) {
  const picker = choice(pickerName, pickerId, options);
  const exchanges = h("datalist", { id: `${pickerId}-exchanges` });
  const exchange = input("exchange", {
    id: "topic-exchange",
    value: "amq.topic",
    list: exchanges.id,
    required: true,
    autocomplete: "off",
    spellcheck: "false",
  });
  const vhostOf = () => fixed.vhost ?? picker.value;
  async function loadExchanges() {
    try {
      const list = await api(withQuery(path("exchanges", vhostOf()), { columns: "name,type" }));
      exchanges.replaceChildren(
        ...list.filter((x) => x.type === "topic").map((x) => h("option", { value: x.name })),
      );
    } catch {
      exchanges.replaceChildren();
    }
  }
  if (!fixed.vhost) picker.addEventListener("change", loadExchanges);
  loadExchanges();
  return form(
    { class: "inline", id: "set-topic-permission" },
    [
      field(pickerLabel, picker),
      field("Exchange", exchange),
      exchanges,
      regex("write", "topic-write", "Write regexp"),
      regex("read", "topic-read", "Read regexp"),
      h("button", { type: "submit", text: "Set topic permission" }),
    ],
    async (v) => {
      const user = fixed.user ?? v[pickerName];
      const vhost = fixed.vhost ?? v[pickerName];
      if (!v.exchange.trim()) throw new Error("Name the topic exchange.");
      await call(path("topic-permissions", vhost, user), {
        method: "PUT",
        body: { exchange: v.exchange.trim(), write: v.write, read: v.read },
      });
      await after();
      return `${user} on ${vhost}`;
    },
    (what) => `Topic permission for ${what} set.`,
  );
}

// ---------------------------------------------------------------------------------------------
// Virtual hosts.

function vhostTags(v) {
  return v.tags ?? v.metadata?.tags ?? [];
}

function vhostDescription(v) {
  return v.description ?? v.metadata?.description ?? "";
}

function rate(v, key) {
  const r = v.message_stats?.[`${key}_details`]?.rate;
  return r === undefined ? "" : perSecond(r);
}

export async function vhosts(view) {
  start(view, "vhosts", "Virtual hosts");
  const me = await whoami();
  const admin = me.tags.includes("administrator");

  const table = pagedTable({
    path: "/vhosts",
    id: "vhosts-table",
    columns: [
      {
        label: "Name",
        sort: "name",
        value: (v) => (admin ? link(v.name, "admin", "vhosts", v.name) : v.name),
      },
      { label: "Description", sort: "description", value: (v) => vhostDescription(v) },
      { label: "Tags", value: (v) => badges(vhostTags(v)) },
      { label: "Default queue type", sort: "default_queue_type", value: (v) => v.default_queue_type ?? "" },
      { label: "Tracing", sort: "tracing", value: (v) => (v.tracing ? "On" : "Off") },
      { label: "Ready", sort: "messages_ready", num: true, value: (v) => count(v.messages_ready) },
      { label: "Unacked", sort: "messages_unacknowledged", num: true, value: (v) => count(v.messages_unacknowledged) },
      { label: "Total", sort: "messages", num: true, value: (v) => count(v.messages) },
      { label: "Publish", sort: "message_stats.publish_details.rate", num: true, value: (v) => rate(v, "publish") },
      {
        label: "Deliver / get",
        sort: "message_stats.deliver_get_details.rate",
        num: true,
        value: (v) => rate(v, "deliver_get"),
      },
    ],
    empty: "No virtual hosts.",
  });

  view.root.append(section("All virtual hosts", [table.node]));

  if (admin) {
    const add = form(
      { class: "stack", id: "add-vhost" },
      [
        field("Name", input("name", { id: "vhost-name", required: true, autocomplete: "off", spellcheck: "false" })),
        field("Description", input("description", { id: "vhost-description", autocomplete: "off" })),
        field("Tags", input("tags", { id: "vhost-tags", autocomplete: "off" }), "Comma-separated"),
        field("Default queue type", choice("default_queue_type", "vhost-queue-type", QUEUE_TYPES, "classic")),
        h("div", { class: "actions" }, [h("button", { type: "submit", text: "Add virtual host" })]),
      ],
      async (v, node) => {
        const name = v.name.trim();
        if (!name) throw new Error("Give the virtual host a name.");
        // A PUT on an existing vhost would rewrite its description and tags: refuse here.
        if (await exists("vhosts", name)) throw new Error(`A virtual host named “${name}” already exists.`);
        await call(path("vhosts", name), {
          method: "PUT",
          body: { description: v.description, tags: cleanTags(v.tags), default_queue_type: v.default_queue_type },
        });
        node.reset();
        await table.refresh().catch(() => {});
        return name;
      },
      (name) => `Virtual host ${name} added.`,
    );
    view.root.append(section("Add a new virtual host", [add]));
  }

  await view.poll(() => table.refresh());
}

export async function vhost(view, name) {
  start(view, "vhosts", h("h2", {}, ["Virtual host ", h("span", { class: "name", text: name })]));
  const me = await whoami();
  if (refuse(view, me)) return;
  let current;
  try {
    current = await call(path("vhosts", name));
  } catch (e) {
    if (!isNotFound(e)) throw e;
    view.root.append(
      h("p", { class: "error", role: "alert", text: `There is no virtual host named “${name}”.` }),
      h("p", {}, [link("All virtual hosts", "admin", "vhosts")]),
    );
    return;
  }
  const users = await userNames();

  // Overview and the tracing switch.
  const overview = part("vhost-facts");
  const tracing = h("input", { type: "checkbox", id: "vhost-tracing", role: "switch", checked: !!current.tracing });
  const tracingStatus = h("span", { class: "status", role: "status", "aria-live": "polite" });
  tracing.addEventListener("change", async () => {
    tracing.disabled = true;
    tracingStatus.className = "status";
    tracingStatus.textContent = "";
    try {
      await call(path("vhosts", name), { method: "PUT", body: { ...metadata(current), tracing: tracing.checked } });
      tracingStatus.textContent = tracing.checked ? "Tracing on." : "Tracing off.";
      await refreshVhost();
    } catch (e) {
      if (e instanceof Unauthorized) throw e;
      tracing.checked = !tracing.checked;
      tracingStatus.className = "status error";
      tracingStatus.textContent = e.message;
    } finally {
      tracing.disabled = false;
    }
  });
  const tracingSwitch = h("div", { class: "switch" }, [
    h("label", { class: "check" }, [tracing, h("span", { text: "Trace messages (to amq.rabbitmq.trace)" })]),
    tracingStatus,
  ]);

  // Update metadata.
  const update = form(
    { class: "stack", id: "update-vhost" },
    [
      field("Description", input("description", { id: "update-vhost-description", value: vhostDescription(current) })),
      field("Tags", input("tags", { id: "update-vhost-tags", value: tagList(vhostTags(current)).join(", ") }), "Comma-separated"),
      field(
        "Default queue type",
        choice(
          "default_queue_type",
          "update-vhost-queue-type",
          [["", "(not set)"], ...QUEUE_TYPES],
          QUEUE_TYPES.some(([t]) => t === current.default_queue_type) ? current.default_queue_type : "",
        ),
      ),
      h("div", { class: "actions" }, [h("button", { type: "submit", text: "Update virtual host" })]),
    ],
    async (v) => {
      const body = { description: v.description, tags: cleanTags(v.tags), tracing: !!current.tracing };
      if (v.default_queue_type) body.default_queue_type = v.default_queue_type;
      await call(path("vhosts", name), { method: "PUT", body });
      await refreshVhost();
    },
    "Virtual host updated.",
  );

  // Permissions.
  const permissions = part("vhost-permissions");
  const setPermission = form(
    { class: "inline", id: "set-permission" },
    [
      field("User", choice("user", "perm-user", users)),
      regex("configure", "perm-configure", "Configure regexp"),
      regex("write", "perm-write", "Write regexp"),
      regex("read", "perm-read", "Read regexp"),
      h("button", { type: "submit", text: "Set permission" }),
    ],
    async (v) => {
      await call(path("permissions", name, v.user), {
        method: "PUT",
        body: { configure: v.configure, write: v.write, read: v.read },
      });
      await refreshPermissions();
      return v.user;
    },
    (u) => `Permission for ${u} set.`,
  );

  // Topic permissions.
  const topics = part("vhost-topic-permissions");
  const topicForm = topicPermissionForm({
    fixed: { vhost: name },
    pickerName: "user",
    pickerLabel: "User",
    pickerId: "topic-user",
    options: users,
    after: () => refreshTopics(),
  });

  // Limits.
  const limitsPart = part("vhost-limits");
  const setLimit = form(
    { class: "inline", id: "set-vhost-limit" },
    [
      field("Limit", choice("limit", "vhost-limit-name", VHOST_LIMITS)),
      field("Value", input("value", { id: "vhost-limit-value", type: "number", step: "1", required: true, class: "num" })),
      h("button", { type: "submit", text: "Set limit" }),
    ],
    async (v, node) => {
      await call(path("vhost-limits", name, v.limit), { method: "PUT", body: { value: limitValue(v.value) } });
      node.querySelector("[name=value]").value = "";
      await refreshLimits();
      return v.limit;
    },
    (limit) => `Limit ${limit} set.`,
  );

  // Delete.
  const deleteStatus = h("p", { class: "status", role: "status" });
  const remove = dangerButton(
    "Delete this virtual host",
    `Delete virtual host ${name}? All its queues, exchanges, messages and permissions go with it.`,
    async () => {
      try {
        await call(path("vhosts", name), { method: "DELETE" });
        location.hash = route("admin", "vhosts");
      } catch (e) {
        if (e instanceof Unauthorized) throw e;
        deleteStatus.className = "status error";
        deleteStatus.textContent = e.message;
      }
    },
    { id: "delete-vhost" },
  );

  view.root.append(
    h("div", { class: "grid" }, [
      section("Overview", [overview.node, tracingSwitch]),
      section("Update this virtual host", [update]),
    ]),
    section("Permissions", [permissions.node, h("h4", { text: "Set permission" }), setPermission]),
    section("Topic permissions", [topics.node, h("h4", { text: "Set topic permission" }), topicForm]),
    section("Virtual host limits", [limitsPart.node, h("h4", { text: "Set a limit" }), setLimit]),
    section("Delete this virtual host", [h("div", { class: "actions" }, [remove]), deleteStatus]),
  );

  async function refreshVhost() {
    const v = await call(path("vhosts", name));
    current = v;
    if (!tracing.disabled) tracing.checked = !!v.tracing;
    const state = Object.entries(v.cluster_state ?? {})
      .map(([node, s]) => `${s} on ${node}`)
      .join(", ");
    overview.show(
      facts([
        ["Description", vhostDescription(v) || h("span", { class: "muted", text: "–" })],
        ["Tags", badges(vhostTags(v))],
        ["Default queue type", v.default_queue_type ?? ""],
        ["Tracing", v.tracing ? "On" : "Off"],
        state ? ["State", state] : null,
        ["Messages ready", count(v.messages_ready), true],
        ["Messages unacked", count(v.messages_unacknowledged), true],
        ["Messages total", count(v.messages), true],
        v.message_stats ? ["Publish rate", rate(v, "publish"), true] : null,
        v.message_stats ? ["Deliver / get rate", rate(v, "deliver_get"), true] : null,
        v.recv_oct !== undefined ? ["Data received", bytes(v.recv_oct), true] : null,
        v.send_oct !== undefined ? ["Data sent", bytes(v.send_oct), true] : null,
      ]),
    );
  }

  async function refreshPermissions() {
    const perms = await call(path("vhosts", name, "permissions"));
    permissions.show(
      scrollTable(
        "vhost-permissions-table",
        [
          { label: "User", value: (p) => link(p.user, "admin", "users", p.user) },
          { label: "Configure regexp", value: (p) => code(p.configure) },
          { label: "Write regexp", value: (p) => code(p.write) },
          { label: "Read regexp", value: (p) => code(p.read) },
          {
            label: "",
            value: (p) =>
              clearButton(
                "Clear",
                `Clear the permissions of ${p.user} on ${name}?`,
                () => call(path("permissions", name, p.user), { method: "DELETE" }),
                refreshPermissions,
                `Clear permission of ${p.user}`,
              ),
          },
        ],
        perms,
        "No user may use this virtual host.",
      ),
    );
  }

  async function refreshTopics() {
    const list = await call(path("vhosts", name, "topic-permissions"));
    topics.show(
      scrollTable(
        "vhost-topic-permissions-table",
        [
          { label: "User", value: (p) => link(p.user, "admin", "users", p.user) },
          { label: "Exchange", value: (p) => p.exchange },
          { label: "Write regexp", value: (p) => code(p.write) },
          { label: "Read regexp", value: (p) => code(p.read) },
          {
            label: "",
            value: (p) =>
              clearButton(
                "Clear",
                `Clear the topic permissions of ${p.user} on ${name} (all its exchanges)?`,
                () => call(path("topic-permissions", name, p.user), { method: "DELETE" }),
                refreshTopics,
                `Clear topic permissions of ${p.user}`,
              ),
          },
        ],
        list,
        "No topic permissions.",
      ),
    );
  }

  async function refreshLimits() {
    const list = await call(path("vhost-limits", name));
    const entries = list.flatMap((l) => limitEntries(l.value));
    limitsPart.show(
      scrollTable(
        "vhost-limits-table",
        [
          { label: "Limit", value: ([k]) => k },
          { label: "Value", num: true, value: ([, v]) => count(v) },
          {
            label: "",
            value: ([k]) =>
              clearButton(
                "Clear",
                `Clear ${k} of ${name}?`,
                () => call(path("vhost-limits", name, k), { method: "DELETE" }),
                refreshLimits,
                `Clear ${k}`,
              ),
          },
        ],
        entries,
        "No limits.",
      ),
    );
  }

  await Promise.all([
    live(view, overview, refreshVhost),
    live(view, permissions, refreshPermissions),
    live(view, topics, refreshTopics),
    live(view, limitsPart, refreshLimits),
  ]);
}

/** What a vhost PUT must repeat so it does not wipe the vhost's metadata. */
function metadata(v) {
  const out = { description: vhostDescription(v), tags: tagList(vhostTags(v)).join(",") };
  if (v.default_queue_type && v.default_queue_type !== "undefined") out.default_queue_type = v.default_queue_type;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Policies.

/** One kind of policy: its API path, its table and its add / update form. */
function policyKind(view, { kind, title, api: apiPath, formId, tableId, prefix, suggestions, vhosts, filter }) {
  const list = part(`${tableId}-box`);
  let items = [];
  const editor = argumentsEditor({ label: "Definition", suggestions, id: `${prefix}-definition` });
  const vhostPick = choice("vhost", `${prefix}-vhost`, vhosts);
  const nameInput = input("name", { id: `${prefix}-name`, required: true, autocomplete: "off", spellcheck: "false" });
  const pattern = input("pattern", { id: `${prefix}-pattern`, required: true, autocomplete: "off", spellcheck: "false" });
  const applyTo = choice("apply-to", `${prefix}-apply-to`, APPLY_TO, kind === "operator" ? "queues" : "all");
  const priority = input("priority", { id: `${prefix}-priority`, type: "number", step: "1", value: "0", class: "num" });

  const node = form(
    { class: "stack policy-form", id: formId },
    [
      h("div", { class: "pair" }, [field("Virtual host", vhostPick), field("Name", nameInput)]),
      field("Pattern", pattern, "A regular expression over queue or exchange names"),
      h("div", { class: "pair" }, [field("Apply to", applyTo), field("Priority", priority)]),
      editor.node,
      h("div", { class: "actions" }, [
        h("button", { type: "submit", text: `Add / update ${kind === "operator" ? "operator policy" : "policy"}` }),
        button("Clear form", () => {
          node.reset();
          editor.clear();
        }),
      ]),
    ],
    async (v) => {
      const definition = editor.value();
      if (!Object.keys(definition).length) throw new Error("Give the policy a definition (at least one key).");
      const n = Number(v.priority || 0);
      if (!Number.isInteger(n)) throw new Error("The priority must be a whole number.");
      await call(path(apiPath, v.vhost, v.name.trim()), {
        method: "PUT",
        body: { pattern: v.pattern, definition, priority: n, "apply-to": v["apply-to"] },
      });
      await refresh();
      return `${v.name.trim()} on ${v.vhost}`;
    },
    (what) => `${kind === "operator" ? "Operator policy" : "Policy"} ${what} saved.`,
  );

  function edit(p) {
    if ([...vhostPick.options].every((o) => o.value !== p.vhost)) vhostPick.append(h("option", { value: p.vhost, text: p.vhost }));
    vhostPick.value = p.vhost;
    nameInput.value = p.name;
    pattern.value = p.pattern;
    applyTo.value = p["apply-to"] ?? "all";
    priority.value = String(p.priority ?? 0);
    fillArguments(editor, p.definition);
    node.scrollIntoView({ block: "start" });
    nameInput.focus();
  }

  function render() {
    const shown = filter.value ? items.filter((p) => p.vhost === filter.value) : items;
    list.show(
      scrollTable(
        tableId,
        [
          { label: "Virtual host", value: (p) => p.vhost },
          {
            label: "Name",
            value: (p) =>
              h("button", {
                type: "button",
                class: "link",
                text: p.name,
                title: "Edit in the form below",
                "aria-label": `Edit ${p.name} on ${p.vhost}`,
                onclick: () => edit(p),
              }),
          },
          { label: "Pattern", value: (p) => code(p.pattern) },
          { label: "Apply to", value: (p) => APPLY_TO.find(([k]) => k === p["apply-to"])?.[1] ?? p["apply-to"] },
          { label: "Definition", value: (p) => definitionList(p.definition) },
          { label: "Priority", num: true, value: (p) => String(p.priority ?? 0) },
          {
            label: "",
            value: (p) =>
              clearButton(
                "Delete",
                `Delete ${kind === "operator" ? "operator policy" : "policy"} ${p.name} on ${p.vhost}?`,
                () => call(path(apiPath, p.vhost, p.name), { method: "DELETE" }),
                refresh,
                `Delete ${p.name} on ${p.vhost}`,
              ),
          },
        ],
        shown,
        kind === "operator" ? "No operator policies." : "No policies.",
      ),
    );
  }

  async function refresh() {
    items = await call(`/${apiPath}`);
    render();
  }

  filter.addEventListener("change", render);
  return {
    list: section(title, [list.node], { id: `${tableId}-section` }),
    form: section(`Add / update ${kind === "operator" ? "an operator policy" : "a policy"}`, [node]),
    poll: () => live(view, list, refresh),
  };
}

export async function policies(view) {
  start(view, "policies", "Policies");
  const me = await whoami();
  if (refuse(view, me, ["administrator", "policymaker"])) return;
  const vhosts = await vhostNames();
  const filter = choice("filter-vhost", "policies-vhost-filter", [["", "All virtual hosts"], ...vhosts]);

  const user = policyKind(view, {
    kind: "user",
    title: "User policies",
    api: "policies",
    formId: "add-policy",
    tableId: "policies-table",
    prefix: "policy",
    suggestions: POLICY_KEYS,
    vhosts,
    filter,
  });
  const operator = policyKind(view, {
    kind: "operator",
    title: "Operator policies",
    api: "operator-policies",
    formId: "add-operator-policy",
    tableId: "operator-policies-table",
    prefix: "operator-policy",
    suggestions: OPERATOR_POLICY_KEYS,
    vhosts,
    filter,
  });

  view.root.append(
    h("div", { class: "controls" }, [field("Show policies of", filter)]),
    user.list,
    operator.list,
    h("div", { class: "grid" }, [user.form, operator.form]),
  );
  await Promise.all([user.poll(), operator.poll()]);
}

// ---------------------------------------------------------------------------------------------
// Limits.

export async function limits(view) {
  start(view, "limits", "Limits");
  const me = await whoami();
  if (refuse(view, me)) return;
  const [vhosts, users] = await Promise.all([vhostNames(), userNames()]);

  const vhostPart = part("vhost-limits-box");
  const userPart = part("user-limits-box");

  async function refreshVhosts() {
    const list = await call("/vhost-limits");
    const rows = list.flatMap((l) => limitEntries(l.value).map(([k, v]) => ({ vhost: l.vhost, limit: k, value: v })));
    vhostPart.show(
      scrollTable(
        "vhost-limits-table",
        [
          { label: "Virtual host", value: (r) => link(r.vhost, "admin", "vhosts", r.vhost) },
          { label: "Limit", value: (r) => r.limit },
          { label: "Value", num: true, value: (r) => count(r.value) },
          {
            label: "",
            value: (r) =>
              clearButton(
                "Clear",
                `Clear ${r.limit} of virtual host ${r.vhost}?`,
                () => call(path("vhost-limits", r.vhost, r.limit), { method: "DELETE" }),
                refreshVhosts,
                `Clear ${r.limit} of ${r.vhost}`,
              ),
          },
        ],
        rows,
        "No virtual host limits.",
      ),
    );
  }

  async function refreshUsers() {
    const list = await call("/user-limits");
    const rows = list.flatMap((l) => limitEntries(l.value).map(([k, v]) => ({ user: l.user, limit: k, value: v })));
    userPart.show(
      scrollTable(
        "user-limits-table",
        [
          { label: "User", value: (r) => link(r.user, "admin", "users", r.user) },
          { label: "Limit", value: (r) => r.limit },
          { label: "Value", num: true, value: (r) => count(r.value) },
          {
            label: "",
            value: (r) =>
              clearButton(
                "Clear",
                `Clear ${r.limit} of user ${r.user}?`,
                () => call(path("user-limits", r.user, r.limit), { method: "DELETE" }),
                refreshUsers,
                `Clear ${r.limit} of ${r.user}`,
              ),
          },
        ],
        rows,
        "No user limits.",
      ),
    );
  }

  const vhostForm = form(
    { class: "stack", id: "set-vhost-limit" },
    [
      field("Virtual host", choice("vhost", "vhost-limit-vhost", vhosts)),
      field("Limit", choice("limit", "vhost-limit-name", VHOST_LIMITS)),
      field(
        "Value",
        input("value", { id: "vhost-limit-value", type: "number", step: "1", required: true, class: "num" }),
        "0 allows none; a negative value means no limit",
      ),
      h("div", { class: "actions" }, [h("button", { type: "submit", text: "Set / update limit" })]),
    ],
    async (v, node) => {
      await call(path("vhost-limits", v.vhost, v.limit), { method: "PUT", body: { value: limitValue(v.value) } });
      node.querySelector("[name=value]").value = "";
      await refreshVhosts();
      return `${v.limit} of ${v.vhost}`;
    },
    (what) => `Limit ${what} set.`,
  );

  const userForm = form(
    { class: "stack", id: "set-user-limit" },
    [
      field("User", choice("user", "user-limit-user", users)),
      field("Limit", choice("limit", "user-limit-name", USER_LIMITS)),
      field(
        "Value",
        input("value", { id: "user-limit-value", type: "number", step: "1", required: true, class: "num" }),
        "0 allows none; a negative value means no limit",
      ),
      h("div", { class: "actions" }, [h("button", { type: "submit", text: "Set / update limit" })]),
    ],
    async (v, node) => {
      await call(path("user-limits", v.user, v.limit), { method: "PUT", body: { value: limitValue(v.value) } });
      node.querySelector("[name=value]").value = "";
      await refreshUsers();
      return `${v.limit} of ${v.user}`;
    },
    (what) => `Limit ${what} set.`,
  );

  view.root.append(
    section("Virtual host limits", [vhostPart.node]),
    section("User limits", [userPart.node]),
    h("div", { class: "grid" }, [
      section("Set / update a virtual host limit", [vhostForm]),
      section("Set / update a user limit", [userForm]),
    ]),
  );
  await Promise.all([live(view, vhostPart, refreshVhosts), live(view, userPart, refreshUsers)]);
}

// ---------------------------------------------------------------------------------------------
// Feature flags.

export async function featureFlags(view) {
  start(view, "feature-flags", "Feature flags");
  const flags = part("feature-flags-box");
  view.root.append(section("All feature flags", [flags.node]));

  async function refresh() {
    const list = await call("/feature-flags");
    list.sort((a, b) => a.name.localeCompare(b.name));
    flags.show(
      scrollTable(
        "feature-flags-table",
        [
          {
            label: "Name",
            value: (f) => (f.doc_url ? h("a", { href: f.doc_url, text: f.name, rel: "noreferrer" }) : f.name),
          },
          {
            label: "State",
            value: (f) =>
              f.state === "disabled"
                ? h("span", { class: "inline-actions" }, [
                    h("span", { class: "state-off", text: "Disabled" }),
                    button(
                      "Enable",
                      async (event) => {
                        if (!window.confirm(`Enable feature flag ${f.name}? It cannot be disabled again.`)) return;
                        event.target.disabled = true;
                        try {
                          await call(path("feature-flags", f.name, "enable"), { method: "PUT", body: {} });
                          await refresh();
                        } catch (e) {
                          if (e instanceof Unauthorized) throw e;
                          flags.fail(e);
                          event.target.disabled = false;
                        }
                      },
                      { class: "small", "aria-label": `Enable ${f.name}` },
                    ),
                  ])
                : h("span", { class: f.state === "enabled" ? "state-ok" : "", text: capitalise(f.state) }),
          },
          { label: "Stability", value: (f) => capitalise(f.stability) },
          { label: "Description", value: (f) => f.desc ?? f.description ?? "" },
          { label: "Provided by", value: (f) => f.provided_by ?? "" },
        ],
        list,
        "No feature flags.",
      ),
    );
  }

  await live(view, flags, refresh);
}

function capitalise(text) {
  const s = String(text ?? "");
  return s ? s[0].toUpperCase() + s.slice(1) : "";
}
