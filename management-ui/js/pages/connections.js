// Connections: the list (user, vhost, peer, state, channels, traffic), a connection's page
// with its client properties and channels, and closing it with a reason (the client gets
// 320 CONNECTION_FORCED with that text).

import { api, path } from "../api.js";
import { chart, samplesQuery } from "../chart.js";
import { facts, field, form, h, input, link, section } from "../dom.js";
import { bytes, count, when } from "../format.js";
import { withQuery } from "../api.js";
import { pagedTable, rateColumn, staticTable } from "../table.js";

/** The channels columns the connection page and the channels list share. */
export function channelColumns({ withConnection }) {
  return [
    { label: "Channel", sort: "name", value: (c) => link(c.name, "channels", c.name) },
    withConnection && { label: "User", sort: "user", value: (c) => c.user },
    withConnection && { label: "Virtual host", sort: "vhost", value: (c) => c.vhost },
    { label: "Mode", value: (c) => mode(c) },
    { label: "State", sort: "state", value: (c) => state(c.state) },
    { label: "Consumers", sort: "consumer_count", num: true, value: (c) => count(c.consumer_count) },
    { label: "Prefetch", sort: "prefetch_count", num: true, value: (c) => prefetch(c) },
    { label: "Unacked", sort: "messages_unacknowledged", num: true, value: (c) => count(c.messages_unacknowledged) },
    { label: "Unconfirmed", sort: "messages_unconfirmed", num: true, value: (c) => count(c.messages_unconfirmed) },
    rateColumn("Publish", "publish"),
    rateColumn("Confirm", "confirm"),
    rateColumn("Deliver / get", "deliver_get"),
    rateColumn("Ack", "ack"),
  ].filter(Boolean);
}

/** C for confirm mode, T for transactional, as RabbitMQ's UI marks them. */
function mode(c) {
  const marks = [];
  if (c.confirm) marks.push(h("span", { class: "badge", title: "Publisher confirms", text: "C" }));
  if (c.transactional) marks.push(h("span", { class: "badge", title: "Transactional", text: "T" }));
  return h("span", {}, marks);
}

function prefetch(c) {
  const own = c.prefetch_count ? count(c.prefetch_count) : "";
  const global = c.global_prefetch_count ? `${count(c.global_prefetch_count)} (global)` : "";
  return [own, global].filter(Boolean).join(" ") || "–";
}

export function state(s) {
  return h("span", { class: `state-${s ?? "unknown"}`, text: s ?? "" });
}

export async function list(view) {
  const table = pagedTable({
    path: "/connections",
    id: "connections-table",
    empty: "No connections.",
    columns: [
      { label: "Name", sort: "name", value: (c) => link(c.name, "connections", c.name) },
      { label: "Client name", sort: "user_provided_name", value: (c) => c.user_provided_name ?? "" },
      { label: "User", sort: "user", value: (c) => c.user },
      { label: "Virtual host", sort: "vhost", value: (c) => c.vhost },
      { label: "State", sort: "state", value: (c) => state(c.state) },
      { label: "Channels", sort: "channels", num: true, value: (c) => count(c.channels) },
      { label: "Protocol", value: (c) => c.protocol },
      { label: "From client", sort: "recv_oct_details.rate", num: true, value: (c) => `${bytes(c.recv_oct_details?.rate)}/s` },
      { label: "To client", sort: "send_oct_details.rate", num: true, value: (c) => `${bytes(c.send_oct_details?.rate)}/s` },
    ],
  });
  view.root.append(h("h2", { text: "Connections" }), table.node);
  await view.poll(table.refresh);
}

export async function detail(view, name) {
  const heading = h("h2", {}, ["Connection ", h("small", { text: name })]);
  const summary = h("div");
  const client = h("div");
  const channels = h("div");
  const traffic = chart({
    title: "Data rates",
    rate: true,
    id: "chart-connection-traffic",
    series: [
      { label: "From client", key: "recv_oct" },
      { label: "To client", key: "send_oct" },
    ],
  });
  view.root.append(
    heading,
    h("div", { class: "grid" }, [section("Overview", [summary]), traffic.node]),
    section("Channels", [channels]),
    section("Client properties", [client]),
    closeForm(name),
  );
  await view.poll(async () => {
    let c;
    try {
      c = await api(withQuery(path("connections", name), samplesQuery()));
    } catch (e) {
      summary.replaceChildren(h("p", { class: "error", role: "alert", text: `${e.message}: the connection may have closed.` }));
      return;
    }
    summary.replaceChildren(
      facts([
        ["Client name", c.user_provided_name ?? ""],
        ["User", c.user],
        ["Virtual host", c.vhost],
        ["State", state(c.state)],
        ["Client", `${c.peer_host}:${c.peer_port}`],
        ["Server", `${c.host}:${c.port}`],
        ["Protocol", c.protocol],
        ["Authentication", c.auth_mechanism],
        ["TLS", c.ssl ? `${c.ssl_protocol} (${c.ssl_cipher})` : "no"],
        ...(c.peer_cert_subject ? [["Client certificate", c.peer_cert_subject]] : []),
        ["Connected at", when(c.connected_at)],
        ["Heartbeat", `${count(c.timeout)} s`],
        ["Frame max", `${count(c.frame_max)} bytes`],
        ["Channel max", count(c.channel_max)],
        ["Received", bytes(c.recv_oct)],
        ["Sent", bytes(c.send_oct)],
      ]),
    );
    traffic.update(c);
    client.replaceChildren(properties(c.client_properties ?? {}));
    const own = await api(path("connections", name, "channels"));
    channels.replaceChildren(staticTable(channelColumns({ withConnection: false }), own, "No channels."));
  });
}

/** Client properties as nested fact tables (capabilities are a table of their own). */
function properties(props) {
  return facts(
    Object.entries(props).map(([k, v]) => [
      k,
      v !== null && typeof v === "object" && !Array.isArray(v) ? properties(v) : String(v),
    ]),
  );
}

function closeForm(name) {
  const reason = input("reason", { value: "Closed via management plugin", id: "close-reason" });
  return section("Close this connection", [
    form(
      { class: "inline", id: "close-connection" },
      [
        field("Reason", reason),
        h("button", { type: "submit", class: "danger", id: "close-connection-button", text: "Force close" }),
      ],
      async () => {
        if (!window.confirm("Close this connection?")) return;
        await api(path("connections", name), { method: "DELETE", headers: { "X-Reason": reason.value } });
        location.hash = "#/connections";
      },
      "",
    ),
  ]);
}
