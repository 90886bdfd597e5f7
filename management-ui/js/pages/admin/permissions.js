// The panels a user's page and a vhost's page both show, each written once for either side:
// permissions, topic permissions and limits. The page's own user or vhost is fixed; its forms
// pick the other side (a user's page picks the vhost, a vhost's page the user). The limits
// page uses the limit form and table too, for every user or vhost at once.

import { api, path, withQuery } from "../../api.js";
import { field, form, h, input, link, section, select } from "../../dom.js";
import { count } from "../../format.js";
import { staticTable } from "../../table.js";
import { call, clearButton, code, live, part } from "./common.js";
import { otherSide } from "./sides.js";

/** A permission regex input (".*" unless told). */
function regex(name, id, label, value = ".*") {
  return field(label, input(name, { id, value, autocomplete: "off", spellcheck: "false" }));
}

/** The user and vhost of a permission set from `side`'s page: its own name and the picked one. */
function pair(side, name, picked) {
  return { [side.key]: name, [otherSide(side).key]: picked };
}

/**
 * The list of `kind` ("permissions" or "topic-permissions") of one user or vhost: the other
 * side's link first, a Clear button last. Every row names both its user and its vhost, so the
 * Clear question and path read the same from either page. `cleared` also runs after a Clear.
 */
function permissionList(view, side, name, { kind, columns, empty, noun, clearLabel, note = "", cleared }) {
  const other = otherSide(side);
  const list = part(`${side.key}-${kind}`);
  const clear = (p) =>
    clearButton(
      "Clear",
      `Clear the ${noun} of ${p.user} on ${p.vhost}${note}?`,
      () => call(path(kind, p.vhost, p.user), { method: "DELETE" }),
      () => Promise.all([refresh(), cleared?.()]),
      `Clear ${clearLabel} ${other.prepositions.clear} ${p[other.key]}`,
    );
  async function refresh() {
    const rows = await call(path(side.collection, name, kind));
    const first = { label: other.label, value: (p) => link(p[other.key], "admin", other.collection, p[other.key]) };
    list.show(staticTable([first, ...columns, { label: "", value: clear }], rows, empty, `${side.key}-${kind}-table`));
  }
  return { node: list.node, refresh, poll: () => live(view, list, refresh) };
}

/** The Permissions panel of one user or vhost; `names` are the other side's, to pick from. */
export function permissionsPanel(view, side, name, { names, cleared }) {
  const other = otherSide(side);
  const list = permissionList(view, side, name, {
    kind: "permissions",
    columns: [
      { label: "Configure regexp", value: (p) => code(p.configure) },
      { label: "Write regexp", value: (p) => code(p.write) },
      { label: "Read regexp", value: (p) => code(p.read) },
    ],
    empty: side.noPermissions,
    noun: "permissions",
    clearLabel: "permission",
    cleared,
  });
  const setForm = form(
    { class: "inline", id: "set-permission" },
    [
      field(other.label, select(other.key, names, undefined, { id: `perm-${other.key}` })),
      regex("configure", "perm-configure", "Configure regexp"),
      regex("write", "perm-write", "Write regexp"),
      regex("read", "perm-read", "Read regexp"),
      h("button", { type: "submit", text: "Set permission" }),
    ],
    async (v) => {
      const { user, vhost } = pair(side, name, v[other.key]);
      await call(path("permissions", vhost, user), {
        method: "PUT",
        body: { configure: v.configure, write: v.write, read: v.read },
      });
      await list.refresh();
      return v[other.key];
    },
    (picked) => `Permission ${other.prepositions.set} ${picked} set.`,
  );
  return {
    node: section("Permissions", [list.node, h("h4", { text: "Set permission" }), setForm]),
    poll: list.poll,
  };
}

/** The Topic permissions panel of one user or vhost. */
export function topicPermissionsPanel(view, side, name, { names }) {
  const list = permissionList(view, side, name, {
    kind: "topic-permissions",
    columns: [
      { label: "Exchange", value: (p) => p.exchange },
      { label: "Write regexp", value: (p) => code(p.write) },
      { label: "Read regexp", value: (p) => code(p.read) },
    ],
    empty: "No topic permissions.",
    noun: "topic permissions",
    clearLabel: "topic permissions",
    note: " (all its exchanges)",
  });
  const setForm = topicPermissionForm(side, name, names, list.refresh);
  return {
    node: section("Topic permissions", [list.node, h("h4", { text: "Set topic permission" }), setForm]),
    poll: list.poll,
  };
}

/**
 * The "Set topic permission" form. The exchange input suggests the vhost's topic exchanges
 * (the picked vhost's, on a user's page) and defaults to amq.topic.
 */
