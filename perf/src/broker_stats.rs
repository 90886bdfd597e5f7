//! The broker process's CPU time and memory, read from /proc/PID/stat (utime + stime) and
//! /proc/PID/status (VmRSS, VmHWM) before, during and after a run. Linux, same host only.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// /proc reports CPU time in USER_HZ ticks, which Linux fixes at 100 per second for user space.
const TICKS_PER_SECOND: f64 = 100.0;
/// How often the sampler looks for a new peak RSS.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// One reading of the broker process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub cpu_seconds: f64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

pub fn sample(pid: u32) -> std::io::Result<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(Sample {
        cpu_seconds: cpu_ticks(&stat).unwrap_or(0) as f64 / TICKS_PER_SECOND,
        rss_kib: status_kib(&status, "VmRSS:").unwrap_or(0),
        hwm_kib: status_kib(&status, "VmHWM:").unwrap_or(0),
    })
}

/// utime + stime: fields 14 and 15, counted after the parenthesised command name, which may
/// itself contain spaces and parentheses.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// What a run cost the broker.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BrokerUsage {
    pub pid: u32,
    pub cpu_seconds: f64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// The highest RSS seen by sampling every 100 ms during the run.
    pub rss_peak_kib: u64,
    /// The kernel's high-water mark of RSS since the broker started (VmHWM).
    pub vm_hwm_kib: u64,
}

/// Samples a broker from `start` to `finish`, tracking its peak RSS in the background.
pub struct BrokerSampler {
    pid: u32,
    before: Sample,
    peak_kib: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl BrokerSampler {
    pub fn start(pid: u32) -> std::io::Result<Self> {
        let before = sample(pid)?;
        let peak_kib = Arc::new(AtomicU64::new(before.rss_kib));
        let peak = peak_kib.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                match sample(pid) {
                    Ok(s) => _ = peak.fetch_max(s.rss_kib, Relaxed),
                    Err(_) => return,
                }
            }
        });
        Ok(Self {
            pid,
            before,
            peak_kib,
            task,
        })
    }

    /// A reading now, for modes that look at memory mid-run.
    pub fn now(&self) -> Sample {
        sample(self.pid).unwrap_or_default()
    }

    /// The highest RSS seen so far.
    pub fn peak_kib(&self) -> u64 {
        self.peak_kib.load(Relaxed)
    }

    pub fn finish(self) -> BrokerUsage {
        self.task.abort();
        let after = self.now();
        BrokerUsage {
            pid: self.pid,
            cpu_seconds: (after.cpu_seconds - self.before.cpu_seconds).max(0.0),
            rss_before_kib: self.before.rss_kib,
            rss_after_kib: after.rss_kib,
            rss_peak_kib: self.peak_kib.load(Relaxed).max(after.rss_kib),
            vm_hwm_kib: after.hwm_kib,
        }
    }
}

/// Starts a sampler when a pid was given.
pub fn start(pid: Option<u32>) -> std::io::Result<Option<BrokerSampler>> {
    pid.map(BrokerSampler::start).transpose()
}

/// CPU-seconds per million operations, when there were any.
pub fn cpu_per_million(usage: &BrokerUsage, operations: u64) -> Option<f64> {
    (operations > 0).then(|| usage.cpu_seconds / (operations as f64 / 1e6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(cpu_ticks(stat), Some(300));
        let status = "Name:\twarren\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(10240));
        assert_eq!(status_kib(status, "VmHWM:"), Some(20480));
    }

    #[tokio::test]
    async fn samples_this_process() {
        let sampler = BrokerSampler::start(std::process::id()).unwrap();
        let usage = sampler.finish();
        assert!(usage.rss_after_kib > 0 && usage.vm_hwm_kib >= usage.rss_after_kib);
    }
}
