//! Publisher confirms (confirm.select, and the coalesced acks) and transactions (tx.select,
//! commit, rollback).

use super::channel::{Confirms, TxOp};
use super::Connection;
use crate::broker::queue::ConnectionEvent;
use crate::broker::stats::Stat;
use crate::error::{AmqpError, AmqpResult};
use crate::store::writer::Durable;
use warren_amqp::protocol::{confirm as cf, tx};
use warren_amqp::AMQPClass;

impl Connection {
    /// Writes the publisher confirms decided since the last flush, one (multiple) ack per channel.
    pub(super) fn flush_confirms(&mut self) {
        for (id, channel) in self.channels.iter_mut() {
            if let Some(confirms) = &mut channel.confirms {
                let confirmed = confirms.flush(&mut self.io.output, *id);
                channel.stats.counters.add(Stat::Confirm, confirmed);
            }
        }
    }

    pub(super) fn confirm_select(&mut self, channel_id: u16, nowait: bool) -> AmqpResult<()> {
        let channel = self.channel(channel_id)?;
        if channel.tx.is_some() {
            return Err(AmqpError::precondition_failed(
                "cannot switch from tx to confirm mode",
            ));
        }
        channel.confirms.get_or_insert_with(Confirms::new);
        self.reply(
            channel_id,
            nowait,
            AMQPClass::Confirm(cf::AMQPMethod::SelectOk(cf::SelectOk {})),
        );
        Ok(())
    }

    pub(super) fn tx_select(&mut self, channel_id: u16) -> AmqpResult<()> {
        let channel = self.channel(channel_id)?;
        if channel.confirms.is_some() {
            return Err(AmqpError::precondition_failed(
                "cannot switch from confirm to tx mode",
            ));
        }
        channel.tx.get_or_insert_with(Vec::new);
        self.io.send(
            channel_id,
            &AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
        );
        Ok(())
    }

    pub(super) fn tx_commit(&mut self, channel_id: u16) -> AmqpResult<()> {
        let ops = self.take_tx(channel_id)?;
        let mut stored = false;
        for op in ops {
            match op {
                TxOp::Publish(p) => stored |= self.route(channel_id, *p).stored,
                TxOp::Settle {
                    deliveries,
                    requeue,
                } => self.settle(channel_id, deliveries, requeue),
            }
        }
        if stored {
            // commit-ok waits until the transaction's persistent messages are on disk.
            let mailbox = self.mailbox.clone();
            self.broker.store.barrier(Durable::Then(Box::new(move |_| {
                let _ = mailbox.send(ConnectionEvent::TxDurable {
                    channel: channel_id,
                });
            })));
        } else {
            self.send_commit_ok(channel_id);
        }
        Ok(())
    }

    pub(super) fn send_commit_ok(&mut self, channel_id: u16) {
        self.io.send(
            channel_id,
            &AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
        );
    }

    pub(super) fn tx_rollback(&mut self, channel_id: u16) -> AmqpResult<()> {
        let ops = self.take_tx(channel_id)?;
        let channel = self.channel(channel_id)?;
        // Acks inside the rolled-back transaction never happened: the deliveries are unacked again.
        for op in ops {
            if let TxOp::Settle { deliveries, .. } = op {
                for d in deliveries {
                    let at = channel.unacked.partition_point(|u| u.tag < d.tag);
                    channel.unacked.insert(at, d);
                }
            }
        }
        self.io.send(
            channel_id,
            &AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
        );
        Ok(())
    }

    pub(super) fn take_tx(&mut self, channel_id: u16) -> AmqpResult<Vec<TxOp>> {
        let channel = self.channel(channel_id)?;
        match &mut channel.tx {
            Some(ops) => Ok(std::mem::take(ops)),
            None => Err(AmqpError::precondition_failed(
                "channel is not transactional",
            )),
        }
    }
}
