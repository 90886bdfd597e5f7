// The queues pages: the paged list of queues with a form that declares one, and a queue's own
// page (its numbers and charts, consumers, bindings, publishing to it, getting messages from
// it, purging and deleting it), as RabbitMQ's management UI shows them.

import { api, notFound, path, vhostNames, withQuery } from "../api.js";
import { argText, argumentList, argumentsEditor, QUEUE_ARGUMENTS } from "../args.js";
import { chart, QUEUED, samplesQuery } from "../chart.js";
import {
  badge, button, dangerButton, facts, field, form, h, input, link, muted, section, select, statusLine,
} from "../dom.js";
import { publishForm } from "../publish.js";
import { staticTable, pagedTable, rateColumn } from "../table.js";
import { bytes, count, when } from "../format.js";

// ---------------------------------------------------------------------------------------------
// Helpers shared by both pages.

/** The badges RabbitMQ shows for a queue's flags and arguments: [text, title, argument key]. */
const ARGUMENT_BADGES = [
  ["x-message-ttl", "TTL", "Message TTL"],
  ["x-expires", "Exp", "Auto expire"],
  ["x-dead-letter-exchange", "DLX", "Dead letter exchange"],
  ["x-dead-letter-routing-key", "DLK", "Dead letter routing key"],
  ["x-max-length", "Lim", "Max length"],
  ["x-max-length-bytes", "Lim B", "Max length bytes"],
  ["x-overflow", "Ovfl", "Overflow behaviour"],
  ["x-max-priority", "Pri", "Maximum priority"],
  ["x-single-active-consumer", "SAC", "Single active consumer"],
  ["x-queue-mode", "Lazy", "Queue mode"],
  ["x-message-deduplication", "Dedup", "Deduplication"],
  ["x-delivery-limit", "DLim", "Delivery limit"],
];

function yesNo(value) {
  return value ? "yes" : "no";
}

/** The features of a queue as badges (durable, auto delete, exclusive, arguments, policy). */
function features(q) {
  const out = [];
  if (q.durable) out.push(badge("D", "Durable: survives a restart of the broker"));
  if (q.auto_delete) out.push(badge("AD", "Auto delete: deleted when its last consumer goes"));
  if (q.exclusive) out.push(badge("Excl", "Exclusive: used by one connection, deleted when it closes"));
  const args = { ...(q.arguments ?? {}) };
  for (const [key, text, label] of ARGUMENT_BADGES) {
    if (key in args) {
      out.push(badge(text, `${label} (${key}): ${argText(args[key])}`));
      delete args[key];
    }
  }
  delete args["x-queue-type"];
  const others = Object.entries(args);
  if (others.length) {
    out.push(badge("Args", `Other arguments: ${others.map(([k, v]) => `${k}: ${argText(v)}`).join(", ")}`));
  }
  if (q.policy) out.push(badge(q.policy, `Policy: ${q.policy}`, "policy"));
  if (q.operator_policy) out.push(badge(q.operator_policy, `Operator policy: ${q.operator_policy}`, "policy"));
  return h("span", { class: "features" }, out);
}

/** How argument lists look here: keys muted, one line each (queues.css). */
const ARGUMENT_LIST = { list: "arg-list", key: "muted" };

/** Whether messages went in or out of the queue lately. */
function busy(q) {
  const s = q.message_stats ?? {};
  return ["publish", "deliver_get", "ack", "redeliver"].some((k) => (s[`${k}_details`]?.rate ?? 0) > 0);
}

/** A queue's state as RabbitMQ words it: idle when it has been idle, else its state. (Warren
 *  reports idle_since even while messages flow, so a queue with traffic is not called idle.) */
function state(q) {
  if (q.state === undefined || q.state === null) return muted("–");
  if (q.state === "running" && q.idle_since && !busy(q)) {
    return h("span", { class: "state-idle muted", title: `Idle since ${when(q.idle_since)}`, text: "idle" });
  }
  return h("span", { class: `state-${q.state}`, text: q.state });
}

function percent(n) {
  if (n === undefined || n === null || n === "") return null;
  return `${Math.round(Number(n) * 1000) / 10} %`;
}

// ---------------------------------------------------------------------------------------------
// The list.

