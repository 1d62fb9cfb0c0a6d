//! A randomuser-compatible server that spells its JSON the way a hostile (or merely unusual)
//! encoder may: escaped keys, duplicate keys, other casings, a `login` that is not an object. Every
//! credential must still be kept out of the data directory, and every record must end stored or
//! dead-lettered with its reason.

mod support;

use support::all_bytes;
use support::scripted_server::{Reply, ScriptedServer};
use tokio_util::sync::CancellationToken;
use userstream::config::{Config, SourceKind};
use userstream::pipeline::run_pipeline;
use userstream::sink::{SqliteStore, UserQuery};

/// How one record of the page is re-spelled, and whether it must then be dead-lettered (with a
/// reason containing the given text).
const SPELLINGS: [(&str, Option<&str>); 8] = [
    ("as sent", None),
    ("escaped password key", None),
    ("escaped login key", None),
    ("escaped unrelated key", None),
    ("every credential key in upper case", None),
    ("duplicate login", Some("duplicate field `login`")),
    ("login as a string", Some("login is not an object")),
    ("login as an array", Some("login is not an object")),
];

fn respell(record: &serde_json::Value, how: &str) -> String {
    let text = record.to_string();
    let login = record["login"].to_string();
    match how {
        "as sent" => text,
        "escaped password key" => text.replace("\"password\"", r#""p\u0061ssword""#),
        "escaped login key" => text.replace("\"login\"", r#""l\u006fgin""#),
        "escaped unrelated key" => text.replacen('{', r#"{"n\u006fte":"hi","#, 1),
        "every credential key in upper case" => ["password", "salt", "md5", "sha1", "sha256"]
            .iter()
            .fold(text, |t, k| {
                t.replace(&format!("\"{k}\""), &format!("\"{}\"", k.to_uppercase()))
            }),
        "duplicate login" => text.replacen('{', &format!(r#"{{"login":{login},"#), 1),
        "login as a string" => text.replace(&login, &serde_json::to_string(&login).unwrap()),
        "login as an array" => text.replace(&login, &format!("[{login}]")),
        other => unreachable!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_key_lets_a_credential_through() {
    let per_spelling = 10;
    let users = SPELLINGS.len() * per_spelling;
    let mut page = Vec::new();
    userstream::source::generator::write_page(
        &mut page,
        "hostile",
        1,
        users as u32,
        &Default::default(),
    )
    .unwrap();
    let page: serde_json::Value = serde_json::from_slice(&page).unwrap();
    let originals = page["results"].as_array().unwrap();
    let mut secrets = Vec::new();
    let mut records = Vec::new();
    for (i, user) in originals.iter().enumerate() {
        let login = &user["login"];
        for field in ["password", "salt", "md5", "sha1", "sha256"] {
            secrets.push(login[field].as_str().unwrap().to_owned());
        }
        records.push(respell(user, SPELLINGS[i % SPELLINGS.len()].0));
    }
    let body = format!(
        r#"{{"results":[{}],"info":{{"seed":"hostile","results":{users},"page":1,"version":"1.4"}}}}"#,
        records.join(",")
    );
    let server = ScriptedServer::start(vec![Reply::ok(body)]).await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.ingest.source = SourceKind::Randomuser;
    config.randomuser.url = server.url.clone();
    config.randomuser.users_per_window = Some(0);
    config.ingest.batch_size = users as u32;
    config.ingest.seed = Some("hostile".into());
    config.ingest.max_users = Some(users as u64);
    config.validate().unwrap();
    let summary = run_pipeline(&config, CancellationToken::new(), false)
        .await
        .unwrap();

    let rejected: usize = SPELLINGS.iter().filter(|(_, why)| why.is_some()).count() * per_spelling;
    assert_eq!(summary.process.records, users as u64);
    assert_eq!(summary.process.dead_letters, rejected as u64);
    assert_eq!(summary.process.rows, (users - rejected) as u64);

    let store = SqliteStore::open(&config.store_path()).unwrap();
    let letters = store.dead_letters(users).await.unwrap();
    for (how, why) in SPELLINGS {
        let Some(why) = why else { continue };
        let matching = letters.iter().filter(|l| l.reason.contains(why)).count();
        let spellings = SPELLINGS.iter().filter(|(_, w)| *w == Some(why)).count();
        assert_eq!(matching, spellings * per_spelling, "{how}: {letters:?}");
    }
    let bytes = all_bytes(dir.path());
    for secret in &secrets {
        assert!(
            !bytes.contains(secret.as_str()),
            "{secret} reached the data dir"
        );
    }
}
