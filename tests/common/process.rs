//! The real `warren` binary as a child process, for tests that kill it with SIGKILL.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A `warren` child process. Dropping it kills the process, so a failing test leaves none
/// behind.
pub struct BrokerProcess {
    child: Child,
    pub addr: SocketAddr,
    /// The management API's address.
    pub http: SocketAddr,
    /// Every line the broker wrote to stdout and stderr.
    output: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// How long the binary may take to recover its store and report that it is ready.
pub const READY_WITHIN: Duration = Duration::from_secs(20);

impl BrokerProcess {
    /// Starts the binary on `dir` with an OS-chosen port and waits for its ready line, which
    /// names the port.
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[]).await
    }

    /// Starts the binary with these environment variables set.
    pub async fn start_with(dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_warren"));
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .arg("--amqp-port")
            .arg("0")
            .arg("--http-port")
            .arg("0")
            .arg("--prometheus-port")
            .arg("0")
            .arg("--data-dir")
            .arg(dir)
            .arg("--bind")
            .arg("127.0.0.1")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("WARREN_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the warren binary starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let ready_tx = Arc::new(Mutex::new(Some(ready_tx)));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let readers = vec![
            read_lines(stdout, output.clone(), ready_tx.clone()),
            read_lines(stderr, output.clone(), ready_tx),
        ];
        let mut process = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            output,
            readers,
        };
        match tokio::time::timeout(READY_WITHIN, ready_rx).await {
            Ok(Ok(addr)) => {
                process.addr = addr;
                process.http = http_addr(&process.log()).expect("the API's address is logged");
            }
            Ok(Err(_)) => panic!("warren exited before it was ready:\n{}", process.log()),
            Err(_) => panic!(
                "warren was not ready within {READY_WITHIN:?}:\n{}",
                process.log()
            ),
        }
        process
    }

    pub fn uri(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// SIGKILL, then a look at what the broker logged: no panic, no error (a failed store
    /// write among them) and nothing recovery had to drop.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the killed broker is reaped");
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let log = self.log();
        for bad in ["panicked", "ERROR", "recovery dropped"] {
            assert!(!log.contains(bad), "the broker logged {bad:?}:\n{log}");
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type ReadySender = Arc<Mutex<Option<tokio::sync::oneshot::Sender<SocketAddr>>>>;

/// Collects a pipe's lines and reports the address in the ready line. Ends at end of file,
/// i.e. when the process is gone.
fn read_lines(
    pipe: impl Read + Send + 'static,
    output: Arc<Mutex<Vec<String>>>,
    ready: ReadySender,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = ready_addr(&line) {
                if let Some(tx) = ready.lock().unwrap().take() {
                    let _ = tx.send(addr);
                }
            }
            output.lock().unwrap().push(line);
        }
    })
}

/// The address in "Warren … ready to accept AMQP connections on 127.0.0.1:PORT".
fn ready_addr(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("ready to accept AMQP connections on ")?;
    let addr = rest.split_whitespace().next()?;
    addr.trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

/// The address in "management API on http://127.0.0.1:PORT", logged before the ready line.
fn http_addr(log: &str) -> Option<SocketAddr> {
    let (_, rest) = log.split_once("management API on http://")?;
    let addr = rest.split_whitespace().next()?;
    addr.trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}