export async function list(view) {
  view.root.classList.add("queues-page");
  const vhosts = await vhostNames().catch(() => ["/"]);
  const columns = [
    vhosts.length > 1 ? { label: "Virtual host", sort: "vhost", value: (q) => q.vhost } : null,
    { label: "Name", sort: "name", value: (q) => link(q.name, "queues", q.vhost, q.name) },
    { label: "Type", sort: "type", value: (q) => q.type ?? "classic" },
    { label: "Features", value: features },
    { label: "State", sort: "state", value: state },
    { label: "Consumers", sort: "consumers", num: true, value: (q) => count(q.consumers) },
    { label: "Ready", sort: "messages_ready", num: true, value: (q) => count(q.messages_ready) },
    { label: "Unacked", sort: "messages_unacknowledged", num: true, value: (q) => count(q.messages_unacknowledged) },
    { label: "Total", sort: "messages", num: true, value: (q) => count(q.messages) },
    rateColumn("Incoming", "publish"),
    rateColumn("Deliver / get", "deliver_get"),
    rateColumn("Ack", "ack"),
  ].filter(Boolean);

  const table = pagedTable({ path: "/queues", columns, id: "queues-table", empty: "No queues yet." });
  view.root.append(h("h2", { text: "Queues" }), section("All queues", [table.node], { class: "panel queues-list" }));
  view.root.append(addQueue(vhosts, () => table.refresh()));
  await view.poll(() => table.refresh());
}

function addQueue(vhosts, refresh) {
  const vhost = select("vhost", vhosts, vhosts.includes("/") ? "/" : vhosts[0], { id: "queue-vhost" });
  const type = select("type", [["classic", "Classic"], ["quorum", "Quorum"]], "classic", { id: "queue-type" });
  const name = input("name", { id: "queue-name", required: true, autocomplete: "off", spellcheck: "false" });
  const durable = select("durable", [["true", "Durable"], ["false", "Transient"]], "true", { id: "queue-durable" });
  const autoDelete = select("auto_delete", [["false", "No"], ["true", "Yes"]], "false", { id: "queue-auto-delete" });
  const args = argumentsEditor({ label: "Arguments", suggestions: QUEUE_ARGUMENTS, id: "queue-arguments" });
  let added = "";
  const node = form(
    { class: "stack", id: "add-queue" },
    [
      h("div", { class: "queue-form-row" }, [
        field("Virtual host", vhost),
        field("Type", type, "A quorum queue is durable and never auto-deleted; streams are not supported yet."),
      ]),
      field("Name", name),
      h("div", { class: "queue-form-row" }, [field("Durability", durable), field("Auto delete", autoDelete)]),
      args.node,
      h("div", { class: "actions" }, [h("button", { type: "submit", text: "Add queue" })]),
    ],
    async (v) => {
      const queue = v.name.trim();
      if (!queue) throw new Error("A queue needs a name.");
      const quorum = v.type === "quorum";
      const queueArgs = args.value();
      if (quorum) queueArgs["x-queue-type"] = "quorum";
      // A quorum queue is durable and not auto-delete (the broker refuses anything else).
      const body = {
        durable: quorum || v.durable === "true",
        auto_delete: !quorum && v.auto_delete === "true",
        arguments: queueArgs,
      };
      await api(path("queues", v.vhost, queue), { method: "PUT", body });
      added = queue;
      name.value = "";
      args.clear();
      await refresh().catch(() => {});
    },
    () => `Queue '${added}' added.`,
  );
  return section("Add a new queue", [node], { class: "panel add-queue" });
}

// ---------------------------------------------------------------------------------------------
// A queue's page.

const RATES = [
  { label: "Publish", key: "publish" },
  { label: "Deliver / get", key: "deliver_get" },
  { label: "Acknowledge", key: "ack" },
  { label: "Redelivered", key: "redeliver" },
];

