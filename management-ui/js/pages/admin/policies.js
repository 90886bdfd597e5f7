// Policies and operator policies: a table of each with a form that adds or updates one (a
// policy's name in the table fills the form, to edit it), shown for all vhosts or one.

import { path, vhostNames } from "../../api.js";
import { argumentList, argumentsEditor, EXCHANGE_ARGUMENTS, QUEUE_ARGUMENTS } from "../../args.js";
import { button, field, form, h, input, section, select } from "../../dom.js";
import { staticTable } from "../../table.js";
import { call, capitalise, clearButton, code, live, part, refuse, start, whoami } from "./common.js";

/** A policy key that stands for a queue or exchange argument (message-ttl for x-message-ttl),
 *  offered with the argument's label, type and value. */
function argumentKey(key) {
  const argument = [...QUEUE_ARGUMENTS, ...EXCHANGE_ARGUMENTS].find((a) => a.key === `x-${key}` || a.key === key);
  return { ...argument, key };
}

/** Policy keys RabbitMQ 3.10's UI offers (those Warren acts on first). */
const POLICY_KEYS = [
  ...["message-ttl", "expires", "max-length", "max-length-bytes", "overflow"].map(argumentKey),
  ...["dead-letter-exchange", "dead-letter-routing-key", "alternate-exchange", "queue-mode"].map(argumentKey),
  { key: "queue-version", type: "number", label: "Version", value: "2" },
  { key: "delivery-limit", type: "number", label: "Delivery limit" },
  { key: "max-in-memory-length", type: "number", label: "Max in memory length" },
  { key: "max-in-memory-bytes", type: "number", label: "Max in memory bytes" },
];

/** The keys an operator policy may set. */
const OPERATOR_POLICY_KEYS = [
  "message-ttl",
  "expires",
  "max-length",
  "max-length-bytes",
  "max-in-memory-length",
  "max-in-memory-bytes",
  "delivery-limit",
].map((key) => POLICY_KEYS.find((p) => p.key === key));

const APPLY_TO = [
  ["all", "Exchanges and queues"],
  ["exchanges", "Exchanges"],
  ["queues", "Queues"],
];

/** The two kinds: the words each uses, its API path, and the ids of its table and form. */
const KINDS = {
  user: {
    title: "User policies",
    noun: "policy",
    one: "a policy",
    plural: "policies",
    api: "policies",
    formId: "add-policy",
    tableId: "policies-table",
    prefix: "policy",
    suggestions: POLICY_KEYS,
    applyTo: "all",
  },
  operator: {
    title: "Operator policies",
    noun: "operator policy",
    one: "an operator policy",
    plural: "operator policies",
    api: "operator-policies",
    formId: "add-operator-policy",
    tableId: "operator-policies-table",
    prefix: "operator-policy",
    suggestions: OPERATOR_POLICY_KEYS,
    applyTo: "queues",
  },
};

/** A definition as a list of key = value lines. */
function definitionList(definition) {
  return argumentList(definition, { list: "kv", key: "key", between: " = " });
}

/** One kind of policy: its table and its add / update form. */
function policyKind(view, kind, { vhosts, filter }) {
  const list = part(`${kind.tableId}-box`);
  let items = [];
  const editor = argumentsEditor({ label: "Definition", suggestions: kind.suggestions, id: `${kind.prefix}-definition` });
  const vhostPick = select("vhost", vhosts, undefined, { id: `${kind.prefix}-vhost` });
  const nameInput = input("name", { id: `${kind.prefix}-name`, required: true, autocomplete: "off", spellcheck: "false" });
  const pattern = input("pattern", { id: `${kind.prefix}-pattern`, required: true, autocomplete: "off", spellcheck: "false" });
  const applyTo = select("apply-to", APPLY_TO, kind.applyTo, { id: `${kind.prefix}-apply-to` });
  const priority = input("priority", { id: `${kind.prefix}-priority`, type: "number", step: "1", value: "0", class: "num" });

  const node = form(
    { class: "stack policy-form", id: kind.formId },
    [
      h("div", { class: "pair" }, [field("Virtual host", vhostPick), field("Name", nameInput)]),
      field("Pattern", pattern, "A regular expression over queue or exchange names"),
      h("div", { class: "pair" }, [field("Apply to", applyTo), field("Priority", priority)]),
      editor.node,
      h("div", { class: "actions" }, [
        h("button", { type: "submit", text: `Add / update ${kind.noun}` }),
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
      await call(path(kind.api, v.vhost, v.name.trim()), {
        method: "PUT",
        body: { pattern: v.pattern, definition, priority: n, "apply-to": v["apply-to"] },
      });
      await refresh();
      return `${v.name.trim()} on ${v.vhost}`;
    },
    (what) => `${capitalise(kind.noun)} ${what} saved.`,
  );

  /** Fills the form with a policy of the table, to change it. */
  function edit(p) {
    if ([...vhostPick.options].every((o) => o.value !== p.vhost)) vhostPick.append(h("option", { value: p.vhost, text: p.vhost }));
    vhostPick.value = p.vhost;
    nameInput.value = p.name;
    pattern.value = p.pattern;
    applyTo.value = p["apply-to"] ?? "all";
    priority.value = String(p.priority ?? 0);
    editor.fill(p.definition);
    node.scrollIntoView({ block: "start" });
    nameInput.focus();
  }

  const columns = [
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
          `Delete ${kind.noun} ${p.name} on ${p.vhost}?`,
          () => call(path(kind.api, p.vhost, p.name), { method: "DELETE" }),
          refresh,
          `Delete ${p.name} on ${p.vhost}`,
        ),
    },
  ];

  function render() {
    const shown = filter.value ? items.filter((p) => p.vhost === filter.value) : items;
    list.show(staticTable(columns, shown, `No ${kind.plural}.`, kind.tableId));
  }

  async function refresh() {
    items = await call(`/${kind.api}`);
    render();
  }

  filter.addEventListener("change", render);
  return {
    list: section(kind.title, [list.node], { id: `${kind.tableId}-section` }),
    form: section(`Add / update ${kind.one}`, [node]),
    poll: () => live(view, list, refresh),
  };
}

export async function policies(view) {
  start(view, "policies", "Policies");
  const me = await whoami();
  if (refuse(view, me, ["administrator", "policymaker"])) return;
  const vhosts = await vhostNames();
  const filter = select("filter-vhost", [["", "All virtual hosts"], ...vhosts], undefined, { id: "policies-vhost-filter" });
  const user = policyKind(view, KINDS.user, { vhosts, filter });
  const operator = policyKind(view, KINDS.operator, { vhosts, filter });

  view.root.append(
    h("div", { class: "controls" }, [field("Show policies of", filter)]),
    user.list,
    operator.list,
    h("div", { class: "grid" }, [user.form, operator.form]),
  );
  await Promise.all([user.poll(), operator.poll()]);
}
