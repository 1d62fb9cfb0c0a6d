//! Registry state in SQLite: schemas get a global id by content, subjects get versions, deletes
//! are soft first (hidden, kept) and permanent only after, as in Confluent's registry.

use super::compat::{DEFAULT_LEVEL, check, parse_level};
use super::error::RegistryError;
use apache_avro::Schema;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schemas (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    identity TEXT NOT NULL UNIQUE,   -- the schema JSON with sorted keys, no whitespace
    schema   TEXT NOT NULL           -- as first registered
);
CREATE TABLE IF NOT EXISTS subject_versions (
    subject   TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    schema_id INTEGER NOT NULL REFERENCES schemas (id),
    deleted   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, version)
);
-- subject '' holds the global level.
CREATE TABLE IF NOT EXISTS compatibility (
    subject TEXT PRIMARY KEY,
    level   TEXT NOT NULL
);
";

/// One version of a subject, as the REST API returns it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i64,
    pub id: i64,
    pub schema: String,
}

pub struct RegistryStore {
    conn: Mutex<Connection>,
}

/// Parses an Avro schema and computes its identity (content-addressed id).
fn parse(schema: &str) -> Result<(Schema, String), RegistryError> {
    let json: serde_json::Value =
        serde_json::from_str(schema).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    let parsed = Schema::parse(&json).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    Ok((parsed, json.to_string()))
}

impl RegistryStore {
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        let mut conn = crate::sqlite::open(path)?;
        crate::sqlite::enable_wal(&conn)?;
        // A registered id must survive anything: producers embed it in every message.
        conn.pragma_update(None, "synchronous", "FULL")?;
        crate::sqlite::create_schema(&mut conn, SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().expect("registry lock poisoned")
    }

