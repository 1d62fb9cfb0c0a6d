//! One ingest per log at a time.
//!
//! Ingest keeps its paging cursor in the log, and two processes appending to one log would both
//! read the same cursor, fetch the same pages, and spend the API budget twice (seen: 75,700 raw
//! records for 40,900 users from two `run`s on one data directory). So a process that ingests
//! holds an exclusive lock on `ingest.lock` in the data directory for as long as it runs, and a
//! second one is refused with a message naming the holder. The lock is the kernel's (`flock`):
//! it dies with its process, even on kill -9, so there is nothing stale to clean up. A PostgreSQL
//! log is locked the same way with a session advisory lock, which dies with its connection.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held while this process ingests into a log; released on drop.
pub struct WriterLock {
    _held: Held,
}

impl std::fmt::Debug for WriterLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self._held {
            Held::File(_) => "data directory",
            Held::Postgres(_) => "PostgreSQL log",
        };
        write!(f, "WriterLock({what})")
    }
}

enum Held {
    /// `flock` on the data directory's `ingest.lock` (the SQLite log).
    File(#[allow(dead_code)] File),
    /// A session advisory lock on a PostgreSQL log.
    Postgres(#[allow(dead_code)] Box<crate::log::postgres::PostgresIngestLock>),
}

#[derive(Debug, thiserror::Error)]
pub enum WriterLockError {
    #[error(
        "another userstream process{} is already ingesting into {dir}; stop it first, or give this one another --data-dir",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Held { dir: PathBuf, holder: Option<u32> },
    #[error(
        "another userstream process is already ingesting into the PostgreSQL log; stop it first, or give this one another [log] database"
    )]
    HeldInPostgres,
    #[error("locking the PostgreSQL log: {0}")]
    Postgres(#[from] crate::log::LogError),
    #[error("locking {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl WriterLock {
    /// Takes the data directory's ingest lock, or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self, WriterLockError> {
        let path = data_dir.join("ingest.lock");
        let io = |source| WriterLockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(WriterLockError::Held {
                    dir: data_dir.to_path_buf(),
                    holder: pid.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(err)) => return Err(io(err)),
        }
        // The holder's pid, for the next process's message; the lock itself is what counts.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self {
            _held: Held::File(file),
        })
    }

    /// Takes the ingest lock of the PostgreSQL log at `url`, or says it is held.
    pub async fn acquire_postgres(
        url: &str,
        options: &crate::postgres::PostgresOptions,
    ) -> Result<Self, WriterLockError> {
        match crate::log::postgres::PostgresIngestLock::try_acquire(url, options).await? {
            Some(lock) => Ok(Self {
                _held: Held::Postgres(Box::new(lock)),
            }),
            None => Err(WriterLockError::HeldInPostgres),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = WriterLock::acquire(dir.path()).unwrap();
        let err = WriterLock::acquire(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "(pid {}) is already ingesting",
                std::process::id()
            )),
            "{err}"
        );
        drop(first);
        WriterLock::acquire(dir.path()).unwrap();
    }
}
