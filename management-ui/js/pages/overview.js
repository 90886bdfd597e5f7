// The overview: queued messages and message rates over the last minutes, object totals, the
// node (memory, disk and their alarms, uptime, version), listeners, and definitions export
// and import.

import { api, download } from "../api.js";
import { chart, QUEUED, samplesQuery } from "../chart.js";
import { facts, form, h, section } from "../dom.js";
import { bytes, count, duration, perSecond } from "../format.js";
import { withQuery } from "../api.js";

const RATES = [
  { label: "Publish", key: "publish" },
  { label: "Confirm", key: "confirm" },
  { label: "Deliver (manual ack)", key: "deliver" },
  { label: "Deliver (auto ack)", key: "deliver_no_ack" },
  { label: "Redelivered", key: "redeliver" },
  { label: "Acknowledge", key: "ack" },
];

function card(label, id) {
  const value = h("div", { class: "value", id, text: "–" });
  return [h("div", { class: "card" }, [h("div", { class: "label", text: label }), value]), value];
}

export async function show(view) {
  const totals = {};
  const cards = h(
    "div",
    { class: "cards" },
    [
      ["Connections", "connections"],
      ["Channels", "channels"],
      ["Exchanges", "exchanges"],
      ["Queues", "queues"],
      ["Consumers", "consumers"],
    ].map(([label, key]) => {
      const [node, value] = card(label, `total-${key}`);
      totals[key] = value;
      return node;
    }),
  );
  const queued = chart({ title: "Queued messages", series: QUEUED, id: "chart-queued" });
  const rates = chart({ title: "Message rates", series: RATES, rate: true, id: "chart-rates" });
  const node = h("div");
  const listeners = h("div");

  view.root.append(
    h("h2", {}, ["Overview ", h("small", { id: "version" })]),
    cards,
    h("div", { class: "grid" }, [queued.node, rates.node]),
    h("div", { class: "grid" }, [section("Node", [node]), section("Ports and contexts", [listeners])]),
    definitions(),
  );

  await view.poll(async () => {
    const [o, nodes] = await Promise.all([
      api(withQuery("/overview", samplesQuery())),
      api("/nodes").catch(() => []),
    ]);
    for (const [key, el] of Object.entries(totals)) el.textContent = count(o.object_totals?.[key]);
    document.getElementById("version").textContent =
      `${o.product_name ?? "Warren"} ${o.product_version ?? ""} on ${o.node ?? ""}`;
    queued.update(o.queue_totals);
    rates.update(o.message_stats);
    const n = nodes[0] ?? {};
    node.replaceChildren(nodeFacts(n, o));
    listeners.replaceChildren(
      facts((o.listeners ?? []).map((l) => [l.protocol, `${l.ip_address}:${l.port}`])),
    );
  });
}

function nodeFacts(n, o) {
  const alarm = (on) => (on ? h("span", { class: "alarm", text: "alarm" }) : h("span", { class: "state-ok", text: "OK" }));
  return facts([
    ["Name", n.name ?? o.node],
    ["Uptime", duration(n.uptime)],
    ["Memory used", `${bytes(n.mem_used)} of ${bytes(n.mem_limit)} high watermark`],
    ["Memory alarm", alarm(n.mem_alarm)],
    ["Disk free", `${bytes(n.disk_free)} (limit ${bytes(n.disk_free_limit)})`],
    ["Disk alarm", alarm(n.disk_free_alarm)],
    ["File descriptors", `${count(n.fd_used)} of ${count(n.fd_total)}`],
    ["Publish rate", perSecond(o.message_stats?.publish_details?.rate)],
    ["Deliver rate", perSecond(o.message_stats?.deliver_get_details?.rate)],
  ]);
}

function definitions() {
  const file = h("input", { type: "file", name: "file", id: "definitions-file", accept: ".json,application/json", required: true });
  const upload = form(
    { class: "inline", id: "import-definitions" },
    [h("label", { class: "field" }, [h("span", { text: "Definitions file" }), file]), h("button", { type: "submit", text: "Upload" })],
    async () => {
      const text = await file.files[0].text();
      let body;
      try {
        body = JSON.parse(text);
      } catch {
        throw new Error("The file is not JSON.");
      }
      await api("/definitions", { method: "POST", body });
    },
    "Definitions imported.",
  );
  return section("Export and import definitions", [
    h("div", { class: "actions" }, [
      h("button", {
        type: "button",
        id: "export-definitions",
        text: "Download definitions",
        onclick: () => download("/definitions", `warren-definitions-${new Date().toISOString().slice(0, 10)}.json`),
      }),
    ]),
    upload,
  ]);
}
