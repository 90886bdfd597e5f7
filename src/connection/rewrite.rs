//! What the broker changes in a message before routing it: a direct reply-to requester's
//! reply_to becomes its channel's reply name, and BCC leaves the headers (CC and BCC become
//! extra routing keys). Only such messages have their properties re-encoded; every other one
//! keeps the publisher's bytes, at the cost of a look at reply_to and, when it has headers,
//! two lookups. A message a delayed exchange will hold keeps its BCC until it is released,
//! because the held copy (and its stored record) is all that carries those keys until then.

use super::Connection;
use crate::broker::{reply_to, sender_selected};
use crate::error::AmqpResult;
use bytes::BytesMut;
use warren_amqp::{encode, Content};

impl Connection {
    /// The message as it will be routed (or held, when `held`: BCC stays in its headers), and
    /// the routing keys its CC and BCC headers add. The headers are checked either way, so a
    /// bad CC or BCC is refused at publish whether the message waits or not.
    pub(super) fn rewrite(
        &mut self,
        channel_id: u16,
        mut content: Content,
        held: bool,
    ) -> AmqpResult<(Content, Vec<String>)> {
        let reply_name = match content.properties.reply_to() {
            Some(r) if r.as_str() == reply_to::PSEUDO_QUEUE => Some(self.reply_name(channel_id)?),
            _ => None,
        };
        let (extra_keys, headers) = match content.properties.headers() {
            Some(h) => (
                sender_selected::extra_keys(h)?,
                if held {
                    None
                } else {
                    sender_selected::without_bcc(h)
                },
            ),
            None => (Vec::new(), None),
        };
        if reply_name.is_none() && headers.is_none() {
            return Ok((content, extra_keys));
        }
        let mut properties = content.properties.clone();
        if let Some(name) = reply_name {
            properties = properties.with_reply_to(warren_amqp::short_string(&name));
        }
        if let Some(headers) = headers {
            properties = properties.with_headers(headers);
        }
        let mut raw = BytesMut::with_capacity(content.raw_properties.len() + 64);
        encode::properties(&mut raw, &properties);
        content.properties = properties;
        content.raw_properties = raw.freeze();
        Ok((content, extra_keys))
    }
}
