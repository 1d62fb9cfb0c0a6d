//! `userstream audit`: see [`crate::audit`].

use super::output::print_table;
use super::query::open_store;
use crate::audit::{AuditReport, audit};
use crate::bus::kafka::relay::checkpoint_name;
use crate::cli::{AuditArgs, OutputFormat};
use crate::config::Config;
use anyhow::bail;

pub fn execute(config: &Config, args: AuditArgs) -> anyhow::Result<()> {
    if config.log.postgres.is_none() && !config.log_path().is_file() {
        bail!(
            "no raw log at {}: audit compares the log with the store; pass the --data-dir of the run",
            config.log_path().display()
        );
    }
    let report = super::runtime()?.block_on(async {
        let store = open_store(config).await?;
        let log = crate::pipeline::open_log(config).await?;
        let relayed = match &config.kafka.brokers {
            Some(_) => {
                let topic = &config.kafka.topic;
                let checkpoint = log.checkpoint(&checkpoint_name(topic)).await?;
                let end = crate::bus::kafka::topics::end_offsets(&config.kafka, topic)?
                    + crate::bus::kafka::topics::end_offsets(
                        &config.kafka,
                        &config.kafka.dlq_topic,
                    )?;
                Some((topic.clone(), checkpoint, end))
            }
            None => None,
        };
        audit(log.as_ref(), store.as_ref(), relayed, args.show).await
    })?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Table => print_report(&report),
    }
    if !report.balanced() {
        bail!(
            "the pipeline does not balance: {} missing, {} unaccounted, {} extra{}",
            report.missing_count,
            report.unaccounted_count,
            report.extra_count,
            report
                .topic
                .as_ref()
                .filter(|t| t.end_offsets < t.expected)
                .map(|t| format!(
                    ", {} fewer messages on {} than published",
                    t.expected - t.end_offsets,
                    t.topic
                ))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn print_report(report: &AuditReport) {
    let mut rows = vec![
        vec!["log records".into(), report.log_records.to_string()],
        vec!["logged users".into(), report.log_users.to_string()],
        vec!["stored users".into(), report.stored_users.to_string()],
        vec![
            "dead letters".into(),
            format!(
                "{} ({} from Kafka)",
                report.dead_letters, report.kafka_dead_letters
            ),
        ],
    ];
    if let Some(topic) = &report.topic {
        rows.push(vec![
            format!("{} (+ dead-letter topic) end offsets", topic.topic),
            format!("{} (relayed: {})", topic.end_offsets, topic.expected),
        ]);
    }
    rows.push(vec!["missing".into(), report.missing_count.to_string()]);
    rows.push(vec![
        "unaccounted".into(),
        report.unaccounted_count.to_string(),
    ]);
    rows.push(vec!["extra".into(), report.extra_count.to_string()]);
    rows.push(vec![
        "balanced".into(),
        if report.balanced() { "yes" } else { "no" }.into(),
    ]);
    print_table(&["check", "value"], &rows);
    for (id, seq) in &report.missing {
        println!("missing: user {id} (log seq {seq}) is neither stored nor dead-lettered");
    }
    for seq in &report.unaccounted_records {
        println!("unaccounted: log seq {seq} has no valid login.uuid and no dead letter");
    }
    for id in &report.extra {
        println!("extra: user {id} is stored but not in the log");
    }
}
