//! Warren: an AMQP 0-9-1 message broker for RabbitMQ's clients.
//!
//! `server::run` takes bound listeners, a configuration and a shutdown future, so the binary,
//! the tests and anyone embedding Warren start it the same way.

pub mod broker;
pub mod config;
pub mod connection;
pub mod error;
pub mod server;
pub mod store;

pub use config::Config;
pub use server::{run, Server};
