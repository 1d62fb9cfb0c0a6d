//! `userstream dlq`: what failed validation and why.

use super::output::print_table;
use super::query::open_store;
use crate::cli::{DlqArgs, DlqCommand, OutputFormat};
use crate::config::Config;
use crate::sink::UserQuery;

pub fn execute(config: &Config, args: DlqArgs) -> anyhow::Result<()> {
    let store = open_store(config)?;
    match args.command {
        DlqCommand::Count => println!("{}", store.dead_letter_count()?),
        DlqCommand::List { limit, format } => {
            let letters = store.dead_letters(limit)?;
            match format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&letters)?),
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = letters
                        .iter()
                        .map(|l| {
                            vec![
                                l.log_seq.to_string(),
                                l.failed_at.clone(),
                                l.reason.clone(),
                                l.record.clone(),
                            ]
                        })
                        .collect();
                    print_table(&["log_seq", "failed_at", "reason", "record"], &rows);
                }
            }
        }
    }
    Ok(())
}
