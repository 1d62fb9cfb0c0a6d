//! Bad configuration must fail loudly, naming the key.

use super::*;

fn load_toml(text: &str) -> anyhow::Result<Config> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(Some(&path))
}

#[test]
fn defaults_are_valid_and_offline() {
    let config = Config::default();
    config.validate().unwrap();
    assert_eq!(config.ingest.source, SourceKind::Generator);
}

#[test]
fn file_values_override_defaults() {
    let config =
        load_toml("[ingest]\nbatch_size = 250\ninterval = \"250ms\"\nnat = [\"GB\"]\n").unwrap();
    assert_eq!(config.ingest.batch_size, 250);
    assert_eq!(config.ingest.interval, Duration::from_millis(250));
    assert_eq!(config.ingest.nat, ["GB"]);
}

#[test]
fn unknown_keys_and_wrong_types_name_the_key() {
    let err = load_toml("[ingest]\nbatchsize = 5\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("batchsize") && err.contains("ingest"), "{err}");
    let err = load_toml("[ingest]\nbatch_size = \"many\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("ingest.batch_size"), "{err}");
    let err = load_toml("[ingest]\ninterval = \"soon\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("ingest.interval"), "{err}");
    let err = load_toml("[ingest\n").unwrap_err().to_string();
    assert!(err.contains("invalid configuration"), "{err}");
}

#[test]
fn missing_file_is_named() {
    let err = Config::load(Some(Path::new("/nonexistent/u.toml")))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "config file /nonexistent/u.toml does not exist");
}

#[test]
fn out_of_range_values_are_rejected() {
    let mut config = Config::default();
    config.ingest.batch_size = 5001;
    assert!(
        config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("ingest.batch_size = 5001")
    );
    let mut config = Config::default();
    config.ingest.nat = vec!["ZZ".into()];
    assert!(format!("{:#}", config.validate().unwrap_err()).contains("unknown nationality \"ZZ\""));
    let mut config = Config::default();
    config.ingest.rate = Some(-1.0);
    assert!(config.validate().is_err());
}

#[test]
fn the_public_api_limit_cannot_be_configured_away() {
    let mut config = Config::default();
    config.ingest.source = SourceKind::Randomuser;
    config.validate().unwrap();
    config.randomuser.users_per_window = Some(50_000);
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("published limit"), "{err}");
    // A local server may be hammered at will.
    config.randomuser.url = "http://127.0.0.1:8000/api/".into();
    config.randomuser.users_per_window = Some(0);
    config.validate().unwrap();
    // Not even by naming the public host somewhere other than the host.
    config.randomuser.url = "http://127.0.0.1:8000/api/?randomuser.me".into();
    config.randomuser.users_per_window = None;
    config.validate().unwrap();
    config.randomuser.url = "https://randomuser.me./api/".into();
    config.randomuser.users_per_window = Some(0);
    assert!(config.validate().is_err());
}

#[test]
fn rates_and_urls_that_cannot_work_are_config_errors() {
    let mut config = Config::default();
    config.ingest.rate = Some(1e-300);
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("ingest.rate = 1e-300 is too low"), "{err}");
    config.ingest.rate = Some(0.5);
    config.validate().unwrap();
    config.ingest.source = SourceKind::Randomuser;
    config.randomuser.url = "ftp://randomuser.me/api/".into();
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("is not an http:// or https:// URL"), "{err}");
}

#[test]
fn kafka_properties_reach_only_the_clients_they_are_for() {
    let config = load_toml(
        "[kafka]\nbrokers = \"k:9092\"\n[kafka.properties]\n\"security.protocol\" = \"SSL\"\n\
         [kafka.consumer_properties]\n\"session.timeout.ms\" = \"6000\"\n\
         [kafka.producer_properties]\n\"linger.ms\" = \"20\"\n",
    )
    .unwrap();
    let consumer = config.kafka.consumer_config(&[]);
    let producer = config.kafka.producer_config(&[("linger.ms", "5")]);
    assert_eq!(consumer.get("security.protocol"), Some("SSL"));
    assert_eq!(producer.get("security.protocol"), Some("SSL"));
    assert_eq!(consumer.get("session.timeout.ms"), Some("6000"));
    assert_eq!(producer.get("session.timeout.ms"), None);
    assert_eq!(
        producer.get("linger.ms"),
        Some("20"),
        "the user's value wins"
    );
    assert_eq!(consumer.get("linger.ms"), None);
}

#[test]
fn the_registry_is_embedded_unless_a_url_is_given() {
    let embedded = load_toml("[registry]\nlisten = \"127.0.0.1:18081\"\n").unwrap();
    assert_eq!(embedded.kafka.registry_url, "http://127.0.0.1:18081");
    assert!(embedded.kafka.serve_registry);
    let external = load_toml("[registry]\nurl = \"http://karapace:8081\"\n").unwrap();
    assert_eq!(external.kafka.registry_url, "http://karapace:8081");
    assert!(!external.kafka.serve_registry);
    let err = load_toml("[kafka]\nregistry_url = \"http://x\"\n").unwrap_err();
    assert!(format!("{err:#}").contains("registry_url"), "{err:#}");
    let mut bad =
        load_toml("[kafka]\nbrokers = \"k:9092\"\n[registry]\nlisten = \"nowhere\"\n").unwrap();
    assert!(format!("{:#}", bad.validate().unwrap_err()).contains("registry.listen"));
    bad.registry.url = Some("not a url".into());
    assert!(format!("{:#}", bad.validate().unwrap_err()).contains("registry.url"));
}