export async function detail(view, vhost, name) {
  view.root.classList.add("queues-page", "queue-page");
  const title = h("h2", { id: "queue-title" }, [
    "Queue ",
    h("span", { class: "queue-name", text: name }),
    " ",
    h("small", { text: `in virtual host ${vhost}` }),
  ]);
  view.root.append(title);

  const queuePath = path("queues", vhost, name);
  let q;
  try {
    q = await api(withQuery(queuePath, samplesQuery()));
  } catch (e) {
    if (!notFound(e)) throw e;
    view.root.append(missing(vhost, name));
    return;
  }

  const problem = h("p", { class: "error", role: "alert", id: "queue-error" });
  const overview = h("div", { id: "queue-facts" });
  const messages = h("div", { class: "scroll", id: "queue-messages" });
  const queued = chart({ title: "Queued messages", series: QUEUED, id: "chart-queue-messages" });
  const rates = chart({ title: "Message rates", series: RATES, rate: true, id: "chart-queue-rates" });
  const consumers = h("div", { class: "scroll", id: "queue-consumers" });
  const consumersTitle = h("h3", { text: "Consumers" });

  let lastConsumers = null;
  function render(data) {
    overview.replaceChildren(details(data));
    messages.replaceChildren(messageTable(data));
    queued.update(data);
    rates.update(data.message_stats ?? {});
    consumersTitle.textContent = `Consumers (${count(data.consumers ?? data.consumer_details?.length ?? 0)})`;
    const c = JSON.stringify(data.consumer_details ?? []);
    if (c !== lastConsumers) {
      lastConsumers = c;
      consumers.replaceChildren(consumerTable(data.consumer_details ?? []));
    }
  }

  async function refresh() {
    try {
      const data = await api(withQuery(queuePath, samplesQuery()));
      problem.textContent = "";
      render(data);
    } catch (e) {
      problem.textContent = notFound(e) ? `The queue '${name}' no longer exists.` : e.message;
      throw e;
    }
  }

  const bindings = bindingsSection(vhost, name);

  view.root.append(
    problem,
    section("Details", [h("div", { class: "queue-details-grid" }, [overview, messages])], {
      class: "panel queue-details",
    }),
    h("div", { class: "grid queue-charts" }, [queued.node, rates.node]),
    h("section", { class: "panel", id: "queue-consumers-panel" }, [consumersTitle, consumers]),
    bindings.node,
    h("div", { class: "grid queue-messaging" }, [
      publishSection(vhost, name, () => refresh().catch(() => {})),
      getSection(vhost, name, () => refresh().catch(() => {})),
    ]),
    dangerSection(vhost, name, () => refresh().catch(() => {})),
  );
  render(q);
  bindings.refresh().catch(() => {});
  let first = true;
  await view.poll(async () => {
    // The first round was fetched above; later rounds reload the queue and its bindings.
    if (first) {
      first = false;
      return;
    }
    await Promise.all([refresh(), bindings.refresh()]);
  });
}

function missing(vhost, name) {
  return h("div", { class: "panel", id: "queue-missing", role: "alert" }, [
    h("p", { class: "error", text: `There is no queue '${name}' in virtual host '${vhost}'.` }),
    h("p", {}, [
      "It may have been deleted, or the address may be mistyped. ",
      link("Back to the queues", "queues"),
    ]),
  ]);
}

function details(q) {
  const args = Object.entries(q.arguments ?? {});
  return facts([
    ["State", state(q)],
    ["Type", q.type ?? "classic"],
    ["Features", features(q)],
    args.length ? ["Arguments", facts(args.map(([k, v]) => [k, argText(v)]))] : null,
    ["Policy", q.policy ?? muted("none")],
    q.operator_policy ? ["Operator policy", q.operator_policy] : null,
    q.effective_policy_definition && Object.keys(q.effective_policy_definition).length
      ? [
          "Effective policy definition",
          facts(Object.entries(q.effective_policy_definition).map(([k, v]) => [k, argText(v)])),
        ]
      : null,
    q.owner_pid_details?.name ? ["Exclusive owner", link(q.owner_pid_details.name, "connections", q.owner_pid_details.name)] : null,
    ["Consumers", count(q.consumers), true],
    percent(q.consumer_capacity) !== null ? ["Consumer capacity", percent(q.consumer_capacity), true] : null,
    percent(q.consumer_utilisation) !== null ? ["Consumer utilisation", percent(q.consumer_utilisation), true] : null,
    q.single_active_consumer_tag ? ["Active consumer", q.single_active_consumer_tag] : null,
    q.exclusive_consumer_tag ? ["Exclusive consumer", q.exclusive_consumer_tag] : null,
    q.head_message_timestamp ? ["Head message timestamp", when(q.head_message_timestamp * 1000)] : null,
    ["Memory", bytes(q.memory), true],
    q.node ? ["Node", q.node] : null,
  ]);
}

