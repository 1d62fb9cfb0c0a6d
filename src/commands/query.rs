//! `userstream query`: count, get, latest, find.

use super::output::print_users;
use crate::cli::{OutputFormat, Query, QueryArgs};
use crate::config::Config;
use crate::sink::{AnyStore, UserFilter};
use anyhow::bail;

/// Opens the configured store for reading; a missing embedded store is an error, not a new
/// empty one.
pub async fn open_store(config: &Config) -> anyhow::Result<AnyStore> {
    let path = config.store_path();
    if config.store.postgres.is_none() && config.store.cassandra.is_none() && !path.is_file() {
        bail!(
            "no store at {}: run `userstream run` (or `ingest` then `process`) first, or pass --data-dir",
            path.display()
        );
    }
    crate::pipeline::open_store(config).await
}

pub fn execute(config: &Config, args: QueryArgs) -> anyhow::Result<()> {
    super::runtime()?.block_on(query(config, args))
}

async fn query(config: &Config, args: QueryArgs) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match args.query {
        Query::Count => {
            let count = store.count().await?;
            match args.format {
                OutputFormat::Json => println!("{}", serde_json::json!({ "count": count })),
                OutputFormat::Table => println!("{count}"),
            }
        }
        Query::Get { id } => match store.get(id).await? {
            Some(row) => match args.format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&row)?),
                OutputFormat::Table => {
                    for (column, value) in crate::model::row::COLUMNS.iter().zip(row.values()) {
                        println!("{column:>15}  {value}");
                    }
                }
            },
            None => bail!("no user with id {id}"),
        },
        Query::Latest { n } => print_users(&store.latest(n).await?, args.format)?,
        Query::Find {
            country,
            gender,
            limit,
        } => {
            let filter = UserFilter {
                country,
                gender,
                limit,
            };
            print_users(&store.filter(&filter).await?, args.format)?;
        }
    }
    Ok(())
}
