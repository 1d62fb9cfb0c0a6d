//! A real schema registry speaking the Confluent Schema Registry API: Apicurio Registry 2.4.2
//! (`/apis/ccompat/v7`) with in-memory storage, as test infrastructure only. Its jars come from
//! Maven Central through `tests/servers/apicurio/pom.xml` (why that version and those overrides:
//! the pom's opening comment), which a Quarkus build turns into a runner jar. Ready once the
//! subjects endpoint answers 200, not after a sleep.
//!
//! Unlike Kafka and Cassandra, whose jars run straight from Maven's local repository, Apicurio
//! has to be *built* (~36 s and ~216 MB of downloads the first time on a machine, ~20 s from a warm
//! `~/.m2`). The build is kept under `target/test-servers/apicurio-<hash>/`, keyed by the pom's and
//! `settings.xml`'s contents, so later runs start the jar straight away.
//!
//! [`Apicurio::shared`] is one registry per test binary; tests keep apart by subject.

use super::java::{JavaProcess, free_ports, server_dir};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tempfile::TempDir;

/// What the Quarkus build writes, relative to its project directory: named after the pom's
/// `artifactId` and `version`, with its dependencies in `target/lib/` beside it.
const RUNNER_JAR: &str = "target/apicurio-wrapper-1.0-runner.jar";

/// The endpoint that answers 200 once the registry serves requests: the ccompat API's list of
/// subjects, empty on a fresh in-memory registry.
const READY_PATH: &str = "/apis/ccompat/v7/subjects";

/// One registry process. Fields drop in order: the process is killed before its directory is
/// removed.
pub struct Apicurio {
    /// Behind a lock so that a registry in a `static` is `Sync` whatever `JavaProcess` is.
    process: Mutex<JavaProcess>,
    /// Its working directory, which holds its output (`apicurio.out`) and its temporary files.
    dir: TempDir,
    pub port: u16,
}

impl Apicurio {
    /// One registry for the whole test binary, started (and, the first time on a machine, built)
    /// on first use.
    pub fn shared() -> &'static Apicurio {
        static SHARED: OnceLock<Apicurio> = OnceLock::new();
        SHARED.get_or_init(|| {
            let registry = Apicurio::start();
            super::java::remove_at_exit(registry.dir.path());
            registry
        })
    }

    /// A registry of its own, empty, for a test that kills it or needs no other test's subjects.
    pub fn start() -> Self {
        let jar = runner_jar();
        let dir = tempfile::Builder::new()
            .prefix("userstream-apicurio-")
            .tempdir()
            .unwrap();
        let port = free_ports(1)[0];
        // A small heap is plenty for an in-memory registry of a few test schemas; serial GC and
        // the C1 JIT only, as for Kafka, for less start-up CPU on a 2-core machine.
        let args: Vec<String> = vec![
            "-Xms32m".into(),
            "-Xmx256m".into(),
            "-Djava.awt.headless=true".into(),
            "-XX:+UseSerialGC".into(),
            "-XX:TieredStopAtLevel=1".into(),
            // Vert.x's file cache and the like go into the directory removed with the registry.
            format!("-Djava.io.tmpdir={}", dir.path().display()),
            format!("-Dquarkus.http.port={port}"),
            "-Dquarkus.http.host=127.0.0.1".into(),
            "-jar".into(),
            jar.display().to_string(),
        ];
        let mut process = JavaProcess::spawn("apicurio", dir.path(), &args);
        process.wait_ready(
            &format!("answering GET {READY_PATH}"),
            Duration::from_secs(180),
            || http_status(port, READY_PATH) == Some(200),
        );
        Self {
            process: Mutex::new(process),
            dir,
            port,
        }
    }

    /// The base URL of the Confluent Schema Registry API, what a Confluent client or serializer
    /// is given as `schema.registry.url`.
    pub fn ccompat_url(&self) -> String {
        format!("http://127.0.0.1:{}/apis/ccompat/v7", self.port)
    }
}

/// The runner jar of `tests/servers/apicurio/pom.xml`, built by Maven once per contents of the
/// pom and `settings.xml`.
///
/// Maven runs in a copy of both files under `target/test-servers/`, not in `tests/servers/`, so
/// that its `target/` stays out of the source tree and a changed pom gets a build of its own. It
/// builds into a directory named after this process and renamed into place once done: a build
/// interrupted halfway is never mistaken for a finished one, and two test binaries building at
/// once do not write into the same files (the jar's manifest names `lib/` by relative paths, so
/// the directory can be moved).
fn runner_jar() -> PathBuf {
    // One build at a time: tests starting registries at once would build side by side.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let sources = server_dir("apicurio");
    let files: Vec<(&str, Vec<u8>)> = ["pom.xml", "settings.xml"]
        .into_iter()
        .map(|name| {
            let path = sources.join(name);
            let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (name, text)
        })
        .collect();
    let mut hasher = DefaultHasher::new();
    for (_, text) in &files {
        text.hash(&mut hasher);
    }
    let servers = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-servers");
    let build = servers.join(format!("apicurio-{:016x}", hasher.finish()));
    let jar = build.join(RUNNER_JAR);
    if jar.exists() {
        return jar;
    }
    // A build directory without its jar was damaged by hand; build it again.
    let _ = std::fs::remove_dir_all(&build);
    remove_abandoned_builds(&servers);
    let partial = build.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).unwrap();
    for (name, text) in &files {
        std::fs::write(partial.join(name), text).unwrap();
    }
    let out = Command::new("mvn")
        .args(["-q", "-B", "-s", "settings.xml", "package", "-DskipTests"])
        .current_dir(&partial)
        .output()
        .expect("Maven (mvn) is not installed: the README's test command installs it");
    assert!(
        out.status.success(),
        "building Apicurio Registry with Maven in {} failed:\n{}{}",
        partial.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match std::fs::rename(&partial, &build) {
        Ok(()) => {}
        // Another test binary finished the same build first.
        Err(_) if jar.exists() => {
            let _ = std::fs::remove_dir_all(&partial);
        }
        Err(e) => panic!("{} -> {}: {e}", partial.display(), build.display()),
    }
    jar
}

/// Removes `apicurio-*.partial-<pid>` directories whose process is gone: a test binary killed
/// during a build leaves one, a couple of hundred MB each.
fn remove_abandoned_builds(servers: &Path) {
    let Ok(entries) = std::fs::read_dir(servers) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((prefix, pid)) = name.split_once(".partial-")
            && prefix.starts_with("apicurio-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The status code of `GET path` on the registry at `port`, or `None` while it does not answer.
/// A bare HTTP/1.0 request read up to its status line: the tests have no blocking HTTP client
/// (reqwest is async only here), and the readiness check runs on a plain thread.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    // "HTTP/1.1 200 OK"
    String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