/** Messages and their bytes by where they are, as RabbitMQ's queue page tabulates them. */
function messageTable(q) {
  const rows = [
    {
      label: "Messages",
      total: count(q.messages),
      ready: count(q.messages_ready),
      unacked: count(q.messages_unacknowledged),
      ram: count(q.messages_ram),
      persistent: count(q.messages_persistent),
      paged: count(q.messages_paged_out),
    },
    {
      label: "Message body bytes",
      total: bytes(q.message_bytes),
      ready: bytes(q.message_bytes_ready),
      unacked: bytes(q.message_bytes_unacknowledged),
      ram: bytes(q.message_bytes_ram),
      persistent: bytes(q.message_bytes_persistent),
      paged: bytes(q.message_bytes_paged_out),
    },
  ];
  const table = staticTable(
    [
      { label: "", value: (r) => h("span", { class: "row-label", text: r.label }) },
      { label: "Total", num: true, value: (r) => r.total },
      { label: "Ready", num: true, value: (r) => r.ready },
      { label: "Unacked", num: true, value: (r) => r.unacked },
      { label: "In memory", num: true, value: (r) => r.ram },
      { label: "Persistent", num: true, value: (r) => r.persistent },
      { label: "Paged out", num: true, value: (r) => r.paged },
    ],
    rows,
  );
  table.classList.add("queue-message-counts");
  return table;
}

function consumerTable(items) {
  return staticTable(
    [
      {
        label: "Channel",
        value: (c) => (c.channel_details?.name ? link(c.channel_details.name, "channels", c.channel_details.name) : ""),
      },
      { label: "Consumer tag", value: (c) => c.consumer_tag },
      { label: "Ack required", value: (c) => yesNo(c.ack_required) },
      { label: "Exclusive", value: (c) => yesNo(c.exclusive) },
      { label: "Prefetch count", num: true, value: (c) => count(c.prefetch_count) },
      { label: "Active", value: (c) => (c.active === undefined ? "" : yesNo(c.active)) },
      { label: "Activity status", value: (c) => c.activity_status ?? "" },
      { label: "Arguments", value: (c) => argumentList(c.arguments, ARGUMENT_LIST) },
    ],
    items,
    "No consumers.",
    "consumers-table",
  );
}

// ---------------------------------------------------------------------------------------------
// Bindings.

