//! The binary as a user meets it: help with examples, clear errors for bad input, and every
//! command working on a small run.

mod support;

use std::path::Path;
use std::process::Output;

fn userstream(dir: &Path, args: &[&str]) -> Output {
    support::userstream_bin()
        .current_dir(dir)
        .env_remove("USERSTREAM_CONFIG")
        .args(["-q", "--data-dir", "data"])
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn fails_with(out: &Output, code: i32, message: &str) {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(out));
    assert!(
        stderr(out).contains(message),
        "expected {message:?} in: {}",
        stderr(out)
    );
}

#[test]
fn every_command_has_help_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    for command in [
        "run",
        "ingest",
        "process",
        "query",
        "dlq",
        "bench",
        "jobs",
        "serve-api",
    ] {
        let out = userstream(dir.path(), &[command, "--help"]);
        assert!(out.status.success());
        assert!(
            stdout(&out).contains("Example"),
            "{command} --help has no example"
        );
    }
}

#[test]
fn bad_command_line_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fails_with(
        &userstream(d, &["run", "--batch-size", "lots"]),
        2,
        "invalid value 'lots' for '--batch-size",
    );
    fails_with(
        &userstream(d, &["run", "--interval", "soon"]),
        2,
        "invalid value 'soon' for '--interval",
    );
    fails_with(
        &userstream(d, &["run", "--batch-size", "9000"]),
        1,
        "ingest.batch_size = 9000 is out of range",
    );
    fails_with(
        &userstream(d, &["run", "--nat", "GB,XX"]),
        1,
        "unknown nationality \"XX\"",
    );
    fails_with(
        &userstream(d, &["run", "--url", "not a url"]),
        1,
        "randomuser.url = \"not a url\" is not a URL",
    );
    fails_with(&userstream(d, &["query", "get", "bob"]), 2, "not a user id");
    fails_with(
        &userstream(d, &["query", "count"]),
        1,
        "no store at data/store.db",
    );
    fails_with(
        &userstream(d, &["frobnicate"]),
        2,
        "unrecognized subcommand 'frobnicate'",
    );
}

#[test]
fn bad_configuration_is_named_with_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("userstream.toml"), "[ingest]\nbatch_sise = 10\n").unwrap();
    fails_with(
        &userstream(d, &["run"]),
        1,
        "unknown field: found `batch_sise`",
    );
    fails_with(
        &userstream(d, &["--config", "missing.toml", "run"]),
        1,
        "config file missing.toml does not exist",
    );
    std::fs::remove_file(d.join("userstream.toml")).unwrap();
    let out = support::userstream_bin()
        .current_dir(d)
        .env("USERSTREAM_INGEST__BATCH_SIZE", "lots")
        .args(["run"])
        .output()
        .unwrap();
    fails_with(&out, 1, "ingest.batch_size");
    assert!(stderr(&out).contains("USERSTREAM_"), "{}", stderr(&out));
}

