//! One module per group of commands.

pub mod admin;
pub mod diagnostics;
pub mod list;
pub mod node;
