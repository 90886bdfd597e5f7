// Editing a table of arguments (queue and exchange arguments, binding arguments, message
// headers, policy definitions): rows of key, value and type, with buttons that add the keys an
// operator usually wants. The value is the JSON object the API takes.

import { h, muted } from "./dom.js";

const TYPES = [
  ["string", "String"],
  ["number", "Number"],
  ["boolean", "Boolean"],
  ["list", "List (JSON)"],
];

function row(key = "", value = "", type = "string") {
  const k = h("input", { "aria-label": "Key", class: "arg-key", value: key });
  const v = h("input", { "aria-label": "Value", class: "arg-value", value });
  const t = h(
    "select",
    { "aria-label": "Type", class: "arg-type" },
    TYPES.map(([value, text]) => h("option", { value, text, selected: value === type })),
  );
  const remove = h("button", { type: "button", class: "arg-remove", text: "×", "aria-label": "Remove" });
  const node = h("div", { class: "arg-row" }, [k, h("span", { text: "=" }), v, t, remove]);
  remove.addEventListener("click", () => node.remove());
  return node;
}

function parse(key, text, type) {
  switch (type) {
    case "number": {
      const n = Number(text);
      if (text.trim() === "" || Number.isNaN(n)) throw new Error(`${key}: '${text}' is not a number`);
      return n;
    }
    case "boolean":
      if (!["true", "false"].includes(text.trim())) throw new Error(`${key}: use true or false`);
      return text.trim() === "true";
    case "list":
      try {
        return JSON.parse(text);
      } catch {
        throw new Error(`${key}: '${text}' is not JSON`);
      }
    default:
      return text;
  }
}

/** A value as a row shows it: [text, type]. */
function typed(value) {
  if (typeof value === "number") return [String(value), "number"];
  if (typeof value === "boolean") return [String(value), "boolean"];
  if (typeof value === "string") return [value, "string"];
  return [JSON.stringify(value), "list"];
}

/**
 * An arguments editor.
 * suggestions: [{ key, type, label?, value? }] offered as "add" buttons.
 * Returns { node, value() → object (throws a readable Error on a bad value), clear(),
 * fill(object) (rows for an object's entries, to edit what is stored) }.
 */
export function argumentsEditor({ label = "Arguments", suggestions = [], id } = {}) {
  const rows = h("div", { class: "arg-rows" });
  const add = (key, type, value = "") => {
    const existing = [...rows.querySelectorAll(".arg-key")].find((k) => k.value === key && key);
    if (existing) {
      existing.parentElement.querySelector(".arg-value").focus();
      return;
    }
    const r = row(key, value, type);
    rows.append(r);
    r.querySelector(key ? ".arg-value" : ".arg-key").focus();
  };
  rows.append(row());
  const offers = suggestions.length
    ? h("div", { class: "arg-suggestions" }, [
        h("span", { class: "muted", text: "Add: " }),
        ...suggestions.map((s) =>
          h("button", {
            type: "button",
            class: "link",
            text: s.label ?? s.key,
            title: s.key,
            onclick: () => add(s.key, s.type ?? "string", s.value ?? ""),
          }),
        ),
      ])
    : null;
  const node = h("fieldset", { class: "args", id }, [
    h("legend", { text: label }),
    rows,
    h("div", { class: "actions" }, [
      h("button", { type: "button", text: "Add a row", onclick: () => add("", "string") }),
    ]),
    offers,
  ]);
  return {
    node,
    value() {
      const out = {};
      for (const r of rows.querySelectorAll(".arg-row")) {
        const key = r.querySelector(".arg-key").value.trim();
        const text = r.querySelector(".arg-value").value;
        if (!key) continue;
        out[key] = parse(key, text, r.querySelector(".arg-type").value);
      }
      return out;
    },
    clear() {
      rows.replaceChildren(row());
    },
    fill(object) {
      const entries = Object.entries(object ?? {});
      rows.replaceChildren(...(entries.length ? entries.map(([k, v]) => row(k, ...typed(v))) : [row()]));
    },
  };
}

/** An argument's value as text: strings as they are, other values as JSON, none as "". */
export function argText(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/**
 * Arguments (or a policy's definition) as a list of `key: value` lines, a muted dash when
 * there are none. `list` and `key` are the classes each page styles the list with; `between`
 * stands between a key and its value.
 */
export function argumentList(args, { list, key, between = ": " } = {}) {
  const entries = Object.entries(args ?? {});
  if (!entries.length) return muted("–");
  return h(
    "ul",
    { class: list },
    entries.map(([k, v]) => h("li", {}, [h("span", { class: key, text: `${k}${between}` }), argText(v)])),
  );
}

/** The arguments RabbitMQ's UI offers for queues. */
export const QUEUE_ARGUMENTS = [
  { key: "x-message-ttl", type: "number", label: "Message TTL" },
  { key: "x-expires", type: "number", label: "Auto expire" },
  { key: "x-max-length", type: "number", label: "Max length" },
  { key: "x-max-length-bytes", type: "number", label: "Max length bytes" },
  { key: "x-overflow", type: "string", label: "Overflow behaviour", value: "reject-publish" },
  { key: "x-dead-letter-exchange", type: "string", label: "Dead letter exchange" },
  { key: "x-dead-letter-routing-key", type: "string", label: "Dead letter routing key" },
  { key: "x-single-active-consumer", type: "boolean", label: "Single active consumer", value: "true" },
  { key: "x-max-priority", type: "number", label: "Maximum priority" },
  { key: "x-queue-mode", type: "string", label: "Lazy mode", value: "lazy" },
  { key: "x-message-deduplication", type: "boolean", label: "Deduplication", value: "true" },
  { key: "x-delivery-limit", type: "number", label: "Delivery limit (quorum)" },
  { key: "x-dead-letter-strategy", type: "string", label: "Dead letter strategy (quorum)", value: "at-least-once" },
  { key: "x-consumer-timeout", type: "number", label: "Consumer timeout" },
];

/** The arguments offered for exchanges. */
export const EXCHANGE_ARGUMENTS = [
  { key: "alternate-exchange", type: "string", label: "Alternate exchange" },
  { key: "x-delayed-type", type: "string", label: "Delayed type (x-delayed-message)", value: "direct" },
  { key: "hash-header", type: "string", label: "Hash header (x-consistent-hash)" },
  { key: "hash-property", type: "string", label: "Hash property (x-consistent-hash)", value: "message_id" },
];
