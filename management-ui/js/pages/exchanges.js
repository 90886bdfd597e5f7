// The exchanges pages: the list of exchanges with a form to add one, and an exchange's page
// with its details and rates, its bindings (both ways) with a form to bind, a form to publish a
// message and the button that deletes it. The default exchange's name is "" and is routed as
// "amq.default", as RabbitMQ's API accepts.

import { api, notFound, path, Unauthorized, vhostNames, withQuery } from "../api.js";
import { argText, argumentList, argumentsEditor, EXCHANGE_ARGUMENTS } from "../args.js";
import { chart, samplesQuery } from "../chart.js";
import {
  badge, button, dangerButton, facts, field, form, h, input, link, muted, route, section, select, statusLine,
} from "../dom.js";
import { perSecond } from "../format.js";
import { publishForm } from "../publish.js";
import { pagedTable, staticTable } from "../table.js";

const DEFAULT = "amq.default";
const FALLBACK_TYPES = ["direct", "fanout", "headers", "topic"];

/** How a name shows: the default exchange's "" as RabbitMQ writes it. */
function shown(name) {
  return name === "" ? "(AMQP default)" : name;
}

/** The name an exchange has in routes and API paths ("" → amq.default). */
function routed(name) {
  return name === "" ? DEFAULT : name;
}

function exchangeLink(vhost, name) {
  return link(shown(name), "exchanges", vhost, routed(name));
}

/** Arguments as a compact list of `key: value` lines (or a muted dash), styled by exchanges.css. */
function argList(args) {
  return argumentList(args, { list: "x-args", key: "x-arg-key" });
}

/** The short features badges RabbitMQ's list shows (D, AD, I, AE, Args, policy). */
function features(x) {
  const args = x.arguments ?? {};
  const others = Object.keys(args).filter((k) => k !== "alternate-exchange");
  return h("span", { class: "x-features" }, [
    x.durable ? badge("D", "durable") : null,
    x.auto_delete ? badge("AD", "auto-delete") : null,
    x.internal ? badge("I", "internal") : null,
    "alternate-exchange" in args ? badge("AE", `alternate-exchange: ${argText(args["alternate-exchange"])}`) : null,
    others.length ? badge("Args", others.map((k) => `${k}: ${argText(args[k])}`).join("\n")) : null,
    x.policy ? h("a", { class: "badge policy", href: route("admin", "policies"), title: `policy: ${x.policy}`, text: x.policy }) : null,
  ]);
}

/** The exchange types the broker offers (GET /overview's exchange_types). */
async function exchangeTypes() {
  try {
    const o = await api(withQuery("/overview", { columns: "exchange_types" }));
    const types = (o.exchange_types ?? []).filter((t) => t.enabled !== false);
    if (types.length) return types.map((t) => ({ name: t.name, description: t.description ?? "" }));
  } catch (e) {
    if (e instanceof Unauthorized) throw e;
  }
  return FALLBACK_TYPES.map((name) => ({ name, description: "" }));
}

// ---------------------------------------------------------------------------------------------
// The list.

export async function list(view) {
  view.root.classList.add("exchanges-page");
  const table = pagedTable({
    path: "/exchanges",
    id: "exchanges-table",
    empty: "No exchanges.",
    columns: [
      { label: "Virtual host", sort: "vhost", value: (x) => x.vhost },
      { label: "Name", sort: "name", value: (x) => exchangeLink(x.vhost, x.name) },
      { label: "Type", sort: "type", value: (x) => x.type },
      { label: "Features", value: features },
      { label: "Message rate in", num: true, value: (x) => perSecond(x.message_stats?.publish_in_details?.rate) },
      { label: "Message rate out", num: true, value: (x) => perSecond(x.message_stats?.publish_out_details?.rate) },
    ],
  });
  view.root.append(
    h("h2", { text: "Exchanges" }),
    section("All exchanges", [table.node], { id: "exchanges-list" }),
  );
  const [vhosts, types] = await Promise.all([vhostNames(), exchangeTypes()]);
  view.root.append(addExchange(vhosts, types, () => table.refresh().catch(() => {})));
  await view.poll(() => table.refresh());
}

