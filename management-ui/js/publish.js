// The publish-message form of the queue and exchange pages, after RabbitMQ's: delivery mode,
// headers, properties, payload and its encoding, posted to the exchange's publish endpoint.
// The API answers whether the message was routed; an unrouted one was dropped, so the status
// says so in the warning colour (and data-routed="false" tells scripts).

import { api, path } from "./api.js";
import { argumentsEditor } from "./args.js";
import { field, form, h, input, select } from "./dom.js";

/** The properties offered as "add" buttons, named as the API takes them. */
const PROPERTIES = [
  { key: "content_type", label: "content_type", value: "text/plain" },
  { key: "content_encoding", label: "content_encoding" },
  { key: "correlation_id", label: "correlation_id" },
  { key: "message_id", label: "message_id" },
  { key: "expiration", label: "expiration (ms, as text)", value: "60000" },
  { key: "priority", type: "number", label: "priority" },
  { key: "reply_to", label: "reply_to" },
  { key: "type", label: "type" },
  { key: "user_id", label: "user_id" },
  { key: "app_id", label: "app_id" },
  { key: "timestamp", type: "number", label: "timestamp (s)" },
];

/** Properties the protocol carries as numbers: a row left as text is sent as a number. */
const NUMERIC_PROPERTIES = ["priority", "timestamp", "delivery_mode"];

function withNumbers(props) {
  for (const k of NUMERIC_PROPERTIES) {
    if (typeof props[k] === "string" && props[k].trim() !== "" && !Number.isNaN(Number(props[k]))) {
      props[k] = Number(props[k]);
    }
  }
  return props;
}

/**
 * The form (#publish-message). `exchange` is the API's name (amq.default for the default
 * exchange). With `fixedRoutingKey` (a queue's page) the key is said, not asked for; else it is
 * typed in #publish-key. `published(reply)` runs after each message the API took.
 */
export function publishForm({ vhost, exchange, fixedRoutingKey, published = () => {} }) {
  const fixed = fixedRoutingKey !== undefined;
  const key = fixed ? null : input("routing_key", { id: "publish-key", autocomplete: "off", spellcheck: "false" });
  const mode = select("delivery_mode", [["1", "1 - Non-persistent"], ["2", "2 - Persistent"]], "1", {
    id: "publish-delivery-mode",
  });
  const headers = argumentsEditor({ label: "Headers", id: "publish-headers" });
  const properties = argumentsEditor({ label: "Properties", suggestions: PROPERTIES, id: "publish-properties" });
  const payload = h("textarea", { name: "payload", id: "publish-payload", rows: 6, spellcheck: "false" });
  const encoding = select("payload_encoding", [["string", "String (default)"], ["base64", "Base64"]], "string", {
    id: "publish-encoding",
  });
  const through = exchange === "amq.default" ? "the default exchange" : `the exchange '${exchange}'`;
  const top = fixed
    ? [
        h("p", { class: "muted", text: `The message goes through ${through} with routing key '${fixedRoutingKey}'.` }),
        field("Delivery mode", mode),
      ]
    : [h("div", { class: "form-row" }, [field("Routing key", key), field("Delivery mode", mode)])];

  const node = form(
    { class: "stack", id: "publish-message", "aria-label": "Publish message" },
    [
      ...top,
      headers.node,
      properties.node,
      field("Payload", payload),
      field("Payload encoding", encoding),
      h("div", { class: "actions" }, [h("button", { type: "submit", text: "Publish message" })]),
    ],
    async (v) => {
      // Rows of the properties editor win over the fields above them: they were typed on purpose.
      const props = withNumbers({ delivery_mode: Number(v.delivery_mode), headers: headers.value(), ...properties.value() });
      const reply = await api(path("exchanges", vhost, exchange, "publish"), {
        method: "POST",
        body: {
          properties: props,
          routing_key: fixed ? fixedRoutingKey : v.routing_key,
          payload: v.payload,
          payload_encoding: v.payload_encoding,
        },
      });
      published(reply);
      return reply ?? {};
    },
    (reply) => {
      const status = node.querySelector(".status");
      status.classList.toggle("warn", !reply.routed);
      status.dataset.routed = reply.routed ? "true" : "false";
      return reply.routed ? "Message published." : "Message published, but not routed.";
    },
  );
  return node;
}