    /// Registers `schema` under `subject`; returns its id. Registering a schema the subject
    /// already has returns the existing id without a new version.
    pub fn register(&self, subject: &str, schema: &str) -> Result<i64, RegistryError> {
        let (parsed, identity) = parse(schema)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT s.id FROM subject_versions v JOIN schemas s ON s.id = v.schema_id
                 WHERE v.subject = ?1 AND v.deleted = 0 AND s.identity = ?2",
                params![subject, identity],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = existing {
            return Ok(id);
        }
        let level = level_of(&tx, subject)?;
        let earlier = live_schemas(&tx, subject)?
            .iter()
            .map(|s| parse(s).map(|(p, _)| p))
            .collect::<Result<Vec<_>, _>>()?;
        check(&level, &parsed, &earlier).map_err(|reason| RegistryError::Incompatible {
            subject: subject.to_owned(),
            reason,
        })?;
        tx.execute(
            "INSERT INTO schemas (identity, schema) VALUES (?1, ?2) ON CONFLICT (identity) DO NOTHING",
            params![identity, schema],
        )?;
        let id: i64 = tx.query_row(
            "SELECT id FROM schemas WHERE identity = ?1",
            [&identity],
            |r| r.get(0),
        )?;
        let version: i64 = tx.query_row(
            "SELECT coalesce(max(version), 0) + 1 FROM subject_versions WHERE subject = ?1",
            [subject],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO subject_versions (subject, version, schema_id) VALUES (?1, ?2, ?3)",
            params![subject, version, id],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// The version of `subject` holding `schema`.
    pub fn lookup(&self, subject: &str, schema: &str) -> Result<SubjectVersion, RegistryError> {
        let (_, identity) = parse(schema)?;
        self.versions(subject, false)?;
        self.conn()
            .query_row(
                "SELECT v.version, s.id, s.schema FROM subject_versions v JOIN schemas s ON s.id = v.schema_id
                 WHERE v.subject = ?1 AND v.deleted = 0 AND s.identity = ?2",
                params![subject, identity],
                |r| {
                    Ok(SubjectVersion { subject: subject.to_owned(), version: r.get(0)?, id: r.get(1)?, schema: r.get(2)? })
                },
            )
            .optional()?
            .ok_or_else(|| RegistryError::SchemaNotFound("not registered under this subject".into()))
    }

    pub fn subjects(&self, include_deleted: bool) -> Result<Vec<String>, RegistryError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT DISTINCT subject FROM subject_versions WHERE deleted = 0 OR ?1 ORDER BY subject",
        )?;
        let rows = stmt.query_map([include_deleted], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn versions(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> Result<Vec<i64>, RegistryError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT version FROM subject_versions WHERE subject = ?1 AND (deleted = 0 OR ?2) ORDER BY version",
        )?;
        let versions: Vec<i64> = stmt
            .query_map(params![subject, include_deleted], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        Ok(versions)
    }

    /// `version` is a number or `latest` (or -1, as Confluent accepts).
    pub fn version(&self, subject: &str, version: &str) -> Result<SubjectVersion, RegistryError> {
        // Checked first, as Confluent does: a bad version is 42202 whatever the subject.
        let requested = match version {
            "latest" | "-1" => None,
            v => Some(parse_version(v)?),
        };
        let live = self.versions(subject, false)?;
        let wanted =
            requested.unwrap_or_else(|| *live.last().expect("versions() never returns empty"));
        if !live.contains(&wanted) {
            return Err(RegistryError::VersionNotFound(wanted.to_string()));
        }
        Ok(self.conn().query_row(
            "SELECT s.id, s.schema FROM subject_versions v JOIN schemas s ON s.id = v.schema_id
             WHERE v.subject = ?1 AND v.version = ?2",
            params![subject, wanted],
            |r| {
                Ok(SubjectVersion {
                    subject: subject.to_owned(),
                    version: wanted,
                    id: r.get(0)?,
                    schema: r.get(1)?,
                })
            },
        )?)
    }

    pub fn schema_by_id(&self, id: i64) -> Result<String, RegistryError> {
        self.conn()
            .query_row("SELECT schema FROM schemas WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))
    }

    /// Whether `schema` could be registered after `version` of `subject` under its level.
    pub fn is_compatible(
        &self,
        subject: &str,
        version: &str,
        schema: &str,
    ) -> Result<bool, RegistryError> {
        let (new, _) = parse(schema)?;
        let against = self.version(subject, version)?;
        let level = level_of(&self.conn(), subject)?;
        let (old, _) = parse(&against.schema)?;
        Ok(check(&level, &new, &[old]).is_ok())
    }

    /// The level of `subject` (`None` = global), or `None` if the subject has none of its own.
    pub fn level(&self, subject: Option<&str>) -> Result<Option<String>, RegistryError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT level FROM compatibility WHERE subject = ?1",
                [subject.unwrap_or("")],
                |r| r.get(0),
            )
            .optional()?
            .or_else(|| subject.is_none().then(|| DEFAULT_LEVEL.to_owned())))
    }

    pub fn set_level(&self, subject: Option<&str>, level: &str) -> Result<String, RegistryError> {
        let level = parse_level(level).ok_or(RegistryError::InvalidCompatibility)?;
        self.conn().execute(
            "INSERT INTO compatibility (subject, level) VALUES (?1, ?2)
             ON CONFLICT (subject) DO UPDATE SET level = excluded.level",
            params![subject.unwrap_or(""), level],
        )?;
        Ok(level.to_owned())
    }

    /// Soft-deletes every version, or with `permanent` removes a subject soft-deleted before, as
    /// Confluent does (40404 for a second soft delete, 40405 for a permanent one first).
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i64>, RegistryError> {
        let all = self.versions(subject, true)?;
        let live = match self.versions(subject, false) {
            Ok(live) => live,
            Err(RegistryError::SubjectNotFound(_)) => Vec::new(),
            Err(other) => return Err(other),
        };
        if permanent {
            if !live.is_empty() {
                return Err(RegistryError::SubjectNotSoftDeleted(subject.to_owned()));
            }
            self.conn()
                .execute("DELETE FROM subject_versions WHERE subject = ?1", [subject])?;
            return Ok(all);
        }
        if live.is_empty() {
            return Err(RegistryError::SubjectSoftDeleted(subject.to_owned()));
        }
        self.conn().execute(
            "UPDATE subject_versions SET deleted = 1 WHERE subject = ?1",
            [subject],
        )?;
        Ok(live)
    }

