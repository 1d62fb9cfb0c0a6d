//! Scheduled jobs through the binary: `jobs trigger` and its exit codes, `jobs runs`, the
//! `/jobs` routes of `run`, and two schedulers sharing one history while one is killed.

mod support;

use rusqlite::Connection;
use std::path::Path;
use std::process::{Child, Output, Stdio};

fn write_config(dir: &Path, extra: &str) {
    std::fs::write(
        dir.join("userstream.toml"),
        format!(
            r#"data_dir = "data"

[ingest]
batch_size = 10
interval = "0s"
seed = "jobs"

[[jobs]]
name = "pull"
every = "1h"
users = 25
retries = 1
retry_backoff = "10ms"
{extra}"#
        ),
    )
    .unwrap();
}

fn userstream(dir: &Path, args: &[&str]) -> Output {
    support::userstream_bin()
        .current_dir(dir)
        .env_remove("USERSTREAM_CONFIG")
        .arg("-q")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The last line of stdout, as JSON: the run's summary.
fn summary(out: &Output) -> serde_json::Value {
    let stdout = text(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: last stdout line {last:?}"))
}

fn runs(dir: &Path) -> Vec<serde_json::Value> {
    let out = userstream(
        dir,
        &["jobs", "runs", "--format", "json", "--limit", "1000"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_triggered_run_succeeds_and_is_in_the_history() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "");
    let out = userstream(dir.path(), &["jobs", "trigger", "pull"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let run = summary(&out);
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["trigger"], "manual");
    // 25 users in pages of 10: three whole pages.
    assert_eq!(
        (
            run["users_fetched"].as_u64(),
            run["users_published"].as_u64()
        ),
        (Some(30), Some(30))
    );
    assert_eq!(
        support::count(&dir.path().join("data/log.db"), "raw_records"),
        30
    );
    // The log's records name the run that fetched them.
    let conn = Connection::open(dir.path().join("data/log.db")).unwrap();
    let tagged: u64 = conn
        .query_row(
            "SELECT count(*) FROM raw_records WHERE run_id = ?1",
            [run["run_id"].as_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tagged, 30);

    let out = userstream(dir.path(), &["jobs", "trigger", "pull", "--users", "5"]);
    assert_eq!(summary(&out)["users_published"], 10);
    let history = runs(dir.path());
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["users_requested"], 5, "newest first");

    let out = userstream(dir.path(), &["jobs"]);
    let listing = text(&out.stdout);
    assert!(
        listing.contains("pull") && listing.contains("every 1h") && listing.contains("succeeded"),
        "{listing}"
    );

    let out = userstream(dir.path(), &["jobs", "trigger", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains(r#"no job named "nope" in the configuration; the jobs are ["pull"]"#),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_failing_api_fails_the_run_after_its_retries() {
    let dir = tempfile::tempdir().unwrap();
    let closed = support::free_port();
    write_config(
        dir.path(),
        &format!("\n[randomuser]\nurl = \"http://127.0.0.1:{closed}/api/\"\nmax_attempts = 1\n"),
    );
    let out = support::userstream_bin()
        .current_dir(dir.path())
        .env("USERSTREAM_INGEST__SOURCE", "randomuser")
        .args(["-q", "jobs", "trigger", "pull"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let run = summary(&out);
    assert_eq!(
        (run["status"].as_str(), run["attempt"].as_u64()),
        (Some("failed"), Some(2))
    );
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{closed}")),
        "{run}"
    );
    assert_eq!(run["api_errors"]["transport"], 2, "{run}");
    assert!(
        text(&out.stderr).contains("failed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_trigger_while_the_job_runs_elsewhere_is_skipped_with_its_own_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "");
    // Create the history, then stand in for another process in the middle of a run.
    assert!(userstream(dir.path(), &["jobs", "runs"]).status.success());
    let conn = Connection::open(dir.path().join("data/meta.db")).unwrap();
    let far = chrono::Utc::now().timestamp_micros() + 3_600_000_000;
    conn.execute(
        "INSERT INTO job_runs (run_id, job, trigger, status, attempt, created_at, users_fetched, \
         users_published, api_errors, owner, lease_until) \
         VALUES ('other', 'pull', 'manual', 'running', 1, 0, 0, 0, '{}', 'elsewhere', ?1)",
        [far],
    )
    .unwrap();
    let out = userstream(dir.path(), &["jobs", "trigger", "pull"]);
    assert_eq!(out.status.code(), Some(99), "{}", text(&out.stderr));
    let run = summary(&out);
    assert_eq!(run["status"], "skipped");
    assert!(
        text(&out.stderr).contains("still going (overlap = skip)"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        support::count(&dir.path().join("data/log.db"), "raw_records"),
        0
    );
}

fn spawn(dir: &Path, args: &[&str], port: u16) -> Child {
    support::userstream_bin()
        .current_dir(dir)
        .env_remove("USERSTREAM_CONFIG")
        .env("USERSTREAM_HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .arg("-q")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// `[http] token` of the tests that trigger over HTTP.
const TOKEN: &str = "a-test-token-of-some-length";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_jobs_and_a_triggered_run_reaches_the_store() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "");
    let port = support::free_port();
    let mut child = {
        let mut command = support::userstream_bin();
        command
            .current_dir(dir.path())
            .env_remove("USERSTREAM_CONFIG")
            .env("USERSTREAM_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("USERSTREAM_HTTP__TOKEN", TOKEN)
            .args(["-q", "run"])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        command.spawn().unwrap()
    };
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    support::wait_for("the HTTP server", || {
        let http = http.clone();
        let url = format!("{base}/jobs");
        async move { http.get(url).send().await.is_ok() }
    })
    .await;
    let jobs: serde_json::Value = http
        .get(format!("{base}/jobs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .parse::<serde_json::Value>()
        .unwrap();
    assert_eq!(jobs[0]["name"], "pull");
    assert!(jobs[0]["next_due"].is_string());

    // A trigger changes state: without `[http] token`, or with a wrong one, it is refused.
    let trigger = format!("{base}/jobs/pull/trigger?users=40");
    let anonymous = http.post(&trigger).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = http.post(&trigger).bearer_auth("guess").send();
    assert_eq!(wrong.await.unwrap().status(), 401);
    let response = http.post(&trigger).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status(), 202);
    let queued: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(
        (
            queued["status"].as_str(),
            queued["users_requested"].as_u64()
        ),
        (Some("queued"), Some(40))
    );

    let data = dir.path().join("data");
    support::wait_until("the triggered users to be stored", || {
        support::count(&data.join("store.db"), "created_users") == 40
    })
    .await;
    let run_id = queued["run_id"].as_str().unwrap().to_owned();
    support::wait_for("the run to be recorded succeeded", || {
        let (http, url, run_id) = (
            http.clone(),
            format!("{base}/jobs/runs?job=pull"),
            run_id.clone(),
        );
        async move {
            let runs: serde_json::Value = http
                .get(url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .parse::<serde_json::Value>()
                .unwrap();
            runs.as_array()
                .unwrap()
                .iter()
                .any(|r| r["run_id"] == run_id.as_str() && r["status"] == "succeeded")
        }
    })
    .await;
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"userstream_job_runs_total{job="pull",status="succeeded"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"userstream_job_runs_total{job="pull",status="failed"} 0"#),
        "{metrics}"
    );
    // The job metrics the shipped dashboard and alert rules query are exported.
    let exported = support::metrics::exported(&metrics);
    for name in support::metrics::queried_by_deploy_files() {
        if name.starts_with("userstream_job_") {
            assert!(exported.contains(name.as_str()), "{name} is not exported");
        }
    }

    let missing = http
        .post(format!("{base}/jobs/nope/trigger"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = serde_json::from_str(&missing.text().await.unwrap()).unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no job named \"nope\"")
    );

    support::interrupt(&child);
    assert!(child.wait().unwrap().success());
}

/// The rows of the run history, read straight from its database.
fn history_rows(data: &Path) -> Vec<(String, Option<i64>, String, i64, String)> {
    let Ok(conn) = Connection::open(data.join("meta.db")) else {
        return vec![];
    };
    let Ok(mut stmt) = conn.prepare("SELECT run_id, slot, status, attempt, coalesce(owner, '') FROM job_runs ORDER BY created_at") else { return vec![] };
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_share_the_slots_and_one_resumes_the_run_of_the_other_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("userstream.toml"),
        r#"data_dir = "data"

[ingest]
batch_size = 10
interval = "100ms"

[scheduler]
lease = "1s"
poll_interval = "100ms"

[[jobs]]
name = "tick"
every = "1s"
duration = "700ms"
"#,
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut a = spawn(dir.path(), &["jobs", "schedule"], support::free_port());
    let mut b = spawn(dir.path(), &["jobs", "schedule"], support::free_port());
    let owner_a = format!(":{}:", a.id());
    // Kill a while it holds a running run.
    support::wait_until("a to be running a run", || {
        history_rows(&data)
            .iter()
            .any(|(_, _, status, _, owner)| status == "running" && owner.contains(&owner_a))
    })
    .await;
    a.kill().unwrap();
    a.wait().unwrap();
    let orphan = history_rows(&data)
        .into_iter()
        .find(|(_, _, status, _, owner)| status == "running" && owner.contains(&owner_a))
        .expect("a's run is still marked running when it dies")
        .0;
    // b takes the run over once a's lease lapses, and finishes it as a second attempt.
    support::wait_until("b to finish a's run", || {
        history_rows(&data)
            .iter()
            .any(|(id, _, status, attempt, owner)| {
                *id == orphan && status == "succeeded" && *attempt == 2 && !owner.contains(&owner_a)
            })
    })
    .await;
    let before = history_rows(&data).len();
    support::wait_until("b to go on with the schedule", || {
        history_rows(&data)
            .iter()
            .filter(|r| r.2 == "succeeded")
            .count()
            >= 4
            && history_rows(&data).len() > before + 2
    })
    .await;
    support::interrupt(&b);
    assert!(b.wait().unwrap().success());

    let rows = history_rows(&data);
    let mut slots: Vec<i64> = rows.iter().filter_map(|r| r.1).collect();
    slots.sort_unstable();
    let distinct = {
        let mut d = slots.clone();
        d.dedup();
        d
    };
    assert_eq!(slots, distinct, "a slot was recorded twice");
    // Every second from the first slot to the last is recorded: no slot lost with a.
    let (first, last) = (slots[0], *slots.last().unwrap());
    assert_eq!(
        slots.len() as i64,
        (last - first) / 1_000_000 + 1,
        "{rows:#?}"
    );
    for (id, _, status, _, _) in &rows {
        assert!(
            ["succeeded", "skipped", "queued"].contains(&status.as_str()),
            "run {id} ended {status}: {rows:#?}"
        );
    }
    // Every record in the log was fetched by a recorded run.
    let ids: std::collections::BTreeSet<_> = rows.iter().map(|r| r.0.clone()).collect();
    let conn = Connection::open(data.join("log.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT DISTINCT run_id FROM raw_records")
        .unwrap();
    let logged: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!logged.is_empty());
    for id in logged {
        assert!(ids.contains(&id), "log records from unrecorded run {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_triggered_run_cleanly_and_records_it_failed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("userstream.toml"),
        r#"data_dir = "data"

[ingest]
batch_size = 10
interval = "50ms"

[[jobs]]
name = "long"
every = "1h"
duration = "10m"
"#,
    )
    .unwrap();
    let child = support::userstream_bin()
        .current_dir(dir.path())
        .env_remove("USERSTREAM_CONFIG")
        .args(["-q", "jobs", "trigger", "long"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = dir.path().join("data/log.db");
    support::wait_until("a few pages", || support::count(&log, "raw_records") >= 30).await;
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let run = summary(&out);
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"], "stopped by a signal (SIGTERM or Ctrl-C)");
    // Stopped between pages: every page fetched was appended and counted, none half-written.
    assert_eq!(
        run["users_published"].as_u64(),
        Some(support::count(&log, "raw_records"))
    );
    let history = runs(dir.path());
    assert_eq!(history[0]["status"], "failed");
}
