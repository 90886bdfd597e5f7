//! One module per mode; `load` holds what the message-moving modes share.

pub mod backlog;
pub mod churn;
pub mod connections;
pub mod fanout;
mod load;
pub mod throughput;
