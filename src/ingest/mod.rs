//! Ingest: source -> credential removal -> raw log, one page at a time ([`Ingestor`]), on a
//! schedule ([`schedule`]).
//!
//! A page's records and the paging cursor that follows it are appended in one transaction, so a
//! crash at any instant leaves either the whole page and the advanced cursor, or neither: the next
//! start refetches exactly the missing page (same seed, same page, same users).

pub mod schedule;
pub mod writer_lock;

pub use schedule::{Schedule, ScheduleSummary, run_schedule};

use crate::log::{AppendBatch, AppendSignal, IngestCursor, Log, LogError};
use crate::model::redact::{Redacted, redact_credentials};
use crate::source::{FetchError, FetchRequest, Source};
use crate::telemetry::IngestTally;
use crate::telemetry::events::{InternalEvent, PageAppended, PageFetched};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The page could not be fetched; nothing was written and the cursor did not move.
    #[error("fetching page {page} of seed {seed:?}: {error}")]
    Fetch {
        page: u64,
        seed: String,
        error: FetchError,
    },
    /// The log could not be written: ingest must stop, since nothing fetched could be kept.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The seed was fetched in pages of another size: continuing it with this one would fetch
    /// users twice.
    #[error(
        "seed {seed:?} has {pages} pages fetched with batch size {old_size}; pages of {new_size} would fetch some of its users again (randomuser.me seeds each page on its own). Use --batch-size {old_size}, or another --seed"
    )]
    PageSizeChange {
        seed: String,
        pages: u64,
        old_size: u32,
        new_size: u32,
    },
}

/// Which pages to fetch.
#[derive(Debug, Clone)]
pub struct PageSettings {
    pub batch_size: u32,
    pub seed: Option<String>,
    pub nat: Vec<String>,
}

/// Fetches pages from a source and appends them to the log.
pub struct Ingestor<S> {
    source: S,
    log: Log,
    source_key: String,
    run_id: String,
    cursor: IngestCursor,
    nat: Vec<String>,
    signal: AppendSignal,
    tally: Arc<IngestTally>,
}

impl<S: Source> Ingestor<S> {
    /// Resumes the source's stored cursor when it matches `settings`, else starts a new one.
    ///
    /// A stored seed cannot be continued with another page size: randomuser.me seeds each page on
    /// its own (page *p* of size *n* is the first *n* users of page *p*'s stream, whatever *n*),
    /// so pages of a new size would hand back users already fetched. A seed given explicitly is
    /// then refused ([`IngestError::PageSizeChange`]); without one, a new seed starts.
    pub async fn new(
        source: S,
        log: Log,
        settings: &PageSettings,
        run_id: String,
        signal: AppendSignal,
    ) -> Result<Self, IngestError> {
        let source_key = source.key();
        let stored = log
            .cursor(&source_key)
            .await?
            .filter(|c| settings.seed.as_ref().is_none_or(|s| *s == c.seed));
        let fresh = || IngestCursor {
            seed: settings
                .seed
                .clone()
                .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>())),
            page_size: settings.batch_size,
            next_page: 1,
        };
        let cursor = match stored {
            None => fresh(),
            Some(c) if c.page_size == settings.batch_size => {
                tracing::info!(seed = %c.seed, page = c.next_page, "resuming ingest cursor");
                c
            }
            Some(c) if settings.seed.is_some() && c.next_page > 1 => {
                return Err(IngestError::PageSizeChange {
                    seed: c.seed,
                    pages: c.next_page - 1,
                    old_size: c.page_size,
                    new_size: settings.batch_size,
                });
            }
            Some(c) => {
                let new = fresh();
                tracing::warn!(
                    old_seed = %c.seed,
                    old_size = c.page_size,
                    seed = %new.seed,
                    "the stored seed was fetched in pages of another size; starting a new seed"
                );
                new
            }
        };
        Ok(Self {
            source,
            log,
            source_key,
            run_id,
            cursor,
            nat: settings.nat.clone(),
            signal,
            tally: Arc::default(),
        })
    }

    /// Counts into `tally` rather than a fresh one: a scheduled run keeps one across its
    /// attempts.
    pub fn with_tally(mut self, tally: Arc<IngestTally>) -> Self {
        self.tally = tally;
        self
    }

    pub fn tally(&self) -> Arc<IngestTally> {
        Arc::clone(&self.tally)
    }

    pub fn cursor(&self) -> &IngestCursor {
        &self.cursor
    }

    /// Fetches the next page and appends it; returns the number of records appended.
    pub async fn ingest_page(&mut self) -> Result<u64, IngestError> {
        match self.fetch_page().await? {
            Some(page) => self.append_page(page).await,
            None => Ok(0),
        }
    }

    /// Fetches the next page (`None`: the API answered with no users, and the same page is asked
    /// for again next time). Cancel-safe: dropping it leaves the cursor where it was.
    pub async fn fetch_page(&mut self) -> Result<Option<FetchedPage>, IngestError> {
        let page = self.cursor.next_page;
        fetch(&mut self.source, &self.cursor, page, &self.nat, &self.tally).await
    }

    /// Strips credentials and appends a fetched page with the cursor after it, in one
    /// transaction; returns the number of records appended. Not to be cancelled: the append
    /// runs to its end on the log's side whatever the caller does, and only this call moves the
    /// cursor in memory and wakes readers, so a caller that stopped waiting would fetch the
    /// page again (the schedule never cancels it; see [`run_schedule`]).
    pub async fn append_page(&mut self, fetched: FetchedPage) -> Result<u64, IngestError> {
        let appended = append(
            &self.log,
            &self.run_id,
            &self.source_key,
            &self.cursor,
            fetched,
        )
        .await?;
        Ok(self.appended(appended))
    }

    /// [`append_page`](Self::append_page), while the page after it is fetched: the log writes
    /// (on its own thread or connection) as the next page is fetched and parsed, rather than
    /// one after the other, which is what a full-speed ingest waited on. The append always runs
    /// to its end; the fetch stops when `cancel` fires (then `None`). A page fetched while the
    /// append failed is dropped, and fetched again from the unmoved cursor.
    pub async fn append_page_fetching_next(
        &mut self,
        fetched: FetchedPage,
        cancel: &CancellationToken,
    ) -> (
        Result<u64, IngestError>,
        Option<Result<Option<FetchedPage>, IngestError>>,
    ) {
        let next_page = self.cursor.next_page + 1;
        let appending = append(
            &self.log,
            &self.run_id,
            &self.source_key,
            &self.cursor,
            fetched,
        );
        let fetching = async {
            tokio::select! {
                biased;
                () = cancel.cancelled() => None,
                next = fetch(&mut self.source, &self.cursor, next_page, &self.nat, &self.tally) => Some(next),
            }
        };
        let (appended, next) = tokio::join!(appending, fetching);
        match appended {
            Ok(appended) => (Ok(self.appended(appended)), next),
            Err(err) => (Err(err), None),
        }
    }

    /// Moves the cursor past an appended page, counts it and wakes the log's readers; returns
    /// the number of records appended.
    fn appended(&mut self, appended: Appended) -> u64 {
        self.cursor = appended.cursor;
        PageAppended {
            count: appended.count,
            last_seq: appended.last_seq,
            tally: &self.tally,
        }
        .emit();
        if let Some(seq) = appended.last_seq {
            self.signal.appended(seq);
        }
        appended.count
    }
}

