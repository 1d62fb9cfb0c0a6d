//! A real Apache Cassandra 5.0 node: `cassandra-all` and its dependencies from Maven Central
//! (`tests/servers/cassandra/pom.xml`), started as `CassandraDaemon` with the minimal
//! `cassandra.yaml` beside the pom, Java 17's module flags (`jvm.options`) and a 1 GB heap, on free
//! loopback ports in a temporary directory. Ready once a CQL session connects (and, with
//! authentication, logs in), not after a sleep.
//!
//! [`Cassandra::shared`] is one node per test binary; a test that kills its server starts its own.

use super::certs::SelfSigned;
use super::java::{JavaProcess, classpath, free_ports, server_dir};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tempfile::TempDir;
use userstream::sink::cassandra::CassandraOptions;

/// How a node is set up beyond the shared minimal `cassandra.yaml`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Variant {
    /// Cassandra's defaults: open native port, periodic commit-log sync. What users run, so the
    /// shared node and the benches use it.
    Plain,
    /// For a test that SIGKILLs the node and then counts rows: `commitlog_sync: batch`, so every
    /// acknowledged write survives. With the periodic default Cassandra acknowledges writes that a
    /// kill -9 within ~100 ms then loses (replay stops at the last sync marker), and the pipeline,
    /// having been told they were written, rightly never writes them again. A lost row would then
    /// be Cassandra's documented trade, not the pipeline's.
    KillSafe,
    /// `PasswordAuthenticator` and a TLS-only native port, with a certificate made for the node.
    AuthAndTls,
}

impl Variant {
    fn commitlog_sync(self) -> &'static str {
        match self {
            Variant::KillSafe => "commitlog_sync: batch",
            Variant::Plain | Variant::AuthAndTls => {
                "commitlog_sync: periodic\ncommitlog_sync_period: 10000ms"
            }
        }
    }
}

/// Fields drop in order: the process is killed before its directory is removed.
pub struct Cassandra {
    process: Mutex<Option<JavaProcess>>,

    dir: TempDir,
    pub port: u16,
    /// With password authentication and TLS-only clients: the node's certificate (the clients'
    /// `ca_file`).
    pub tls: Option<SelfSigned>,
}

/// The superuser Cassandra creates on first start under `PasswordAuthenticator`.
pub const SUPERUSER: (&str, &str) = ("cassandra", "cassandra");

