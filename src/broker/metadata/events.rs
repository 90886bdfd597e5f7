//! The events changes to the tenancy model emit (`broker::events`): vhosts, users,
//! permissions and policies created, changed and deleted, with RabbitMQ's names and fields.

use super::permissions::PermissionSpec;
use super::policies::PolicySpec;
use super::users::User;
use super::{Metadata, VhostRecord};
use crate::broker::events::Fields;
use crate::broker::field_json::json_to_table;
use warren_amqp::{AMQPValue, FieldArray};

impl Metadata {
    fn emit(&self, name: &'static str, fields: Fields) {
        self.events.emit(name, fields);
    }

    pub(super) fn vhost_created(&self, v: &VhostRecord, by: &str) {
        let fields = Fields::new()
            .text("name", &v.name)
            .text("description", &v.description)
            .value("tags", texts(&v.tags))
            .flag("tracing", v.tracing)
            .text(
                "default_queue_type",
                v.default_queue_type.as_deref().unwrap_or("undefined"),
            )
            .by(by);
        self.emit("vhost.created", fields);
    }

    /// Emitted once everything the vhost held is gone.
    pub fn vhost_deleted(&self, name: &str, by: &str) {
        self.emit("vhost.deleted", Fields::new().text("name", name).by(by));
    }

    /// A user was created or replaced (`old`), as the API and imports do, in RabbitMQ's
    /// order: a new user is `user.created` then its tags; a replaced one's new password is
    /// `user.password.changed` then its tags, and a cleared one its tags then
    /// `user.password.cleared`.
    pub(super) fn user_put(&self, old: Option<&User>, new: &User, by: &str) {
        let name = || Fields::new().text("name", &new.name);
        let tags = || {
            self.emit(
                "user.tags.set",
                name().value("tags", texts(&new.tags)).by(by),
            )
        };
        match old {
            None => {
                self.emit("user.created", name().by(by));
                tags();
            }
            Some(_) if new.has_password() => {
                self.emit("user.password.changed", name().by(by));
                tags();
            }
            Some(_) => {
                tags();
                self.emit("user.password.cleared", name().by(by));
            }
        }
    }

    pub(super) fn user_deleted(&self, name: &str, by: &str) {
        self.emit("user.deleted", Fields::new().text("name", name).by(by));
    }

    pub(super) fn permission_created(&self, p: &PermissionSpec, by: &str) {
        let fields = Fields::new()
            .text("user", &p.user)
            .text("vhost", &p.vhost)
            .text("configure", &p.configure)
            .text("write", &p.write)
            .text("read", &p.read)
            .by(by);
        self.emit("permission.created", fields);
    }

    pub(super) fn permission_deleted(&self, user: &str, vhost: &str, by: &str) {
        let fields = Fields::new().text("user", user).text("vhost", vhost).by(by);
        self.emit("permission.deleted", fields);
    }

    pub(super) fn policy_set(&self, p: &PolicySpec, by: &str) {
        let apply_to = serde_json::to_value(p.apply_to)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let fields = Fields::new()
            .text("name", &p.name)
            .text("vhost", &p.vhost)
            .text("pattern", &p.pattern)
            .text("apply-to", &apply_to)
            .table("definition", json_to_table(&p.definition))
            .number("priority", p.priority)
            .by(by);
        self.emit("policy.set", fields);
    }

    pub(super) fn policy_cleared(&self, vhost: &str, name: &str, by: &str) {
        let fields = Fields::new().text("name", name).text("vhost", vhost).by(by);
        self.emit("policy.cleared", fields);
    }
}

fn texts(items: &[String]) -> AMQPValue {
    let items = items
        .iter()
        .map(|t| AMQPValue::LongString(t.as_str().into()))
        .collect::<Vec<_>>();
    AMQPValue::FieldArray(FieldArray::from(items))
}
