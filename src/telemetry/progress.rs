//! Live progress of a run: a bar on a terminal, a line every 10 s in a log.

use super::tally::{IngestTally, ProcessTally};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What has been processed so far, in every mode.
#[derive(Debug, Clone, Copy, Default)]
pub struct Processed {
    pub records: u64,
    pub rows: u64,
    pub dead_letters: u64,
}

/// Whatever counts processed records: the embedded processor, or a run's Kafka consumers
/// together, so that progress reads the same in both modes.
pub trait ProcessedCounts: Send + Sync + 'static {
    fn processed(&self) -> Processed;
}

impl ProcessedCounts for ProcessTally {
    fn processed(&self) -> Processed {
        Processed {
            records: self.records.load(Relaxed),
            rows: self.rows.load(Relaxed),
            dead_letters: self.dead_letters.load(Relaxed),
        }
    }
}

/// A run's Kafka consumers together.
impl ProcessedCounts for Vec<Arc<ProcessTally>> {
    fn processed(&self) -> Processed {
        self.iter()
            .map(|tally| tally.processed())
            .fold(Processed::default(), |sum, p| Processed {
                records: sum.records + p.records,
                rows: sum.rows + p.rows,
                dead_letters: sum.dead_letters + p.dead_letters,
            })
    }
}

/// Reports pipeline progress until `done` fires: a bar on a terminal, a log line every 10 s
/// otherwise (so service logs show life without drowning in lines).
pub fn spawn_progress(
    ingest: Arc<IngestTally>,
    process: Arc<dyn ProcessedCounts>,
    total: Option<u64>,
    done: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let terminal = std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = match total {
                Some(n) => ProgressBar::new(n).with_style(
                    ProgressStyle::with_template(
                        "{elapsed_precise} [{bar:30}] {pos}/{len} users processed ({per_sec}) {msg}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                        .expect("valid template"),
                ),
            };
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let period = if terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(10)
        };
        let mut ticker = tokio::time::interval(period);
        ticker.tick().await;
        loop {
            let finished = tokio::select! {
                () = done.cancelled() => true,
                _ = ticker.tick() => false,
            };
            let ingested = ingest.records();
            let Processed {
                records: processed,
                rows,
                dead_letters,
            } = process.processed();
            let message = format!(
                "ingested {ingested}, stored {rows}, dead-lettered {dead_letters}, lag {}",
                ingested.saturating_sub(processed)
            );
            match &bar {
                Some(bar) => {
                    bar.set_position(processed);
                    bar.set_message(message);
                }
                None if !finished => tracing::info!("{message}"),
                None => {}
            }
            if finished {
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                return;
            }
        }
    })
}
