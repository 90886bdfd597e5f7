//! A real browser for the UI tests: Debian's chromium, headless, driven over WebDriver
//! (chromedriver, started per test on a free port) with fantoccini. Without chromedriver the
//! UI tests are skipped with a message, unless WARREN_REQUIRE_BROWSER=1 (set by .ci/run, which
//! installs chromium and chromium-driver), where its absence fails them.

use super::TestBroker;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a page may take to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(10);

pub struct Browser {
    pub client: Client,
    /// The UI's address: `http://127.0.0.1:port`.
    pub base: String,
    driver: Child,
}

/// A free local port (bound and released; chromedriver takes it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn available() -> bool {
    let present = Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists();
    if !present {
        assert!(
            std::env::var("WARREN_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "WARREN_REQUIRE_BROWSER=1 but {CHROMEDRIVER} or {CHROMIUM} is missing \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: no {CHROMEDRIVER} (apt-get install chromium chromium-driver)");
    }
    present
}

impl Browser {
    /// A headless browser on `broker`'s UI, or `None` (the test is skipped) without one.
    pub async fn open(broker: &TestBroker) -> Option<Self> {
        if !available() {
            return None;
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(started.elapsed() < PATIENCE, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900"
                ]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://{addr}"))
            .await
            .expect("a WebDriver session");
        let base = format!("http://{}", broker.server.http_addr);
        Some(Self {
            client,
            base,
            driver,
        })
    }

    /// Opens a UI route (`#/queues`...).
    pub async fn goto(&self, route: &str) {
        self.client
            .goto(&format!("{}/{route}", self.base))
            .await
            .expect("navigates");
    }

    /// Logs in through the login form.
    pub async fn log_in(&self, user: &str, password: &str) {
        self.goto("").await;
        self.fill("#username", user).await;
        self.fill("#password", password).await;
        self.click("form.login button[type=submit]").await;
    }

    /// The element `css` picks, once it exists.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Replaces an input's text.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.expect("clears");
        input.send_keys(text).await.expect("types");
    }

    /// Waits until the text of `css` satisfies `ok`, and returns it.
    pub async fn text_where(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if ok(&text) {
                return text;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{css} never showed what was expected; last: {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Accepts the confirm() a dangerous button asks.
    pub async fn accept_confirm(&self) {
        let started = Instant::now();
        while self.client.accept_alert().await.is_err() {
            assert!(started.elapsed() < PATIENCE, "no confirmation was asked");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a screenshot as target/ui-screenshots/NAME.png (kept as a CI artefact).
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("screenshot written");
        path
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that panicked before close() leaves no chromedriver behind.
        let _ = self.driver.kill();
    }
}