impl Cassandra {
    /// One plain node for the whole test binary, started on first use. Tests keep apart by
    /// keyspace ([`Cassandra::options`]).
    pub fn shared() -> &'static Cassandra {
        static SHARED: OnceLock<Cassandra> = OnceLock::new();
        SHARED.get_or_init(|| {
            let node = Cassandra::start(Variant::Plain);
            super::java::remove_at_exit(node.dir.path());
            node
        })
    }

    /// A node of its own, set up as `variant` says.
    pub fn start(variant: Variant) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("userstream-cassandra-")
            .tempdir()
            .unwrap();
        let ports = free_ports(2);
        let (port, storage_port) = (ports[0], ports[1]);
        let template = std::fs::read_to_string(server_dir("cassandra").join("cassandra.yaml"))
            .expect("tests/servers/cassandra/cassandra.yaml");
        let mut yaml = template;
        let tls = (variant == Variant::AuthAndTls).then(|| {
            let tls = SelfSigned::create(dir.path());
            // The PEM keystore holds the key, then the certificate.
            let node_pem = [
                std::fs::read_to_string(&tls.key).unwrap(),
                std::fs::read_to_string(&tls.cert).unwrap(),
            ]
            .concat();
            std::fs::write(dir.path().join("node.pem"), node_pem).unwrap();
            yaml.push_str(
                &std::fs::read_to_string(server_dir("cassandra").join("cassandra-auth-tls.yaml"))
                    .unwrap(),
            );
            tls
        });
        let yaml = yaml
            .replace("{dir}", &dir.path().display().to_string())
            .replace("{native_port}", &port.to_string())
            .replace("{storage_port}", &storage_port.to_string())
            .replace("{commitlog_sync}", variant.commitlog_sync());
        std::fs::write(dir.path().join("cassandra.yaml"), yaml).unwrap();
        let node = Self {
            dir,
            port,
            tls,
            process: Mutex::new(None),
        };
        node.launch();
        node
    }

    fn launch(&self) {
        let dir = self.dir.path();
        let options = std::fs::read_to_string(server_dir("cassandra").join("jvm.options")).unwrap();
        let mut args: Vec<String> = options
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        args.extend([
            format!("-Dcassandra.config=file://{}/cassandra.yaml", dir.display()),
            format!("-Dcassandra.storagedir={}", dir.display()),
            format!("-Dcassandra.logdir={}/logs", dir.display()),
            format!("-Dcassandra.triggers_dir={}/triggers", dir.display()),
            format!(
                "-Dlogback.configurationFile=file://{}",
                server_dir("cassandra").join("logback.xml").display()
            ),
            "-cp".into(),
            classpath("cassandra"),
            "org.apache.cassandra.service.CassandraDaemon".into(),
        ]);
        let mut process =
            JavaProcess::spawn_via("cassandra", dir, &without_memory_locking(), &args);
        let options = self.options("system");
        let address = self.address();
        process.wait_ready("answering CQL", Duration::from_secs(180), || {
            answers_cql(&address, &options)
        });
        *self.process.lock().unwrap() = Some(process);
    }

    /// `host:port` of the native (CQL) port.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How to reach this node, writing into `keyspace`: as the superuser over TLS when the node
    /// requires both.
    pub fn options(&self, keyspace: &str) -> CassandraOptions {
        let mut options = CassandraOptions {
            keyspace: keyspace.into(),
            ..CassandraOptions::default()
        };
        if let Some(tls) = &self.tls {
            options.tls = true;
            options.ca_file = Some(tls.cert.clone());
            options.username = Some(SUPERUSER.0.into());
            options.password = Some(SUPERUSER.1.into());
        }
        options
    }

    /// `kill -9` the node: no drain, no flush; what is acknowledged lives only in the commit log.
    pub fn kill(&self) {
        if let Some(mut process) = self.process.lock().unwrap().take() {
            process.kill();
        }
    }

    /// Starts the node again on the same directories (replaying its commit log).
    pub fn restart(&self) {
        assert!(self.process.lock().unwrap().is_none(), "kill it first");
        self.launch();
    }
}

/// Cassandra `mlockall`s its heap when it may, which root (CI) may: every node then holds its
/// whole 1 GB resident from the start, three of them at once in this suite, and starts seconds
/// slower. Without `CAP_IPC_LOCK` the call fails harmlessly (a warning in its log), as it does
/// for any other user.
fn without_memory_locking() -> Vec<&'static str> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let as_root = unsafe { libc::geteuid() } == 0;
    let setpriv = std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if as_root && setpriv {
        vec![
            "setpriv",
            "--inh-caps=-ipc_lock",
            "--bounding-set=-ipc_lock",
        ]
    } else {
        Vec::new()
    }
}

/// A CQL session on `address` with `options`' credentials and TLS.
pub async fn session(
    address: &str,
    options: &CassandraOptions,
) -> Result<scylla::client::session::Session, String> {
    let mut builder = scylla::client::session_builder::SessionBuilder::new()
        .known_node(address)
        .connection_timeout(Duration::from_secs(5));
    if let (Some(user), Some(password)) = (&options.username, &options.password) {
        builder = builder.user(user, password);
    }
    if options.tls {
        let tls = userstream::tls::client_config(options.ca_file.as_deref())?;
        builder = builder.tls_context(Some(Arc::new(tls)));
    }
    builder.build().await.map_err(|e| e.to_string())
}

/// Whether a session connects (and logs in), on a runtime of its own: the harness is called
/// from tests on a runtime and from none.
fn answers_cql(address: &str, options: &CassandraOptions) -> bool {
    let (address, options) = (address.to_owned(), options.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(session(&address, &options)).is_ok()
    })
    .join()
    .unwrap()
}
