//! The connection's answer to the management API's question about its channels, given
//! between frames from the connection's own state.

use super::Connection;
use crate::broker::connections::ChannelView;
use crate::broker::queue::ChannelGate;
use crate::broker::stats::Stat;

impl Connection {
    /// Adds to one of a channel's counters (nothing if the channel is gone).
    pub(super) fn count(&self, channel_id: u16, stat: Stat, n: u64) {
        if let Some(ch) = self.channels.get(&channel_id) {
            ch.stats.counters.add(stat, n);
        }
    }

    pub(super) fn describe(&self) -> Vec<ChannelView> {
        let mut views: Vec<ChannelView> = self
            .channels
            .iter()
            .map(|(number, ch)| ChannelView {
                number: *number,
                prefetch_count: ch.consumer_prefetch,
                global_prefetch_count: global_prefetch(&ch.gate),
                consumer_count: ch.consumers.len(),
                unacked: ch.unacked.len(),
                unconfirmed: ch.confirms.as_ref().map_or(0, |c| c.waiting.len()),
                uncommitted: ch.tx.as_ref().map_or(0, Vec::len),
                confirm: ch.confirms.is_some(),
                transactional: ch.tx.is_some(),
            })
            .collect();
        views.sort_by_key(|v| v.number);
        views
    }
}

fn global_prefetch(gate: &ChannelGate) -> u32 {
    gate.prefetch.limit()
}
