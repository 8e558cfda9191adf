//! Real headless Chromium through chromedriver (WebDriver, fantoccini).
//! Debian's `chromium` and `chromium-driver` must be installed (`scripts/test`
//! does it). Screenshots go to `target/screenshots/` as test artefacts.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::process::free_addr;

/// A browser session.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("screenshots")
}

impl Browser {
    /// Start chromedriver and a headless Chromium session.
    pub async fn start() -> Self {
        for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: run `bash scripts/test` (it installs chromium and chromium-driver)"
            );
        }
        let addr = free_addr();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={}", addr.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--disable-sync", "--window-size=1100,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://{addr}"))
            .await
            .expect("a WebDriver session");
        Self {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Save a screenshot as `target/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// The text of the element with this CSS selector.
    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The element with this CSS selector; panics when there is none.
    pub async fn element(&self, css: &str) -> fantoccini::elements::Element {
        let found = self.client.find(Locator::Css(css)).await;
        found.unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    /// Click the element with this CSS selector.
    pub async fn click(&self, css: &str) {
        self.element(css).await.click().await.unwrap();
    }

    /// Replace the text of the input with this CSS selector.
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.element(css).await;
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    /// The current value of the input with this CSS selector.
    pub async fn value(&self, css: &str) -> String {
        let value = self.element(css).await.prop("value").await.unwrap();
        value.unwrap_or_default()
    }

    /// Wait (bounded) until the element's text satisfies `pred`; the text.
    pub async fn wait_text(&self, css: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = el.text().await
                && pred(&text)
            {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} in {css}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// End the session and stop chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
