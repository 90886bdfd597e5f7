//! Warren: an AMQP 0-9-1 message broker for RabbitMQ's clients.
//!
//! `server::run` takes bound listeners, a configuration and a shutdown future, so the binary,
//! the tests and anyone embedding Warren start it the same way.
//!
//! # Layers
//!
//! Read this first. From the bottom, each layer uses only itself and the layers below it:
//!
//! 1. **`warren-amqp`** (the `amqp/` crate): the wire. Frames ⇄ bytes, frame assembly into
//!    commands, short strings that cannot panic. No I/O, no broker types.
//! 2. **`store`**: what is kept on disk, and the message as it is kept (`store::Message`,
//!    entries, definitions records). It knows bytes and keys, and no queue, consumer or
//!    connection. The store thread (`store::writer`) applies writes in batches and syncs once
//!    for every confirm waiting.
//! 3. **`broker`**: the semantics both the AMQP side and the management API use: virtual
//!    hosts, exchanges and bindings, queues and their consumers, dead-lettering, timers,
//!    delayed messages, recovery. Within it the queue is the lower module: exchanges, vhosts,
//!    dead-lettering and timers use queues, never the reverse.
//! 4. **`connection`** (one task per AMQP socket) and, beside it, **`http`** (the management
//!    API). Within `connection`, `channel` holds a channel's state and the helpers handlers
//!    share; the method handlers (`basic`, `close`, `reply_to`, `tx`, ...) use that state and
//!    not each other.
//! 5. **`server`**: listeners, accept loops, graceful shutdown.
//! 6. **`main`**: command line → `Config` → tracing → `server::run`.
//!
//! `config`, `error` and `tls` (the TLS setups the AMQPS and HTTPS listeners share) are shared
//! by every layer.
//!
//! # Talking upward
//!
//! No import runs back up a layer, and modules of one parent do not import each other in a
//! circle. When a lower module must tell a higher one something, it owns the trait or the
//! channel type and the higher one implements or listens:
//! - the store tells publishers their messages are on disk through `store::writer::ConfirmSink`,
//!   which a connection's mailbox implements;
//! - a queue hands dead letters and timer requests to the broker's services through the
//!   channels in `broker::queue::hooks`, and deliveries to connections through the mailbox of
//!   `broker::queue::ConnectionEvent`s;
//! - paging reads come back from the store thread as callbacks the queue passed in.
//!
//! `.ci/layers.py` checks both rules on every CI run (`python3 .ci/layers.py`).
//!
//! # Where what comes next goes
//!
//! - Tenancy (vhosts, users, permissions, policies, limits) lives in `broker::metadata`: the
//!   one module that owns that model, with the internal API the HTTP layer calls. It persists
//!   through the store's definition records (`store::StoreOp`), like exchanges and queues.
//! - A replicated store stands behind `store::Store`, the trait the store thread applies
//!   batches of `StoreOp`s to: a consensus log (openraft) can order those batches across
//!   nodes and apply them to each node's local store, without the broker changing.

pub mod broker;
pub mod config;
pub mod connection;
pub mod error;
pub mod http;
pub mod server;
pub mod store;
pub mod tls;

pub use config::Config;
pub use server::{run, Server};
