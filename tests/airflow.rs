//! The Airflow 3 DAG in `deploy/airflow/`, run by real Airflow: `airflow dags test` against a
//! local userstream and a local randomuser-compatible API (`userstream serve-api`).
//!
//! Airflow is installed from PyPI into a throw-away virtualenv under `target/test-servers/` on
//! first use (about 20 s from a warm pip cache), pinned to the version named below.

mod support;

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const AIRFLOW: &str = "apache-airflow==3.3.2";

/// The virtualenv with Airflow, built if missing. A venv's scripts name their interpreter by
/// absolute path, so it is built where it lives; a marker written last tells a finished install
/// from an interrupted one, which is wiped and redone.
fn airflow_venv() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-servers")
        .join(AIRFLOW.replace("==", "-"));
    let done = venv.join("installed");
    if done.exists() {
        return venv;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .unwrap()
        .success();
    assert!(
        ok,
        "python3 -m venv failed (Debian: apt-get install python3-venv)"
    );
    let ok = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", AIRFLOW])
        .status()
        .unwrap()
        .success();
    assert!(ok, "pip install {AIRFLOW} failed");
    std::fs::write(&done, AIRFLOW).unwrap();
    venv
}

struct Airflow {
    venv: PathBuf,
    home: PathBuf,
    config: PathBuf,
}

impl Airflow {
    fn command(&self, args: &[&str]) -> Output {
        let mut command = Command::new(self.venv.join("bin/airflow"));
        for (key, _) in std::env::vars() {
            if key.starts_with("USERSTREAM_") || key.starts_with("AIRFLOW") {
                command.env_remove(key);
            }
        }
        command
            .args(args)
            .env("AIRFLOW_HOME", &self.home)
            .env(
                "AIRFLOW__CORE__DAGS_FOLDER",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/airflow"),
            )
            .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
            .env(
                "AIRFLOW_VAR_USERSTREAM_BIN",
                env!("CARGO_BIN_EXE_userstream"),
            )
            .env("USERSTREAM_CONFIG", &self.config)
            .env("USERSTREAM_HTTP__LISTEN", "off")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `airflow dags test` of the DAG; its output for messages, and each task's final state.
    fn test_dag(&self) -> (Output, Vec<(String, String)>, Option<String>) {
        let out = self.command(&["dags", "test", "userstream_ingest"]);
        let db = Connection::open(self.home.join("airflow.db")).unwrap();
        let run_id: String = db
            .query_row(
                "SELECT run_id FROM dag_run WHERE dag_id = 'userstream_ingest' ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let mut stmt = db
            .prepare("SELECT task_id, coalesce(state, '') FROM task_instance WHERE run_id = ?1 ORDER BY task_id")
            .unwrap();
        let states = stmt
            .query_map([&run_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let xcom = db
            .query_row(
                "SELECT CAST(value AS TEXT) FROM xcom WHERE run_id = ?1 AND task_id = 'ingest' AND key = 'return_value'",
                [&run_id],
                |r| r.get(0),
            )
            .ok();
        (out, states, xcom)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn state(states: &[(String, String)], task: &str) -> String {
    states
        .iter()
        .find(|(t, _)| t == task)
        .map(|(_, s)| s.clone())
        .unwrap_or_default()
}

fn runs(config: &Path) -> Vec<serde_json::Value> {
    let out = support::userstream_bin()
        .env("USERSTREAM_CONFIG", config)
        .args(["-q", "jobs", "runs", "airflow", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn serve_api(port: u16) -> Child {
    support::userstream_bin()
        .args(["-q", "serve-api", "--addr", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_airflow_dag_ingests_and_processes_and_fails_and_skips_as_userstream_says() {
    let venv = tokio::task::spawn_blocking(airflow_venv).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let config = dir.path().join("userstream.toml");
    std::fs::write(
        &config,
        format!(
            r#"data_dir = "{data}"

[ingest]
source = "randomuser"
batch_size = 10
interval = "0s"

[randomuser]
url = "http://127.0.0.1:{port}/api/"
max_attempts = 1

[[jobs]]
name = "airflow"
every = "1h"
users = 30
retries = 1
retry_backoff = "100ms"
"#,
            data = dir.path().join("data").display()
        ),
    )
    .unwrap();
    let airflow = Airflow {
        venv,
        home: dir.path().join("airflow"),
        config: config.clone(),
    };
    let migrated = airflow.command(&["db", "migrate"]);
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));

    let mut api = serve_api(port);
    let http = reqwest::Client::new();
    support::wait_for("serve-api", || {
        let (http, url) = (
            http.clone(),
            format!("http://127.0.0.1:{port}/api/?results=1"),
        );
        async move { http.get(url).send().await.is_ok() }
    })
    .await;

    // A good run: the task succeeds, the users are stored, the run is in the history, and the
    // run's summary is the ingest task's XCom.
    let (out, states, xcom) = airflow.test_dag();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        (state(&states, "ingest"), state(&states, "process")),
        ("success".into(), "success".into())
    );
    assert_eq!(
        support::count(&dir.path().join("data/store.db"), "created_users"),
        30
    );
    let history = runs(&config);
    assert_eq!(history.len(), 1);
    let run = &history[0];
    assert_eq!(
        (run["status"].as_str(), run["trigger"].as_str()),
        (Some("succeeded"), Some("manual"))
    );
    assert_eq!(run["users_published"], 30);
    let xcom = xcom.expect("the ingest task pushed an XCom");
    assert!(
        xcom.contains(run["run_id"].as_str().unwrap()),
        "XCom {xcom}"
    );

    // The API goes away: the run fails after its retry, and so does the task.
    api.kill().unwrap();
    api.wait().unwrap();
    let (out, states, _) = airflow.test_dag();
    assert!(!out.status.success(), "the DAG run must fail");
    assert_eq!(state(&states, "ingest"), "failed");
    assert_ne!(state(&states, "process"), "success");
    let failed = &runs(&config)[0];
    assert_eq!(
        (failed["status"].as_str(), failed["attempt"].as_u64()),
        (Some("failed"), Some(2))
    );
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{failed}"
    );
    assert_eq!(
        support::count(&dir.path().join("data/store.db"), "created_users"),
        30
    );

    // Another process is in the middle of a run of the job: exit 99, which Airflow marks skipped.
    let meta = Connection::open(dir.path().join("data/meta.db")).unwrap();
    meta.execute(
        "INSERT INTO job_runs (run_id, job, trigger, status, attempt, created_at, users_fetched, \
         users_published, api_errors, owner, lease_until) \
         VALUES ('elsewhere', 'airflow', 'manual', 'running', 1, 0, 0, 0, '{}', 'other', ?1)",
        [chrono::Utc::now().timestamp_micros() + 3_600_000_000],
    )
    .unwrap();
    let (_, states, _) = airflow.test_dag();
    assert_eq!(state(&states, "ingest"), "skipped");
    assert_eq!(runs(&config)[0]["status"], "skipped");
}