function addExchange(vhosts, types, added) {
  const vhost = select("vhost", vhosts, vhosts.includes("/") ? "/" : vhosts[0], { id: "exchange-vhost" });
  const name = input("name", { id: "exchange-name", required: true, autocomplete: "off", spellcheck: "false" });
  const type = select("type", types.map((t) => t.name), "direct", { id: "exchange-type" });
  const about = h("small", { class: "hint", id: "exchange-type-about" });
  const describe = () => {
    about.textContent = types.find((t) => t.name === type.value)?.description ?? "";
  };
  type.addEventListener("change", describe);
  describe();
  const durable = select("durable", [["true", "Durable"], ["false", "Transient"]], "true", { id: "exchange-durable" });
  const autoDelete = h("label", { class: "check" }, [
    h("input", { type: "checkbox", name: "auto_delete", id: "exchange-auto-delete" }),
    h("span", { text: "Auto delete (deleted when its last binding goes)" }),
  ]);
  const internal = h("label", { class: "check" }, [
    h("input", { type: "checkbox", name: "internal", id: "exchange-internal" }),
    h("span", { text: "Internal (clients cannot publish to it)" }),
  ]);
  const args = argumentsEditor({ label: "Arguments", suggestions: EXCHANGE_ARGUMENTS, id: "exchange-arguments" });

  const node = form(
    { class: "stack", id: "add-exchange", "aria-label": "Add a new exchange" },
    [
      h("div", { class: "x-row" }, [
        field("Virtual host", vhost),
        field("Name", name),
      ]),
      h("div", { class: "x-row" }, [
        h("label", { class: "field" }, [h("span", { text: "Type" }), type, about]),
        field("Durability", durable),
      ]),
      h("div", { class: "x-checks" }, [autoDelete, internal]),
      args.node,
      h("div", { class: "actions" }, [h("button", { type: "submit", text: "Add exchange" })]),
    ],
    async (v) => {
      const exchange = v.name.trim();
      if (!exchange) throw new Error("Give the exchange a name.");
      // The broker refuses amq.* names with a 401, which would end the session: say it here.
      if (exchange.startsWith("amq.")) throw new Error("Names starting with 'amq.' are reserved.");
      const body = {
        type: v.type,
        durable: v.durable === "true",
        auto_delete: v.auto_delete,
        internal: v.internal,
        arguments: args.value(),
      };
      await api(path("exchanges", v.vhost, exchange), { method: "PUT", body });
      name.value = "";
      args.clear();
      added();
      return { exchange, vhost: v.vhost };
    },
    (r) => `Exchange '${r.exchange}' added in virtual host '${r.vhost}'.`,
  );
  return section("Add a new exchange", [node], { id: "add-exchange-panel" });
}

// ---------------------------------------------------------------------------------------------
// One exchange.

const RATES = [
  { label: "Publish (in)", key: "publish_in" },
  { label: "Publish (out)", key: "publish_out" },
];

export async function detail(view, vhost, routeName) {
  view.root.classList.add("exchanges-page");
  const apiName = routeName === "" ? DEFAULT : routeName;
  const name = apiName === DEFAULT ? "" : apiName;
  const base = path("exchanges", vhost, apiName);

  const title = h("h2", { id: "exchange-title" }, [
    "Exchange: ",
    h("span", { class: "x-name", text: shown(name) }),
    " ",
    h("small", { text: `in virtual host ${vhost}` }),
  ]);
  view.root.append(title);

  let exchange;
  try {
    exchange = await api(withQuery(base, samplesQuery()));
  } catch (e) {
    if (notFound(e)) {
      view.root.append(
        h("p", {
          class: "error",
          role: "alert",
          id: "exchange-missing",
          text: `There is no exchange '${shown(name)}' in virtual host '${vhost}'. It may have been deleted.`,
        }),
        h("p", {}, [link("Back to the exchanges", "exchanges")]),
      );
      return;
    }
    throw e;
  }

  const builtIn = name === "" || name.startsWith("amq.");
  const problem = h("p", { class: "error", role: "alert", id: "exchange-error" });
  const details = h("div", { id: "exchange-details" });
  const rates = chart({ title: "Message rates", series: RATES, rate: true, id: "chart-exchange-rates" });

  const show = (x) => {
    details.replaceChildren(detailFacts(x));
    rates.update(x.message_stats);
  };

  view.root.append(
    problem,
    h("div", { class: "grid" }, [section("Details", [details], { id: "exchange-overview" }), rates.node]),
  );

  const bindings = name === "" ? defaultBindings() : bindingsPanel(vhost, name, exchange.type);
  view.root.append(bindings.node);
  if (!exchange.internal) view.root.append(publishPanel(vhost, apiName));
  if (!builtIn) view.root.append(deletePanel(vhost, name));

  show(exchange);
  let first = true;
  await view.poll(async () => {
    const jobs = [bindings.refresh()];
    if (!first) {
      jobs.push(
        api(withQuery(base, samplesQuery())).then(
          (x) => {
            problem.textContent = "";
            show(x);
          },
          (e) => {
            problem.textContent = notFound(e) ? `The exchange '${shown(name)}' no longer exists.` : e.message;
            throw e;
          },
        ),
      );
    }
    first = false;
    await Promise.all(jobs);
  });
}