#[test]
fn ingest_process_query_and_dlq_work_together() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = userstream(
        d,
        &[
            "ingest",
            "--once",
            "--batch-size",
            "150",
            "--seed",
            "cli",
            "--nat",
            "gb,fr",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(support::count(&d.join("data/log.db"), "raw_records"), 150);
    assert!(userstream(d, &["process"]).status.success());
    assert_eq!(stdout(&userstream(d, &["query", "count"])).trim(), "150");

    let latest: serde_json::Value = serde_json::from_str(&stdout(&userstream(
        d,
        &["query", "latest", "3", "--format", "json"],
    )))
    .unwrap();
    let latest = latest.as_array().unwrap();
    assert_eq!(latest.len(), 3);
    let id = latest[0]["id"].as_str().unwrap();
    let one = stdout(&userstream(d, &["query", "get", id]));
    assert!(one.contains(id) && one.contains("post_code"), "{one}");

    let found: serde_json::Value = serde_json::from_str(&stdout(&userstream(
        d,
        &[
            "query",
            "find",
            "--country",
            "united kingdom",
            "--gender",
            "female",
            "--limit",
            "500",
            "-f",
            "json",
        ],
    )))
    .unwrap();
    let found = found.as_array().unwrap();
    assert!(!found.is_empty());
    for user in found {
        assert!(
            user["address"]
                .as_str()
                .unwrap()
                .ends_with(", United Kingdom")
        );
        assert_eq!(user["gender"], "female");
    }
    let table = stdout(&userstream(d, &["query", "latest", "2"]));
    assert!(
        table.starts_with("id") && table.contains("(2 rows)"),
        "{table}"
    );
    assert_eq!(stdout(&userstream(d, &["dlq", "count"])).trim(), "0");
    assert!(stdout(&userstream(d, &["dlq", "list"])).contains("(0 rows)"));
}

/// Two `run`s on one data directory would read the same paging cursor and fetch every page
/// twice: the second is refused, naming the first, and once the first is gone a run proceeds.
#[test]
fn a_second_ingest_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = support::userstream_bin()
        .current_dir(dir.path())
        .env_remove("USERSTREAM_CONFIG")
        .args(["-q", "--data-dir", "data", "run", "--rate", "50"])
        .args(["--batch-size", "10"])
        .spawn()
        .unwrap();
    let log = dir.path().join("data/log.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while support::count(&log, "raw_records") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "first run never ingested"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = userstream(dir.path(), &["run", "--max-users", "10"]);
    let ingest = userstream(dir.path(), &["ingest", "--once"]);
    first.kill().unwrap();
    first.wait().unwrap();
    let holder = format!("(pid {}) is already ingesting into data", first.id());
    fails_with(&second, 1, &holder);
    fails_with(&ingest, 1, &holder);
    let after = userstream(dir.path(), &["ingest", "--once"]);
    assert!(after.status.success(), "{}", stderr(&after));
}

/// randomuser.me seeds each page on its own, so pages of another size would repeat users of a
/// seed: a new `--batch-size` for a seed already fetched is refused (it used to restart at page 1
/// and fetch every user again), and the seed's own size continues it.
#[test]
fn a_new_batch_size_for_a_fetched_seed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ingest = |size: &str, max: &str| {
        userstream(
            d,
            &[
                "ingest",
                "--seed",
                "sizes",
                "--batch-size",
                size,
                "--max-users",
                max,
            ],
        )
    };
    assert!(ingest("100", "300").status.success());
    fails_with(
        &ingest("150", "600"),
        1,
        "seed \"sizes\" has 3 pages fetched with batch size 100",
    );
    assert_eq!(
        support::log_uuids(&d.join("data")).0,
        300,
        "nothing fetched"
    );
    let out = ingest("100", "600");
    assert!(out.status.success(), "{}", stderr(&out));
    let (records, ids) = support::log_uuids(&d.join("data"));
    assert_eq!((records, ids.len()), (600, 600), "no user fetched twice");
}