    /// Soft-deletes one version, or with `permanent` removes one soft-deleted before (40406 for a
    /// second soft delete, 40407 for a permanent one first).
    pub fn delete_version(
        &self,
        subject: &str,
        version: &str,
        permanent: bool,
    ) -> Result<i64, RegistryError> {
        let requested = match version {
            "latest" | "-1" => None,
            v => Some(parse_version(v)?),
        };
        let all = self.versions(subject, true)?;
        let wanted = match requested {
            Some(n) => n,
            // The latest live version, as Confluent resolves it.
            None => *self
                .versions(subject, false)?
                .last()
                .expect("versions() never returns empty"),
        };
        if !all.contains(&wanted) {
            return Err(RegistryError::VersionNotFound(wanted.to_string()));
        }
        let deleted: bool = self.conn().query_row(
            "SELECT deleted FROM subject_versions WHERE subject = ?1 AND version = ?2",
            params![subject, wanted],
            |r| r.get(0),
        )?;
        let (subject_owned, version) = (subject.to_owned(), wanted);
        match (permanent, deleted) {
            (false, true) => Err(RegistryError::VersionSoftDeleted {
                subject: subject_owned,
                version,
            }),
            (true, false) => Err(RegistryError::VersionNotSoftDeleted {
                subject: subject_owned,
                version,
            }),
            (false, false) => {
                self.conn().execute(
                    "UPDATE subject_versions SET deleted = 1 WHERE subject = ?1 AND version = ?2",
                    params![subject, wanted],
                )?;
                Ok(wanted)
            }
            (true, true) => {
                self.conn().execute(
                    "DELETE FROM subject_versions WHERE subject = ?1 AND version = ?2",
                    params![subject, wanted],
                )?;
                Ok(wanted)
            }
        }
    }

    /// Every (subject, version) that holds schema `id`; the soft-deleted ones too with
    /// `include_deleted`. An id never registered is 40403.
    pub fn subject_versions_of(
        &self,
        id: i64,
        include_deleted: bool,
    ) -> Result<Vec<(String, i64)>, RegistryError> {
        self.schema_by_id(id)?;
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT subject, version FROM subject_versions
             WHERE schema_id = ?1 AND (deleted = 0 OR ?2) ORDER BY subject, version",
        )?;
        let rows = stmt.query_map(params![id, include_deleted], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A version number as Confluent allows it: 1 to 2^31-1 (42202 otherwise, however large).
fn parse_version(text: &str) -> Result<i64, RegistryError> {
    match text.parse::<i64>() {
        Ok(n) if (1..=i64::from(i32::MAX)).contains(&n) => Ok(n),
        _ => Err(RegistryError::InvalidVersion(text.to_owned())),
    }
}

fn level_of(conn: &Connection, subject: &str) -> Result<String, RegistryError> {
    let level: Option<String> = conn
        .query_row(
            "SELECT level FROM compatibility WHERE subject IN (?1, '') ORDER BY subject DESC LIMIT 1",
            [subject],
            |r| r.get(0),
        )
        .optional()?;
    Ok(level.unwrap_or_else(|| DEFAULT_LEVEL.to_owned()))
}

fn live_schemas(conn: &Connection, subject: &str) -> Result<Vec<String>, RegistryError> {
    let mut stmt = conn.prepare(
        "SELECT s.schema FROM subject_versions v JOIN schemas s ON s.id = v.schema_id
         WHERE v.subject = ?1 AND v.deleted = 0 ORDER BY v.version",
    )?;
    let rows = stmt.query_map([subject], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
