// The virtual hosts list (every user may see it; administrators get links and the add form),
// and what a vhost's page shares with it.

import { path } from "../../api.js";
import { field, form, h, input, link, section, select } from "../../dom.js";
import { count, perSecond } from "../../format.js";
import { pagedTable } from "../../table.js";
import { badges, call, cleanTags, exists, start, whoami } from "./common.js";

export const QUEUE_TYPES = [
  ["classic", "Classic"],
  ["quorum", "Quorum"],
  ["stream", "Stream"],
];

/** A vhost's tags and description: top-level, or under `metadata` where an API puts them there. */
export function vhostTags(v) {
  return v.tags ?? v.metadata?.tags ?? [];
}

export function vhostDescription(v) {
  return v.description ?? v.metadata?.description ?? "";
}

/** A message rate of a vhost, or "" when the API gave none. */
export function rate(v, key) {
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
  if (admin) view.root.append(section("Add a new virtual host", [addVhost(table)]));
  await view.poll(() => table.refresh());
}

function addVhost(table) {
  return form(
    { class: "stack", id: "add-vhost" },
    [
      field("Name", input("name", { id: "vhost-name", required: true, autocomplete: "off", spellcheck: "false" })),
      field("Description", input("description", { id: "vhost-description", autocomplete: "off" })),
      field("Tags", input("tags", { id: "vhost-tags", autocomplete: "off" }), "Comma-separated"),
      field("Default queue type", select("default_queue_type", QUEUE_TYPES, "classic", { id: "vhost-queue-type" })),
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
}
