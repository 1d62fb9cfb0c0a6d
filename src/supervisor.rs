//! Watching a run's background tasks, so that none can stop unseen.
//!
//! A task that is spawned and only awaited at shutdown can fail (a store write exhausted its
//! retries, a registry lost its port) while the rest of the run goes on: ingest keeps fetching,
//! the relay keeps publishing, and nothing is stored. A [`Supervisor`] owns every task of a run by
//! name, and the run awaits it alongside its own work: the first task to end before it was asked
//! to ends the run with an error naming it. Dropping the supervisor aborts what is left.

use std::collections::HashMap;
use std::future::Future;
use tokio::task::{Id, JoinSet};

/// The named tasks of one run.
#[derive(Default)]
pub struct Supervisor {
    tasks: JoinSet<anyhow::Result<()>>,
    /// By task id, since a panicked task returns no output to name it by.
    names: HashMap<Id, String>,
}

/// How a task ended.
pub enum Ended {
    /// Returned `Ok`.
    Finished(String),
    /// Returned an error, or panicked: the error names the task.
    Failed(anyhow::Error),
}

impl Supervisor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` under `name` ("relay", "processor 2", ...).
    pub fn spawn(
        &mut self,
        name: impl Into<String>,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), name.into());
    }

    /// Waits for the next task to end; pending forever when there is none, so it can sit in a
    /// `select!` beside work that ends by itself.
    pub async fn next(&mut self) -> Ended {
        let Some(joined) = self.tasks.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let id = match &joined {
            Ok((id, _)) => *id,
            Err(join) => join.id(),
        };
        let name = self.names.remove(&id).unwrap_or_else(|| "a task".into());
        match joined {
            Ok((_, Ok(()))) => Ended::Finished(name),
            Ok((_, Err(err))) => Ended::Failed(err.context(format!("{name} failed"))),
            Err(join) if join.is_panic() => Ended::Failed(anyhow::anyhow!("{name} panicked")),
            Err(_) => Ended::Failed(anyhow::anyhow!("{name} was cancelled")),
        }
    }

    /// Waits for the next task to end, which must be `expected` finishing; anything else (another
    /// task ending, or `expected` failing) is the run's error.
    pub async fn expect_finished(&mut self, expected: &str) -> anyhow::Result<()> {
        match self.next().await {
            Ended::Finished(name) if name == expected => Ok(()),
            Ended::Finished(name) => Err(stopped_early(&name)),
            Ended::Failed(err) => Err(err),
        }
    }
}

/// The error for a task that returned while the run still needed it.
pub fn stopped_early(name: &str) -> anyhow::Error {
    anyhow::anyhow!("{name} stopped before the run asked it to")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_task_is_named() {
        let mut tasks = Supervisor::new();
        tasks.spawn("relay", std::future::pending());
        tasks.spawn("processor 2", async { anyhow::bail!("store write failed") });
        let Ended::Failed(err) = tasks.next().await else {
            panic!("expected a failure");
        };
        assert_eq!(format!("{err:#}"), "processor 2 failed: store write failed");
    }

    #[tokio::test]
    async fn a_panicking_task_is_a_failure_not_a_hang() {
        let mut tasks = Supervisor::new();
        tasks.spawn("relay", async { panic!("boom") });
        let Ended::Failed(err) = tasks.next().await else {
            panic!("expected a failure");
        };
        assert_eq!(err.to_string(), "relay panicked");
    }

    #[tokio::test]
    async fn finishing_out_of_turn_is_an_error() {
        let mut tasks = Supervisor::new();
        tasks.spawn("processor 1", async { Ok(()) });
        let err = tasks.expect_finished("relay").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "processor 1 stopped before the run asked it to"
        );
    }
}