function detailFacts(x) {
  const long = [
    x.durable ? "durable" : "transient",
    x.auto_delete ? "auto-delete" : null,
    x.internal ? "internal" : null,
  ].filter(Boolean);
  return facts([
    ["Type", x.type],
    ["Features", h("span", { class: "x-features" }, long.map((f) => h("span", { class: "badge", text: f })))],
    ["Policy", x.policy ? h("a", { href: route("admin", "policies"), text: x.policy }) : muted("–")],
    ["Arguments", argList(x.arguments)],
    ["Message rate in", perSecond(x.message_stats?.publish_in_details?.rate), true],
    ["Message rate out", perSecond(x.message_stats?.publish_out_details?.rate), true],
  ]);
}

function defaultBindings() {
  const node = section(
    "Bindings",
    [
      h("h4", { text: "Default exchange" }),
      h("p", {
        id: "default-exchange-note",
        text:
          "The default exchange is implicitly bound to every queue, with a routing key equal to the " +
          "queue name. It is not possible to explicitly bind to, or unbind from the default exchange. " +
          "It also cannot be deleted.",
      }),
    ],
    { id: "exchange-bindings" },
  );
  return { node, refresh: async () => {} };
}

/** The binding's far end as a link: a queue's page or an exchange's. */
function endLink(vhost, name, type) {
  return type === "queue"
    ? h("span", {}, [h("span", { class: "badge", text: "queue" }), link(name, "queues", vhost, name)])
    : h("span", {}, [h("span", { class: "badge", text: "exchange" }), exchangeLink(vhost, name)]);
}

function bindingsPanel(vhost, name, type) {
  const status = statusLine({ id: "unbind-status" });

  async function unbind(b) {
    status.say();
    const kind = b.destination_type === "queue" ? "q" : "e";
    try {
      await api(path("bindings", b.vhost, "e", b.source, kind, b.destination, b.properties_key), { method: "DELETE" });
      status.say(`Unbound '${shown(b.source)}' → '${b.destination}' (routing key '${b.routing_key}').`);
    } catch (e) {
      status.fail(e);
    }
    await refresh().catch((e) => {
      // An auto-delete exchange goes with its last binding.
      if (notFound(e)) status.node.textContent += " The exchange no longer exists.";
    });
  }

  const unbindCell = (b) =>
    button("Unbind", () => unbind(b), {
      class: "danger unbind",
      "aria-label": `Unbind ${b.destination_type} ${b.destination} from ${shown(b.source)}, routing key ${b.routing_key}`,
    });

  function render(holder, items, columns, empty) {
    const table = staticTable(columns, items, empty);
    table.classList.add("bindings");
    // Each cell names its column, for the narrow layout where rows become cards.
    for (const tr of table.tBodies[0].rows) {
      [...tr.cells].forEach((td, i) => {
        if (!td.classList.contains("empty")) td.dataset.label = columns[i].label;
      });
    }
    holder.replaceChildren(table);
  }

  // The two lists: the API's `bindings/<which>` shown in `holder`, the far end in the first column.
  const lists = [
    {
      which: "destination",
      holder: h("div", { id: "bindings-destination", class: "scroll" }),
      end: { label: "From", value: (b) => endLink(b.vhost, b.source, "exchange") },
      empty: "No bindings to this exchange.",
      seen: null,
    },
    {
      which: "source",
      holder: h("div", { id: "bindings-source", class: "scroll" }),
      end: { label: "To", value: (b) => endLink(b.vhost, b.destination, b.destination_type) },
      empty: "No bindings from this exchange.",
      seen: null,
    },
  ];

  async function refresh() {
    const replies = await Promise.all(lists.map((l) => api(path("exchanges", vhost, name, "bindings", l.which))));
    lists.forEach((l, i) => {
      // Re-draw only what changed, so a focused Unbind button keeps its focus between polls.
      const text = JSON.stringify(replies[i]);
      if (text === l.seen) return;
      l.seen = text;
      const columns = [
        l.end,
        { label: "Routing key", value: (b) => h("code", { text: b.routing_key }) },
        { label: "Arguments", value: (b) => argList(b.arguments) },
        { label: "Action", value: unbindCell },
      ];
      render(l.holder, replies[i], columns, l.empty);
    });
  }

  const node = section(
    "Bindings",
    [
      h("h4", { text: "To this exchange" }),
      lists[0].holder,
      h("h4", { text: "From this exchange" }),
      lists[1].holder,
      status.node,
      addBinding(vhost, name, type, () => refresh().catch(() => {})),
    ],
    { id: "exchange-bindings" },
  );
  return { node, refresh };
}

