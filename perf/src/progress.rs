//! The live progress line: once a second, the last second's rates, when stdout is a terminal
//! (on stderr with --json, so the JSON stays clean).

use crate::stats::Counters;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Prints progress until dropped.
pub struct Progress(Option<JoinHandle<()>>);

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Starts the progress line if stdout is a terminal.
pub fn start(counters: Arc<Counters>, json: bool) -> Progress {
    if !std::io::stdout().is_terminal() {
        return Progress(None);
    }
    Progress(Some(tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let mut last = Snapshot::take(&counters);
        loop {
            tick.tick().await;
            let now = Snapshot::take(&counters);
            let line = format!(
                "{:>5.0}s  published {:>9}/s  confirmed {:>9}/s  consumed {:>9}/s  errors {}",
                start.elapsed().as_secs_f64(),
                now.published - last.published,
                now.confirmed - last.confirmed,
                now.consumed - last.consumed,
                now.errors,
            );
            if json {
                let _ = writeln!(std::io::stderr(), "{line}");
            } else {
                let _ = writeln!(std::io::stdout(), "{line}");
            }
            last = now;
        }
    })))
}

struct Snapshot {
    published: u64,
    confirmed: u64,
    consumed: u64,
    errors: u64,
}

impl Snapshot {
    fn take(c: &Counters) -> Self {
        Self {
            published: Counters::get(&c.published),
            confirmed: Counters::get(&c.confirmed),
            consumed: Counters::get(&c.consumed),
            errors: Counters::get(&c.errors),
        }
    }
}