#[test]
fn the_log_section_is_read_under_its_old_name_too() {
    let url = "postgres://u@db/log";
    let config = load_toml(&format!("[log]\npostgres = \"{url}\"\n")).unwrap();
    assert_eq!(config.log.postgres.as_deref(), Some(url));
    let old = load_toml(&format!("[backup]\npostgres = \"{url}\"\n")).unwrap();
    assert_eq!(old.log.postgres.as_deref(), Some(url));
    assert!(old.backup.is_none());
    let both = load_toml(&format!(
        "[log]\npostgres = \"{url}\"\n[backup]\npostgres = \"{url}\"\n"
    ));
    assert!(
        both.unwrap_err()
            .to_string()
            .contains("both [log] and [backup]")
    );
}

#[test]
fn jobs_are_read_and_each_mistake_is_named() {
    let config = load_toml(
        "[[jobs]]\nname = \"nightly\"\ncron = \"30 2 * * *\"\ntimezone = \"Europe/Berlin\"\nusers = 5000\novershoot = 1\n",
    );
    let err = config.unwrap_err().to_string();
    assert!(
        err.contains("overshoot"),
        "unknown keys in a job are refused: {err}"
    );
    let config = load_toml(
        "[[jobs]]\nname = \"nightly\"\ncron = \"30 2 * * *\"\ntimezone = \"Europe/Berlin\"\nusers = 5000\ncatch_up = \"all\"\noverlap = \"queue\"\n",
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.jobs[0].catch_up,
        crate::scheduler::config::CatchUpPolicy::All
    );

    let invalid = |job: &str| {
        let config = load_toml(&format!("[[jobs]]\nname = \"j\"\n{job}")).unwrap();
        config.validate().unwrap_err().to_string()
    };
    let err = invalid("cron = \"99 * * * *\"\nusers = 1\n");
    assert!(
        err.starts_with("jobs.j: cron \"99 * * * *\" is not a cron expression"),
        "{err}"
    );
    let err = invalid("cron = \"* * * * *\"\ntimezone = \"Berlin\"\nusers = 1\n");
    assert!(
        err.contains("time zone \"Berlin\" is not an IANA time zone name"),
        "{err}"
    );
    let err = invalid("cron = \"* * * * *\"\nevery = \"1h\"\nusers = 1\n");
    assert!(err.contains("cron and every are both set"), "{err}");
    let err = invalid("every = \"1h\"\n");
    assert!(
        err.contains("set users (users per run) or duration"),
        "{err}"
    );
    let err = invalid("every = \"1h\"\nusers = 1\noverlap = \"queue\"\nmax_queued = 0\n");
    assert!(
        err.contains("jobs.j.max_queued = 0 would queue nothing"),
        "{err}"
    );
    let err = invalid("every = \"1h\"\nusers = 0\n");
    assert!(err.contains("jobs.j.users = 0"), "{err}");
    let err = invalid("every = \"10ms\"\nusers = 1\n");
    assert!(err.contains("shorter than the shortest interval"), "{err}");
    let err = load_toml("[[jobs]]\nname = \"j\"\nevery = \"1h\"\nusers = 1\ncatch_up = \"some\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("jobs") && err.contains("some"), "{err}");
    let err = load_toml(
        "[[jobs]]\nname = \"j\"\nevery = \"1h\"\nusers = 1\n[[jobs]]\nname = \"j\"\nevery = \"2h\"\nusers = 1\n",
    )
    .unwrap()
    .validate()
    .unwrap_err()
    .to_string();
    assert!(err.contains("two jobs are named \"j\""), "{err}");
    let err = invalid("every = \"1h\"\nusers = 1\n[scheduler]\nlease = \"10ms\"\n");
    assert!(err.contains("scheduler.lease must be at least 1s"), "{err}");
}

#[test]
fn a_job_that_would_always_time_out_or_ignore_its_zone_is_refused() {
    let invalid = |job: &str| {
        load_toml(&format!("[[jobs]]\nname = \"j\"\n{job}"))
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string()
    };
    let err = invalid("every = \"1h\"\nduration = \"2h\"\ntimeout = \"1h\"\n");
    assert!(
        err.contains("jobs.j.duration = 2h is not shorter than its timeout (1h)"),
        "{err}"
    );
    let err = invalid("every = \"1d\"\ntimezone = \"Europe/Berlin\"\nusers = 1\n");
    assert!(err.contains("timezone applies to cron only"), "{err}");
}
