//! A real Prometheus server (Debian's `prometheus` package) scraping test processes every
//! second, and its HTTP query API.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

/// Where Debian puts the server and its rule checker.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";
pub const PROMTOOL: &str = "/usr/bin/promtool";

impl Prometheus {
    /// Starts a server scraping `targets` (`host:port`) every second, on a free port, and waits
    /// until it reports itself ready.
    pub async fn start(targets: &[String]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: userstream\n    \
                 static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        let port = super::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {PROMETHEUS} (apt-get install prometheus): {e}"));
        let prometheus = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let ready = format!("{}/-/ready", prometheus.url);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            if let Ok(answer) = reqwest::get(&ready).await
                && answer.status().is_success()
            {
                return prometheus;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Prometheus not ready after 120 s: {}",
                std::fs::read_to_string(prometheus.log()).unwrap_or_default()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> PathBuf {
        self._dir.path().join("prometheus.log")
    }

    /// The value of an instant query that yields one sample, `None` while it yields none.
    pub async fn value(&self, query: &str) -> Option<f64> {
        let body = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .send()
            .await
            .ok()?
            .bytes()
            .await
            .ok()?;
        let answer: serde_json::Value = serde_json::from_slice(&body).ok()?;
        assert_eq!(answer["status"], "success", "{query}: {answer}");
        let result = answer["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{query} yields several series: {answer}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
