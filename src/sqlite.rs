//! SQLite set-up shared by the embedded log ([`crate::log::SqliteLog`]), store
//! ([`crate::sink::SqliteStore`]), run history and schema registry: several processes may open
//! the same file at the same moment (`process --processors 3`, two schedulers), and each of them
//! must then wait its turn rather than fail.

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a statement waits for another process's lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens (creating if needed) the file at `path`, waiting up to [`BUSY_TIMEOUT`] on locks.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Switches `conn` to WAL mode.
///
/// A busy timeout alone does not make this safe to run from two processes at once. The switch
/// reads the file under a shared lock and then needs an exclusive one; when two connections hold
/// the shared lock and both ask for more, SQLite refuses at once with `SQLITE_BUSY` and does not
/// call the busy handler, since waiting could deadlock. So the statement is retried from scratch,
/// its locks released in between. WAL mode is stored in the file: once one process has switched
/// it, the others find it set and need no exclusive lock.
///
/// SQLite answers with the mode it is in, and keeps the old one where WAL is impossible (a
/// network filesystem without shared memory). That is an error here, not a quiet fallback:
/// readers would then block the writer, and the durability reasoning of each file assumes WAL.
pub fn enable_wal(conn: &Connection) -> rusqlite::Result<()> {
    let mode = retry_busy(|| {
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
    })?;
    if mode.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    Err(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
        Some(format!(
            "the file stays in journal mode {mode:?}: WAL is not possible here (a network \
             filesystem?); put the data directory on a local disk"
        )),
    ))
}

/// Runs `batch` (schema statements) in one write transaction.
///
/// `BEGIN IMMEDIATE` takes the write lock first, through the busy handler. Run in autocommit
/// instead, a `CREATE TABLE IF NOT EXISTS` reads the schema and then upgrades to a write, and in
/// WAL mode an upgrade after another process's commit fails at once (`SQLITE_BUSY_SNAPSHOT`).
pub fn create_schema(conn: &mut Connection, batch: &str) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(batch)?;
    tx.commit()
}

/// A file written by a newer userstream, whose schema this binary does not know.
#[derive(Debug)]
pub struct NewerSchema {
    pub found: i64,
    pub supported: i64,
}

impl std::fmt::Display for NewerSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "schema version {} is newer than this binary's {}; upgrade userstream",
            self.found, self.supported
        )
    }
}

/// Brings a versioned file's schema to `version`: reads `user_version`, refuses a newer one,
/// runs `upgrade` with the version found (migrations, then the schema's `IF NOT EXISTS`
/// statements, and whatever else must be read or written with them), sets `version`, and
/// commits, all in one write transaction taken first, as in [`create_schema`]. A crash midway
/// leaves the old version whole, and of processes opening the file at once one upgrades it and
/// the others find it done.
pub fn upgrade_schema<T>(
    conn: &mut Connection,
    version: i64,
    upgrade: impl FnOnce(&Transaction, i64) -> rusqlite::Result<T>,
) -> rusqlite::Result<Result<T, NewerSchema>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > version {
        return Ok(Err(NewerSchema {
            found,
            supported: version,
        }));
    }
    let upgraded = upgrade(&tx, found)?;
    tx.pragma_update(None, "user_version", version)?;
    tx.commit()?;
    Ok(Ok(upgraded))
}

/// Which file a database path named when it was opened, to notice when the path later names
/// another file, or none.
///
/// A process whose database file is deleted or replaced under it keeps writing to the old file
/// through its open descriptor, and every commit succeeds; but whoever opens the path next (the
/// same process after a restart, `query`, `audit`) finds none of that work. Readiness reports this
/// rather than a healthy process whose writes will vanish.
#[derive(Debug, Clone)]
pub struct FileId {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The file `path` names now; `Err` says which path could not be read, and why.
    pub fn of(path: &Path) -> Result<Self, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// `Err` saying what happened when the path no longer names the opened file.
    pub fn check(&self) -> Result<(), String> {
        let path = self.path.display();
        match std::fs::metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == (self.dev, self.ino) => Ok(()),
            Ok(_) => Err(format!(
                "{path} was replaced by another file after this process opened it; \
                 what it writes now is lost at restart"
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "{path} was removed after this process opened it; what it writes now is lost \
                 at restart"
            )),
            Err(e) => Err(format!("{path}: {e}")),
        }
    }
}

/// Retries `op` while it fails with `SQLITE_BUSY`, for up to [`BUSY_TIMEOUT`], for the statements
/// that SQLite fails without calling the busy handler.
fn retry_busy<T>(mut op: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match op() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::DatabaseBusy && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many connections opening one fresh file at once, as `process --processors N` does, all
    /// get WAL mode and the schema; before the retry, some failed with "database is locked".
    #[test]
    fn concurrent_opens_of_a_fresh_file_all_succeed() {
        for round in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(format!("fresh-{round}.db"));
            let barrier = std::sync::Barrier::new(6);
            std::thread::scope(|scope| {
                let opens: Vec<_> = (0..6)
                    .map(|_| {
                        scope.spawn(|| {
                            barrier.wait();
                            let mut conn = open(&path)?;
                            enable_wal(&conn)?;
                            create_schema(&mut conn, "CREATE TABLE IF NOT EXISTS t (x INTEGER);")
                        })
                    })
                    .collect();
                for opened in opens {
                    opened.join().unwrap().unwrap();
                }
            });
            let conn = open(&path).unwrap();
            let mode: String = conn
                .pragma_query_value(None, "journal_mode", |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
        }
    }

    #[test]
    fn a_schema_is_upgraded_once_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("v.db")).unwrap();
        let found = upgrade_schema(&mut conn, 2, |tx, found| {
            tx.execute_batch("CREATE TABLE t (x INTEGER);")?;
            Ok(found)
        });
        assert_eq!(found.unwrap().unwrap(), 0);
        let again = upgrade_schema(&mut conn, 2, |_, found| Ok(found));
        assert_eq!(again.unwrap().unwrap(), 2);
        conn.pragma_update(None, "user_version", 3).unwrap();
        let newer = upgrade_schema(&mut conn, 2, |_, _| -> rusqlite::Result<()> {
            panic!("a newer schema must not be touched")
        });
        let refused = newer.unwrap().unwrap_err();
        assert_eq!((refused.found, refused.supported), (3, 2));
        assert!(refused.to_string().contains("upgrade userstream"));
    }

    #[test]
    fn a_file_id_notices_its_path_removed_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        std::fs::write(&path, "one").unwrap();
        let id = FileId::of(&path).unwrap();
        assert_eq!(id.check(), Ok(()));
        let moved = dir.path().join("moved.db");
        std::fs::rename(&path, &moved).unwrap();
        assert!(id.check().unwrap_err().contains("was removed"));
        // Written beside and renamed over, as an editor or a restore from backup does.
        std::fs::write(dir.path().join("b.db"), "two").unwrap();
        std::fs::rename(dir.path().join("b.db"), &path).unwrap();
        assert!(id.check().unwrap_err().contains("was replaced"));
    }
}