function bindingsSection(vhost, name) {
  const holder = h("div", { class: "scroll", id: "queue-bindings" });
  const error = h("p", { class: "error", role: "alert" });
  const exchanges = h("datalist", { id: "binding-exchanges" });
  let last = null;

  async function refresh() {
    let items;
    try {
      items = await api(path("queues", vhost, name, "bindings"));
    } catch (e) {
      error.textContent = e.message;
      throw e;
    }
    error.textContent = "";
    const text = JSON.stringify(items);
    if (text === last) return;
    last = text;
    // Rebuilding moves focus away: keep it on the same row's button if it was there.
    const focused = document.activeElement?.dataset?.key;
    holder.replaceChildren(bindingTable(items));
    if (focused) holder.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
  }

  function bindingTable(items) {
    return staticTable(
      [
        {
          label: "From",
          value: (b) =>
            b.source === ""
              ? muted("(Default exchange binding)")
              : link(b.source, "exchanges", vhost, b.source),
        },
        { label: "Routing key", value: (b) => h("code", { text: b.routing_key }) },
        { label: "Arguments", value: (b) => argumentList(b.arguments, ARGUMENT_LIST) },
        {
          label: "",
          value: (b) =>
            b.source === ""
              ? ""
              : button("Unbind", () => unbind(b), {
                  class: "unbind",
                  "data-key": `${b.source}\n${b.properties_key}`,
                  "aria-label": `Unbind from ${b.source} with routing key '${b.routing_key}'`,
                }),
        },
      ],
      items,
      "No bindings.",
      "bindings-table",
    );
  }

  async function unbind(b) {
    try {
      await api(path("bindings", vhost, "e", b.source, "q", name, b.properties_key), { method: "DELETE" });
      await refresh();
    } catch (e) {
      error.textContent = e.message;
    }
  }

  const source = input("source", { id: "binding-source", required: true, list: "binding-exchanges", autocomplete: "off" });
  const key = input("routing_key", { id: "binding-routing-key", autocomplete: "off" });
  const args = argumentsEditor({ label: "Arguments", id: "binding-arguments" });
  const add = form(
    { class: "stack", id: "add-binding" },
    [
      h("h4", { text: "Add binding to this queue" }),
      field("From exchange", source),
      field("Routing key", key),
      args.node,
      h("div", { class: "actions" }, [h("button", { type: "submit", text: "Bind" })]),
      exchanges,
    ],
    async (v) => {
      const from = v.source.trim();
      if (!from) throw new Error("Name the exchange to bind from.");
      if (from === "amq.default") throw new Error("Nothing can be bound to the default exchange.");
      await api(path("bindings", vhost, "e", from, "q", name), {
        method: "POST",
        body: { routing_key: v.routing_key, arguments: args.value() },
      });
      source.value = "";
      key.value = "";
      args.clear();
      await refresh().catch(() => {});
    },
    "Binding added.",
  );

  // Offer the vhost's exchanges by name (best effort: the field takes any name).
  api(withQuery(path("exchanges", vhost), { columns: "name" }))
    .then((list) => {
      const names = (Array.isArray(list) ? list : list?.items ?? []).map((e) => e.name).filter((n) => n && n !== "amq.default");
      exchanges.replaceChildren(...names.map((n) => h("option", { value: n })));
    })
    .catch(() => {});

  const node = h("section", { class: "panel", id: "queue-bindings-panel" }, [
    h("h3", { text: "Bindings" }),
    error,
    holder,
    add,
  ]);
  return { node, refresh };
}

// ---------------------------------------------------------------------------------------------
// Publishing to the queue (through the default exchange).

function publishSection(vhost, name, refresh) {
  const node = publishForm({ vhost, exchange: "amq.default", fixedRoutingKey: name, published: refresh });
  return section("Publish message", [node], { class: "panel", id: "queue-publish-panel" });
}

// ---------------------------------------------------------------------------------------------
// Getting messages.

const ACK_MODES = [
  ["ack_requeue_true", "Nack message requeue true"],
  ["reject_requeue_true", "Reject requeue true"],
  ["ack_requeue_false", "Automatic ack"],
  ["reject_requeue_false", "Reject requeue false"],
];

function getSection(vhost, name, refresh) {
  const mode = select("ackmode", ACK_MODES, "ack_requeue_true", { id: "get-ackmode" });
  const encoding = select("encoding", [["auto", "Auto string / base64"], ["base64", "base64"]], "auto", {
    id: "get-encoding",
  });
  const number = input("count", { id: "get-count", type: "number", min: 1, value: 1, required: true, inputmode: "numeric" });
  const truncate = input("truncate", { id: "get-truncate", type: "number", min: 1, value: 50000, inputmode: "numeric" });
  const results = h("div", { id: "get-results", "aria-live": "polite" });
  const node = form(
    { class: "stack", id: "get-messages" },
    [
      h("p", { class: "muted", text: "Getting messages is a destructive action: with requeue they come back redelivered, other modes remove them." }),
      h("div", { class: "queue-form-row" }, [field("Ack mode", mode), field("Encoding", encoding)]),
      h("div", { class: "queue-form-row" }, [field("Messages", number), field("Truncate payloads at (bytes)", truncate)]),
      h("div", { class: "actions" }, [h("button", { type: "submit", text: "Get messages" })]),
    ],
    async (v) => {
      const n = Number(v.count);
      if (!Number.isInteger(n) || n < 1) throw new Error("Ask for at least one message.");
      const body = { count: n, ackmode: v.ackmode, encoding: v.encoding };
      if (v.truncate.trim() !== "") {
        const t = Number(v.truncate);
        if (!Number.isInteger(t) || t < 1) throw new Error("Truncate at a whole number of bytes, or leave it empty.");
        body.truncate = t;
      }
      results.replaceChildren();
      const messages = await api(path("queues", vhost, name, "get"), { method: "POST", body });
      showMessages(results, messages ?? []);
      refresh();
      return messages ?? [];
    },
    (messages) => (messages.length ? `${count(messages.length)} message${messages.length === 1 ? "" : "s"} fetched.` : ""),
  );
  return section("Get messages", [node, results], { class: "panel", id: "queue-get-panel" });
}