/// Fetches page `page` of `cursor`'s seed.
async fn fetch<S: Source>(
    source: &mut S,
    cursor: &IngestCursor,
    page: u64,
    nat: &[String],
    tally: &IngestTally,
) -> Result<Option<FetchedPage>, IngestError> {
    let request = FetchRequest {
        results: cursor.page_size,
        seed: &cursor.seed,
        page,
        nat,
    };
    let fetched = source
        .fetch(&request)
        .await
        .map_err(|error| IngestError::Fetch {
            page,
            seed: cursor.seed.clone(),
            error,
        })?;
    let fetched_at_micros = chrono::Utc::now().timestamp_micros();
    PageFetched {
        page,
        count: fetched.records.len(),
        tally,
    }
    .emit();
    if fetched.records.is_empty() {
        // An incident answer: keep the cursor so the same page is asked for again.
        tracing::warn!(page, "API returned no users; will ask again");
        return Ok(None);
    }
    Ok(Some(FetchedPage {
        page: fetched,
        fetched_at_micros,
    }))
}

/// A page written to the log, with the cursor after it.
struct Appended {
    count: u64,
    last_seq: Option<u64>,
    cursor: IngestCursor,
}

/// Strips credentials and appends `fetched`, the page at `cursor`, with the cursor after it.
async fn append(
    log: &Log,
    run_id: &str,
    source_key: &str,
    cursor: &IngestCursor,
    fetched: FetchedPage,
) -> Result<Appended, IngestError> {
    let next = IngestCursor {
        next_page: cursor.next_page + 1,
        ..cursor.clone()
    };
    let count = fetched.page.records.len() as u64;
    let page_number = cursor.next_page;
    let records = fetched
        .page
        .records
        .iter()
        .map(|r| match redact_credentials(r) {
            Redacted::Clean(record) => record,
            Redacted::Withheld { record, reason } => {
                // The reason names keys, never values; the record goes on to be
                // dead-lettered with it.
                tracing::warn!(page = page_number, %reason, "withheld a record");
                record
            }
        })
        .collect();
    let last_seq = log
        .append(AppendBatch {
            run_id,
            source: source_key,
            fetched_at_micros: fetched.fetched_at_micros,
            records,
            cursor: Some((source_key, next.clone())),
        })
        .await?;
    Ok(Appended {
        count,
        last_seq,
        cursor: next,
    })
}

/// A page fetched and not yet appended, with when it was received.
pub struct FetchedPage {
    page: crate::source::Page,
    fetched_at_micros: i64,
}