function topicPermissionForm(side, name, names, after) {
  const other = otherSide(side);
  const picker = select(other.key, names, undefined, { id: `topic-${other.key}` });
  const exchanges = h("datalist", { id: `topic-${other.key}-exchanges` });
  const exchange = input("exchange", {
    id: "topic-exchange",
    value: "amq.topic",
    list: exchanges.id,
    required: true,
    autocomplete: "off",
    spellcheck: "false",
  });
  const vhostOf = () => pair(side, name, picker.value).vhost;
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
  if (other.key === "vhost") picker.addEventListener("change", loadExchanges);
  loadExchanges();
  return form(
    { class: "inline", id: "set-topic-permission" },
    [
      field(other.label, picker),
      field("Exchange", exchange),
      exchanges,
      regex("write", "topic-write", "Write regexp"),
      regex("read", "topic-read", "Read regexp"),
      h("button", { type: "submit", text: "Set topic permission" }),
    ],
    async (v) => {
      const { user, vhost } = pair(side, name, v[other.key]);
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
// Limits.

/** A limit value from a form: an integer (RabbitMQ takes negative as "no limit"). */
function limitValue(text) {
  const n = Number(text);
  if (String(text).trim() === "" || !Number.isInteger(n)) throw new Error("The limit must be a whole number.");
  return n;
}

/** An API limits list as rows {owner, limit, value}. An entry without limits is RabbitMQ's `[]`. */
export function limitRows(side, list) {
  return list.flatMap((l) =>
    Array.isArray(l.value) || !l.value
      ? []
      : Object.entries(l.value).map(([limit, value]) => ({ owner: l[side.key], limit, value })),
  );
}

/** The limits of a side's users or vhosts; `withOwner` (the limits page) names each row's. */
export function limitsTable(side, rows, refresh, withOwner = false) {
  const clear = (r) =>
    clearButton(
      "Clear",
      withOwner ? `Clear ${r.limit} of ${side.noun} ${r.owner}?` : `Clear ${r.limit} of ${r.owner}?`,
      () => call(path(`${side.key}-limits`, r.owner, r.limit), { method: "DELETE" }),
      refresh,
      withOwner ? `Clear ${r.limit} of ${r.owner}` : `Clear ${r.limit}`,
    );
  const columns = [
    withOwner ? { label: side.label, value: (r) => link(r.owner, "admin", side.collection, r.owner) } : null,
    { label: "Limit", value: (r) => r.limit },
    { label: "Value", num: true, value: (r) => count(r.value) },
    { label: "", value: clear },
  ].filter(Boolean);
  return staticTable(columns, rows, withOwner ? `No ${side.noun} limits.` : "No limits.", `${side.key}-limits-table`);
}

/**
 * The form that sets a limit of one user or vhost (`name`, a line in its panel) or, on the
 * limits page, of one picked from `names` (a stack with a hint).
 */
export function limitForm(side, { name, names, after }) {
  const picked = name === undefined;
  const value = input("value", { id: `${side.key}-limit-value`, type: "number", step: "1", required: true, class: "num" });
  return form(
    { class: picked ? "stack" : "inline", id: `set-${side.key}-limit` },
    [
      picked ? field(side.label, select(side.key, names, undefined, { id: `${side.key}-limit-${side.key}` })) : null,
      field("Limit", select("limit", side.limits, undefined, { id: `${side.key}-limit-name` })),
      field("Value", value, picked ? "0 allows none; a negative value means no limit" : undefined),
      picked
        ? h("div", { class: "actions" }, [h("button", { type: "submit", text: "Set / update limit" })])
        : h("button", { type: "submit", text: "Set limit" }),
    ],
    async (v) => {
      const owner = picked ? v[side.key] : name;
      await call(path(`${side.key}-limits`, owner, v.limit), { method: "PUT", body: { value: limitValue(v.value) } });
      value.value = "";
      await after();
      return picked ? `${v.limit} of ${owner}` : v.limit;
    },
    (what) => `Limit ${what} set.`,
  );
}

/** The limits panel of one user or vhost. */
export function limitsPanel(view, side, name) {
  const list = part(`${side.key}-limits`);
  async function refresh() {
    list.show(limitsTable(side, limitRows(side, await call(path(`${side.key}-limits`, name))), refresh));
  }
  const setForm = limitForm(side, { name, after: refresh });
  return {
    node: section(`${side.label} limits`, [list.node, h("h4", { text: "Set a limit" }), setForm]),
    poll: () => live(view, list, refresh),
  };
}