function showMessages(holder, messages) {
  if (!messages.length) {
    holder.replaceChildren(h("p", { class: "get-empty muted", text: "Queue is empty" }));
    return;
  }
  holder.replaceChildren(
    ...messages.map((m, i) => {
      const props = { ...(m.properties ?? {}) };
      const headers = props.headers;
      delete props.headers;
      const propRows = Object.entries(props).map(([k, v]) => [k, argText(v)]);
      if (headers && Object.keys(headers).length) {
        propRows.push(["headers", facts(Object.entries(headers).map(([k, v]) => [k, argText(v)]))]);
      }
      const truncated = typeof m.payload === "string" && m.payload_bytes !== undefined && m.payload_encoding === "string"
        && new TextEncoder().encode(m.payload).length < m.payload_bytes;
      return h("article", { class: "get-message", "data-index": i + 1 }, [
        h("h4", { text: `Message ${i + 1}` }),
        m.message_count !== undefined
          ? h("p", { class: "muted", text: `The server reported ${count(m.message_count)} message${m.message_count === 1 ? "" : "s"} remaining.` })
          : null,
        facts([
          ["Exchange", m.exchange === "" ? muted("(AMQP default)") : m.exchange],
          ["Routing key", m.routing_key],
          ["Redelivered", yesNo(m.redelivered)],
          ["Properties", propRows.length ? facts(propRows) : muted("none")],
          [
            "Payload",
            h("span", {}, [
              h("span", { class: "payload-size", text: `${count(m.payload_bytes)} bytes` }),
              muted(` · Encoding: ${m.payload_encoding ?? ""}`),
              truncated ? muted(" · truncated") : null,
            ]),
          ],
        ]),
        h("pre", { class: "payload get-payload", tabindex: 0, "aria-label": `Payload of message ${i + 1}`, text: m.payload ?? "" }),
      ]);
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Purging and deleting.

function dangerSection(vhost, name, refresh) {
  const status = statusLine({ id: "queue-action-status" });
  const ifUnused = h("input", { type: "checkbox", id: "delete-if-unused", name: "if-unused" });
  const ifEmpty = h("input", { type: "checkbox", id: "delete-if-empty", name: "if-empty" });
  const purge = dangerButton(
    "Purge messages",
    `Purge all ready messages from queue '${name}'? They cannot be brought back.`,
    async () => {
      status.say();
      try {
        await api(path("queues", vhost, name, "contents"), { method: "DELETE" });
        status.say("Queue purged.");
        refresh();
      } catch (e) {
        status.fail(e);
      }
    },
    { id: "purge-queue" },
  );
  const remove = dangerButton(
    "Delete queue",
    `Delete queue '${name}' and the messages in it?`,
    async () => {
      status.say();
      try {
        await api(
          withQuery(path("queues", vhost, name), {
            "if-unused": ifUnused.checked ? "true" : undefined,
            "if-empty": ifEmpty.checked ? "true" : undefined,
          }),
          { method: "DELETE" },
        );
        location.hash = "#/queues";
      } catch (e) {
        status.fail(e);
      }
    },
    { id: "delete-queue" },
  );
  return section(
    "Purge or delete",
    [
      h("div", { class: "queue-danger" }, [
        h("div", { class: "queue-danger-part" }, [
          h("p", { class: "muted", text: "Purging removes the messages ready for delivery; unacknowledged ones stay." }),
          h("div", { class: "actions" }, [purge]),
        ]),
        h("div", { class: "queue-danger-part" }, [
          h("div", { class: "queue-conditions" }, [
            h("label", { class: "check" }, [ifUnused, h("span", { text: "Only if unused (no consumers)" })]),
            h("label", { class: "check" }, [ifEmpty, h("span", { text: "Only if empty" })]),
          ]),
          h("div", { class: "actions" }, [remove]),
        ]),
      ]),
      status.node,
    ],
    { class: "panel", id: "queue-danger-panel" },
  );
}
