//! The events a connection emits (`broker::events`): logins, the connection, its channels and
//! its consumers coming and going, with the fields RabbitMQ's events carry.

use super::Connection;
use crate::broker::connections::ConnectionDetails;
use crate::broker::events::{pid, terms, Fields};
use crate::broker::queue::{ConnectionId, Consumer};
use crate::broker::Broker;
use std::net::SocketAddr;
use warren_amqp::FieldTable;

/// RabbitMQ's name for a connection: `peer -> local`.
fn connection_name(peer: SocketAddr, local: SocketAddr) -> String {
    format!("{peer} -> {local}")
}

/// What a login event says of the socket.
pub(super) struct Login<'a> {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub user: &'a str,
    pub mechanism: &'a str,
}

impl Login<'_> {
    fn fields(&self) -> Fields {
        Fields::new()
            .text("name", self.user)
            .text("auth_mechanism", self.mechanism)
            .text("connection_name", &connection_name(self.peer, self.local))
            .text("host", &self.local.ip().to_string())
            .text("peer_host", &self.peer.ip().to_string())
            .number("peer_port", i64::from(self.peer.port()))
            .text("protocol", "AMQP 0-9-1")
            .flag("ssl", false)
            .text("connection_type", "network")
    }

    pub fn succeeded(&self, broker: &Broker) {
        if !broker.events.wanted() {
            return;
        }
        broker
            .events
            .emit("user.authentication.success", self.fields());
    }

    /// A refused login, and the end of its connection, which never opened.
    pub fn failed(&self, broker: &Broker, id: ConnectionId, client_properties: &FieldTable) {
        if !broker.events.wanted() {
            return;
        }
        let error = format!("user '{}' - invalid credentials", self.user);
        let fields = self.fields().text("error", &error);
        broker.events.emit("user.authentication.failure", fields);
        let closed = Fields::new()
            .text("name", &connection_name(self.peer, self.local))
            .text("pid", &pid(id, 0))
            .text("node", broker.node_name())
            .value("client_properties", terms(client_properties));
        broker.events.emit("connection.closed", closed);
    }
}

/// The name a client gave its connection (`connection_name` in its properties), if any.
fn provided_name(details: &ConnectionDetails) -> Option<String> {
    match details.client_properties.inner().get("connection_name") {
        Some(warren_amqp::AMQPValue::LongString(s)) => {
            Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
        }
        Some(warren_amqp::AMQPValue::ShortString(s)) => Some(s.to_string()),
        _ => None,
    }
}

impl Connection {
    /// The fields `connection.created` and `connection.closed` share.
    fn connection_fields(&self) -> Fields {
        let d = &self.details;
        let mut fields = Fields::new()
            .text("name", &self.name())
            .text("pid", &pid(self.id, 0))
            .text("node", self.broker.node_name())
            .value("client_properties", terms(&d.client_properties));
        if let Some(name) = provided_name(d) {
            fields = fields.text("user_provided_name", &name);
        }
        fields
    }

    pub(super) fn emit_connection_created(&self) {
        if !self.broker.events.wanted() {
            return;
        }
        let d = &self.details;
        let mut fields = self
            .connection_fields()
            .text("user", &self.user)
            .text("vhost", &self.vhost.name)
            .text("auth_mechanism", &d.mechanism)
            .text("protocol", "AMQP 0-9-1")
            .text("type", "network")
            .text("host", &d.local.ip().to_string())
            .number("port", i64::from(d.local.port()))
            .text("peer_host", &self.peer.ip().to_string())
            .number("peer_port", i64::from(self.peer.port()))
            .flag("ssl", false)
            .number("connected_at", d.connected_at as i64)
            .number("frame_max", i64::from(d.frame_max))
            .number("channel_max", i64::from(d.channel_max))
            .number("timeout", i64::from(d.heartbeat));
        for absent in [
            "ssl_protocol",
            "ssl_key_exchange",
            "ssl_cipher",
            "ssl_hash",
            "peer_cert_subject",
            "peer_cert_issuer",
            "peer_cert_validity",
        ] {
            fields = fields.text(absent, "");
        }
        self.broker
            .events
            .emit("connection.created", fields.by(&self.user));
    }

    pub(super) fn emit_connection_closed(&self) {
        if !self.broker.events.wanted() {
            return;
        }
        self.broker
            .events
            .emit("connection.closed", self.connection_fields());
    }

    pub(super) fn emit_channel_created(&self, number: u16) {
        if !self.broker.events.wanted() {
            return;
        }
        let fields = Fields::new()
            .text("name", &format!("{} ({number})", self.name()))
            .number("number", i64::from(number))
            .text("pid", &pid(self.id, number))
            .text("connection", &pid(self.id, 0))
            .text("user", &self.user)
            .text("vhost", &self.vhost.name)
            .by(&self.user);
        self.broker.events.emit("channel.created", fields);
    }

    pub(super) fn emit_channel_closed(&self, number: u16) {
        if !self.broker.events.wanted() {
            return;
        }
        let fields = Fields::new().text("pid", &pid(self.id, number));
        self.broker
            .events
            .emit("channel.closed", fields.by(&self.user));
    }

    pub(super) fn emit_consumer_created(
        &self,
        consumer: &Consumer,
        queue: &str,
        arguments: &FieldTable,
    ) {
        if !self.broker.events.wanted() {
            return;
        }
        let fields = Fields::new()
            .text("consumer_tag", consumer.tag.as_str())
            .text("queue", queue)
            .text("vhost", &self.vhost.name)
            .text("channel", &pid(self.id, consumer.channel))
            .flag("ack_required", !consumer.no_ack)
            .flag("exclusive", consumer.exclusive)
            .number("prefetch_count", i64::from(consumer.prefetch.limit()))
            .value("arguments", terms(arguments))
            .by(&self.user);
        self.broker.events.emit("consumer.created", fields);
    }

    /// `by`: the user for basic.cancel, the broker for a channel or connection that closed.
    pub(super) fn emit_consumer_deleted(&self, channel: u16, tag: &str, queue: &str, by: &str) {
        if !self.broker.events.wanted() {
            return;
        }
        let fields = Fields::new()
            .text("consumer_tag", tag)
            .text("queue", queue)
            .text("vhost", &self.vhost.name)
            .text("channel", &pid(self.id, channel))
            .by(by);
        self.broker.events.emit("consumer.deleted", fields);
    }
}