/// `dlq redrive` after a fix: a dead letter whose record now passes is stored and leaves the
/// queue; one that still fails stays, with its current reason; `--reason` selects, `--dry-run`
/// writes nothing, and a second re-drive changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_redrive_stores_what_now_passes_and_keeps_the_rest() {
    use userstream::log::{AppendBatch, RawLog, SqliteLog};
    use userstream::sink::{Commit, DeadLetter, Sink, SqliteStore};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut records = support::redacted_users("redrive", 2);
    records.push(r#"{"login":{"uuid":"not-a-uuid"}}"#.to_owned());
    let log = SqliteLog::open(&data.join("log.db")).unwrap();
    log.append(AppendBatch {
        run_id: "run",
        source: "test",
        fetched_at_micros: 1_700_000_000_000_000,
        records,
        cursor: None,
    })
    .await
    .unwrap();
    assert!(userstream(d, &["process"]).status.success());
    assert_eq!(stdout(&userstream(d, &["dlq", "count"])).trim(), "1");
    // A record with no usable id is accounted for by its dead letter.
    let audit = userstream(d, &["audit", "-f", "json"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
    let report: serde_json::Value = serde_json::from_str(&stdout(&audit)).unwrap();
    assert_eq!(
        (&report["stored_users"], &report["dead_letters"]),
        (&2.into(), &1.into())
    );
    // As a since-fixed bug would have left it: user 2, dead-lettered for a wrong reason.
    let store = SqliteStore::open(&data.join("store.db")).unwrap();
    let second = support::redacted_users("redrive", 2).pop().unwrap();
    let id = serde_json::from_str::<serde_json::Value>(&second).unwrap()["login"]["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    rusqlite::Connection::open(data.join("store.db"))
        .unwrap()
        .execute(
            "DELETE FROM created_users WHERE id = ?1",
            [uuid.as_bytes().as_slice()],
        )
        .unwrap();
    store
        .commit(Commit {
            rows: Default::default(),
            dead_letters: &[DeadLetter {
                log_seq: 2,
                reason: "old bug: rejected every gb postcode".into(),
                record: second,
            }],
            log_id: log.log_id(),
            position: None,
        })
        .await
        .unwrap();
    assert_eq!(stdout(&userstream(d, &["query", "count"])).trim(), "1");
    // A logged user that is dead-lettered rather than stored still balances.
    assert!(userstream(d, &["audit"]).status.success());

    let dry = userstream(d, &["dlq", "redrive", "--dry-run", "-f", "json"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let outcomes: serde_json::Value = serde_json::from_str(&stdout(&dry)).unwrap();
    let by_seq = |seq: u64| {
        outcomes
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["log_seq"] == seq)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_seq(2)["outcome"], "stored");
    assert_eq!(by_seq(3)["outcome"], "dead");
    assert!(by_seq(3)["reason"].as_str().unwrap().contains("login.uuid"));
    assert_eq!(stdout(&userstream(d, &["dlq", "count"])).trim(), "2");
    assert_eq!(stdout(&userstream(d, &["query", "count"])).trim(), "1");

    let only_bug = userstream(d, &["dlq", "redrive", "--reason", "old bug"]);
    assert!(only_bug.status.success(), "{}", stderr(&only_bug));
    assert!(
        stderr(&only_bug).contains("1 dead letters re-driven: 1 stored, 0 still dead-lettered"),
        "{}",
        stderr(&only_bug)
    );
    assert_eq!(stdout(&userstream(d, &["query", "count"])).trim(), "2");
    assert!(stdout(&userstream(d, &["query", "get", &id])).contains(&id));
    assert_eq!(stdout(&userstream(d, &["dlq", "count"])).trim(), "1");

    for _ in 0..2 {
        let again = userstream(d, &["dlq", "redrive"]);
        assert!(
            stderr(&again).contains("1 dead letters re-driven: 0 stored, 1 still dead-lettered"),
            "{}",
            stderr(&again)
        );
        assert_eq!(stdout(&userstream(d, &["dlq", "count"])).trim(), "1");
        assert_eq!(stdout(&userstream(d, &["query", "count"])).trim(), "2");
    }

    // A letter kept with a reason that no longer holds, and that still fails: re-driven, it is
    // dead-lettered again with the reason it fails for now.
    rusqlite::Connection::open(data.join("store.db"))
        .unwrap()
        .execute(
            "UPDATE dead_letters SET reason = 'stale reason' WHERE log_seq = 3",
            [],
        )
        .unwrap();
    let stale = userstream(d, &["dlq", "redrive", "-f", "json"]);
    assert!(stale.status.success(), "{}", stderr(&stale));
    let outcomes: serde_json::Value = serde_json::from_str(&stdout(&stale)).unwrap();
    assert_eq!(outcomes[0]["outcome"], "dead", "{outcomes}");
    let letters: serde_json::Value =
        serde_json::from_str(&stdout(&userstream(d, &["dlq", "list", "-f", "json"]))).unwrap();
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(reason.contains("login.uuid"), "{reason}");
    assert!(!reason.contains("stale"), "{reason}");
}

/// `audit` balances after a clean run, and names what breaks the balance: a deleted row
/// (missing) and a row that was never logged (extra).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_balances_and_names_what_is_missing_or_extra() {
    use userstream::sink::{Commit, Sink, SqliteStore};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = userstream(
        d,
        &[
            "run",
            "--seed",
            "audit",
            "--batch-size",
            "100",
            "--max-users",
            "500",
        ],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let clean = userstream(d, &["audit"]);
    assert!(clean.status.success(), "{}", stderr(&clean));
    assert!(stdout(&clean).contains("balanced"), "{}", stdout(&clean));

    let latest: serde_json::Value = serde_json::from_str(&stdout(&userstream(
        d,
        &["query", "latest", "1", "-f", "json"],
    )))
    .unwrap();
    let deleted = latest[0]["id"].as_str().unwrap().to_owned();
    let uuid = uuid::Uuid::parse_str(&deleted).unwrap();
    rusqlite::Connection::open(d.join("data/store.db"))
        .unwrap()
        .execute(
            "DELETE FROM created_users WHERE id = ?1",
            [uuid.as_bytes().as_slice()],
        )
        .unwrap();
    let foreign = support::redacted_users("never-logged", 1).pop().unwrap();
    let row = userstream::process::transform(&foreign, chrono::Utc::now()).unwrap();
    SqliteStore::open(&d.join("data/store.db"))
        .unwrap()
        .commit(Commit {
            rows: std::slice::from_ref(&row).into(),
            dead_letters: &[],
            log_id: "elsewhere",
            position: None,
        })
        .await
        .unwrap();

    let broken = userstream(d, &["audit"]);
    fails_with(
        &broken,
        1,
        "does not balance: 1 missing, 0 unaccounted, 1 extra",
    );
    let out = stdout(&broken);
    assert!(out.contains(&format!("missing: user {deleted}")), "{out}");
    assert!(out.contains(&format!("extra: user {}", row.id)), "{out}");
}

/// Log lines carry no colour escapes into a pipe, and `--log-format json` writes one JSON object
/// per line.
#[test]
fn log_lines_are_plain_in_a_pipe_and_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    // The format through its environment variable, which the configuration must not mistake
    // for one of its own keys.
    let ingest = |format: &str| {
        support::userstream_bin()
            .current_dir(dir.path())
            .env_remove("USERSTREAM_CONFIG")
            .env_remove("USERSTREAM_LOG")
            .env_remove("RUST_LOG")
            .env("USERSTREAM_LOG_FORMAT", format)
            .args(["--data-dir", "data"])
            .args(["ingest", "--once", "--batch-size", "10"])
            .output()
            .unwrap()
    };
    let text = ingest("text");
    assert!(text.status.success(), "{}", stderr(&text));
    assert!(stderr(&text).contains("ingested into"), "{}", stderr(&text));
    assert!(!stderr(&text).contains('\u{1b}'), "{:?}", stderr(&text));

    let json = ingest("json");
    assert!(json.status.success(), "{}", stderr(&json));
    let lines: Vec<serde_json::Value> = stderr(&json)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("ingested into"))),
        "{lines:?}"
    );
}

/// A randomuser source with a budget charges every request to the log's database, where every
/// process using the log shares it (and a restart finds it): `ingest --once` twice, through
/// `serve-api`, leaves two charges in `log.db`.
#[test]
fn the_api_budget_is_charged_in_the_log_every_process_shares() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = support::free_port();
    let mut api = support::userstream_bin()
        .args(["-q", "serve-api", "--addr", &format!("127.0.0.1:{port}")])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "serve-api never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let url = format!("http://127.0.0.1:{port}/api/");
    for _ in 0..2 {
        let out = support::userstream_bin()
            .current_dir(d)
            .env("USERSTREAM_RANDOMUSER__USERS_PER_WINDOW", "1000")
            .args(["-q", "--data-dir", "data", "ingest", "--once"])
            .args(["--url", &url, "--batch-size", "100"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    api.kill().unwrap();
    api.wait().unwrap();
    let charged: (i64, i64) = rusqlite::Connection::open(d.join("data/log.db"))
        .unwrap()
        .query_row("SELECT count(*), sum(users) FROM api_budget", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(charged, (2, 200));
}