function addBinding(vhost, name, exchangeType, added) {
  const kind = select("destination_type", [["q", "To queue"], ["e", "To exchange"]], "q", {
    id: "binding-destination-type",
  });
  const names = h("datalist", { id: "binding-destination-names" });
  const destination = input("destination", {
    id: "binding-destination",
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    list: "binding-destination-names",
  });
  const key = input("routing_key", { id: "binding-key", autocomplete: "off", spellcheck: "false" });
  const suggestions =
    exchangeType === "headers"
      ? [
          { key: "x-match", type: "string", label: "x-match: all", value: "all" },
          { key: "x-match", type: "string", label: "x-match: any", value: "any" },
        ]
      : [];
  const args = argumentsEditor({ label: "Arguments", suggestions, id: "binding-arguments" });
  const keyHint =
    exchangeType === "x-consistent-hash"
      ? "For a consistent-hash exchange, the routing key is the binding's weight (a number)."
      : exchangeType === "fanout"
        ? "A fanout exchange ignores the routing key."
        : undefined;

  // Names to pick from: the first matching queues or exchanges of the vhost (the API filters).
  let typing = null;
  const suggest = () => {
    clearTimeout(typing);
    typing = setTimeout(async () => {
      try {
        const what = kind.value === "q" ? "queues" : "exchanges";
        const page = await api(
          withQuery(path(what, vhost), { page: 1, page_size: 50, name: destination.value, columns: "name" }),
        );
        names.replaceChildren(
          ...(page.items ?? []).filter((i) => i.name !== "").map((i) => h("option", { value: i.name })),
        );
      } catch {
        // Suggestions are a convenience; typing a name still works.
      }
    }, 200);
  };
  destination.addEventListener("focus", suggest);
  destination.addEventListener("input", suggest);
  kind.addEventListener("change", () => names.replaceChildren());

  const node = form(
    { class: "stack", id: "add-binding", "aria-label": "Add binding from this exchange" },
    [
      h("div", { class: "x-row" }, [
        field("Destination type", kind),
        field("Destination name", destination),
      ]),
      names,
      field("Routing key", key, keyHint),
      args.node,
      h("div", { class: "actions" }, [h("button", { type: "submit", text: "Bind" })]),
    ],
    async (v) => {
      const to = v.destination.trim();
      if (!to) throw new Error("Name the queue or exchange to bind to.");
      const body = { routing_key: v.routing_key, arguments: args.value() };
      await api(path("bindings", vhost, "e", name, v.destination_type, to), { method: "POST", body });
      destination.value = "";
      key.value = "";
      args.clear();
      added();
      return `Bound to ${v.destination_type === "q" ? "queue" : "exchange"} '${to}'.`;
    },
    (text) => text,
  );
  return h("div", { class: "x-subform" }, [h("h4", { text: "Add binding from this exchange" }), node]);
}

function publishPanel(vhost, apiName) {
  return section("Publish message", [publishForm({ vhost, exchange: apiName })], { id: "publish-panel" });
}

function deletePanel(vhost, name) {
  const status = statusLine({ id: "delete-status" });
  const ifUnused = h("input", { type: "checkbox", id: "delete-if-unused", name: "if_unused" });
  const remove = dangerButton(
    "Delete this exchange",
    `Delete the exchange '${name}' in virtual host '${vhost}'?`,
    async () => {
      status.say();
      try {
        const target = path("exchanges", vhost, name);
        await api(ifUnused.checked ? withQuery(target, { "if-unused": "true" }) : target, { method: "DELETE" });
        location.hash = "#/exchanges";
      } catch (e) {
        status.fail(e);
      }
    },
    { id: "delete-exchange" },
  );
  return section(
    "Delete this exchange",
    [
      h("div", { class: "actions x-delete" }, [
        h("label", { class: "check" }, [ifUnused, h("span", { text: "Only if unused (no bindings from it)" })]),
        remove,
      ]),
      status.node,
    ],
    { id: "delete-panel" },
  );
}
