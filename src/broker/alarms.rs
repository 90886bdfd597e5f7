//! Resource alarms, as RabbitMQ's: the broker's memory (its resident set) against
//! `vm_memory_high_watermark`, and the data directory's free disk space against
//! `disk_free_limit`, checked every `memory_monitor_interval`. While either alarm is raised,
//! connections that publish are blocked (they send `connection.blocked` and stop reading their
//! socket, see `connection`); consumers go on, so queues drain. Connections watch the state
//! through a `watch` channel, so nothing on the message path reads it.

use super::Broker;
use crate::config::Config;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Weak;
use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

/// Which alarms are raised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlarmState {
    pub memory: bool,
    pub disk: bool,
}

impl AlarmState {
    pub fn any(self) -> bool {
        self.memory || self.disk
    }

    /// The reason `connection.blocked` gives, as RabbitMQ words it.
    pub fn reason(self) -> &'static str {
        match (self.memory, self.disk) {
            (true, true) => "low on memory & low on disk space",
            (true, false) => "low on memory",
            _ => "low on disk space",
        }
    }
}

#[derive(Debug)]
pub struct Alarms {
    state: watch::Sender<AlarmState>,
    /// Bytes of memory above which the memory alarm is raised.
    memory_limit: AtomicU64,
    /// Bytes of free disk below which the disk alarm is raised.
    disk_limit: AtomicU64,
    /// What the last check measured, for the management API.
    memory_used: AtomicU64,
    disk_free: AtomicU64,
}

impl Alarms {
    pub fn new(config: &Config) -> Self {
        let total = total_memory();
        Self {
            state: watch::Sender::new(AlarmState::default()),
            memory_limit: AtomicU64::new(config.vm_memory_high_watermark.bytes(total)),
            disk_limit: AtomicU64::new(config.disk_free_limit.bytes(total)),
            memory_used: AtomicU64::new(resident_bytes()),
            disk_free: AtomicU64::new(disk_available(&config.data_dir)),
        }
    }

    /// The alarms as they change (connections block and unblock on it).
    pub fn subscribe(&self) -> watch::Receiver<AlarmState> {
        self.state.subscribe()
    }

    pub fn state(&self) -> AlarmState {
        *self.state.borrow()
    }

    pub fn memory_limit(&self) -> u64 {
        self.memory_limit.load(Ordering::Relaxed)
    }

    pub fn disk_limit(&self) -> u64 {
        self.disk_limit.load(Ordering::Relaxed)
    }

    pub fn memory_used(&self) -> u64 {
        self.memory_used.load(Ordering::Relaxed)
    }

    pub fn disk_free(&self) -> u64 {
        self.disk_free.load(Ordering::Relaxed)
    }

    /// Changes the memory limit (`rabbitmqctl set_vm_memory_high_watermark`); the next check
    /// applies it.
    pub fn set_memory_limit(&self, bytes: u64) {
        self.memory_limit.store(bytes, Ordering::Relaxed);
    }

    /// Changes the free disk limit (`rabbitmqctl set_disk_free_limit`).
    pub fn set_disk_limit(&self, bytes: u64) {
        self.disk_limit.store(bytes, Ordering::Relaxed);
    }

    /// Compares what was measured with the limits, raising or clearing alarms; true if that
    /// changed them.
    fn check(&self, memory_used: u64, disk_free: u64, node: &str) -> bool {
        self.memory_used.store(memory_used, Ordering::Relaxed);
        self.disk_free.store(disk_free, Ordering::Relaxed);
        let now = AlarmState {
            memory: memory_used > self.memory_limit(),
            disk: disk_free < self.disk_limit(),
        };
        let before = self.state();
        if now == before {
            return false;
        }
        log_change("memory", before.memory, now.memory, node);
        log_change("disk", before.disk, now.disk, node);
        self.state.send_replace(now);
        true
    }
}

fn log_change(resource: &str, was: bool, is: bool, node: &str) {
    match (was, is) {
        (false, true) => warn!(
            "{resource} resource limit alarm set on node {node}. \
             Publishers will be blocked until this alarm clears"
        ),
        (true, false) => warn!("{resource} resource limit alarm cleared on node {node}"),
        _ => {}
    }
}

/// Checks memory and disk until the broker goes.
pub async fn run(broker: Weak<Broker>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        let Some(broker) = broker.upgrade() else {
            return;
        };
        let dir = broker.config.data_dir.clone();
        // statvfs touches the file system: off the runtime's threads.
        let disk = tokio::task::spawn_blocking(move || disk_available(&dir))
            .await
            .unwrap_or(u64::MAX);
        if broker
            .alarms
            .check(resident_bytes(), disk, broker.node_name())
        {
            broker.connections.alarms_changed();
        }
    }
}

/// The broker's resident set, in bytes.
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The memory the broker may use: the machine's, or its cgroup's limit when lower (a
/// container's).
pub fn total_memory() -> u64 {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(u64::MAX, |kib| kib * 1024);
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .filter_map(|s| s.trim().parse::<u64>().ok())
    .min()
    .unwrap_or(u64::MAX);
    machine.min(cgroup)
}

/// Bytes available to unprivileged users on the file system holding `dir`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn disk_available(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return u64::MAX;
    };
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `stat` a buffer statvfs fills on success.
    match unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) } {
        0 => {
            // SAFETY: statvfs returned 0, so it filled `stat`.
            let stat = unsafe { stat.assume_init() };
            // The field types differ between platforms (u32 or u64).
            #[allow(clippy::unnecessary_cast)]
            let bytes = stat.f_bavail as u64 * stat.f_frsize as u64;
            bytes
        }
        // Unknown: no alarm rather than a false one.
        _ => u64::MAX,
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn disk_available(_dir: &Path) -> u64 {
    u64::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_rise_and_clear_with_what_is_measured() {
        let config = Config::default();
        let alarms = Alarms::new(&config);
        alarms.set_memory_limit(1000);
        alarms.set_disk_limit(100);
        let mut seen = alarms.subscribe();
        alarms.check(500, 200, "n");
        assert!(!alarms.state().any());
        alarms.check(1500, 200, "n");
        assert!(seen.has_changed().unwrap());
        assert_eq!(seen.borrow_and_update().reason(), "low on memory");
        alarms.check(1500, 50, "n");
        assert_eq!(alarms.state().reason(), "low on memory & low on disk space");
        alarms.check(10, 50, "n");
        assert_eq!(alarms.state().reason(), "low on disk space");
        alarms.check(10, 500, "n");
        assert!(!alarms.state().any());
    }

    #[test]
    fn the_memory_limit_is_a_share_of_what_the_broker_may_use() {
        let total = total_memory();
        assert!(total > 0 && total < u64::MAX);
        let alarms = Alarms::new(&Config::default());
        assert_eq!(alarms.memory_limit(), (total as f64 * 0.4) as u64);
        assert_eq!(alarms.disk_limit(), 50_000_000);
    }
}
