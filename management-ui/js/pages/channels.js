// Channels: the list with prefetch, unacked, unconfirmed, consumers and rates, and a
// channel's page with its consumers.

import { api, path } from "../api.js";
import { chart, samplesQuery } from "../chart.js";
import { facts, h, link, section } from "../dom.js";
import { count } from "../format.js";
import { withQuery } from "../api.js";
import { pagedTable, staticTable } from "../table.js";
import { channelColumns, state } from "./connections.js";

export async function list(view) {
  const table = pagedTable({
    path: "/channels",
    id: "channels-table",
    empty: "No channels.",
    columns: channelColumns({ withConnection: true }),
  });
  view.root.append(h("h2", { text: "Channels" }), table.node);
  await view.poll(table.refresh);
}

export async function detail(view, name) {
  const summary = h("div");
  const consumers = h("div");
  const rates = chart({
    title: "Message rates",
    rate: true,
    id: "chart-channel-rates",
    series: [
      { label: "Publish", key: "publish" },
      { label: "Confirm", key: "confirm" },
      { label: "Deliver / get", key: "deliver_get" },
      { label: "Ack", key: "ack" },
      { label: "Redeliver", key: "redeliver" },
    ],
  });
  view.root.append(
    h("h2", {}, ["Channel ", h("small", { text: name })]),
    h("div", { class: "grid" }, [section("Overview", [summary]), rates.node]),
    section("Consumers", [consumers]),
  );
  await view.poll(async () => {
    let c;
    try {
      c = await api(withQuery(path("channels", name), samplesQuery()));
    } catch (e) {
      summary.replaceChildren(h("p", { class: "error", role: "alert", text: `${e.message}: the channel may have closed.` }));
      return;
    }
    summary.replaceChildren(
      facts([
        ["Connection", link(c.connection_details?.name ?? "", "connections", c.connection_details?.name ?? "")],
        ["User", c.user],
        ["Virtual host", c.vhost],
        ["State", state(c.state)],
        ["Mode", [c.confirm && "confirm", c.transactional && "transactional"].filter(Boolean).join(", ") || "–"],
        ["Prefetch count", count(c.prefetch_count)],
        ["Global prefetch count", count(c.global_prefetch_count)],
        ["Messages unacknowledged", count(c.messages_unacknowledged)],
        ["Messages unconfirmed", count(c.messages_unconfirmed)],
        ["Messages uncommitted", count(c.messages_uncommitted)],
        ["Acks uncommitted", count(c.acks_uncommitted)],
      ]),
    );
    rates.update(c.message_stats);
    consumers.replaceChildren(
      staticTable(
        [
          { label: "Consumer tag", value: (x) => x.consumer_tag },
          { label: "Queue", value: (x) => link(x.queue?.name ?? "", "queues", x.queue?.vhost ?? "", x.queue?.name ?? "") },
          { label: "Ack required", value: (x) => (x.ack_required ? "yes" : "no") },
          { label: "Exclusive", value: (x) => (x.exclusive ? "yes" : "no") },
          { label: "Prefetch", num: true, value: (x) => count(x.prefetch_count) },
          { label: "Active", value: (x) => (x.active ? "yes" : "no") },
        ],
        c.consumer_details ?? [],
        "No consumers.",
      ),
    );
  });
}
