//! Servers that run on the JVM (Apache Kafka, Apache Cassandra), as test infrastructure only.
//!
//! Their jars come from Maven Central through a small pinned pom per server
//! (`tests/servers/<name>/pom.xml`); Maven's local repository is the cache, so only the first run
//! on a machine downloads anything. The resolved class path is kept under `target/test-servers/`,
//! keyed by the pom's contents, so later runs do not even start Maven.
//!
//! A server outlives the test that started it when it is shared by a whole test binary (a
//! `static`, never dropped). Two things stop it anyway: an `atexit` hook kills every server still
//! running when the test binary exits, and each JVM is spawned with `PR_SET_PDEATHSIG` from a
//! thread that lives as long as the process, so even a test binary killed by a signal takes its
//! servers with it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// `tests/servers/<server>/`.
pub fn server_dir(server: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/servers")
        .join(server)
}

/// The class path of `tests/servers/<server>/pom.xml`'s dependencies, resolved by Maven once.
pub fn classpath(server: &str) -> String {
    // One resolution at a time: tests starting servers at once would race on the cache file.
    static RESOLVING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = RESOLVING.lock().unwrap_or_else(|e| e.into_inner());
    let pom = server_dir(server).join("pom.xml");
    let text = std::fs::read(&pom).unwrap_or_else(|e| panic!("{}: {e}", pom.display()));
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    let cache = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-servers")
        .join(format!("{server}-{:016x}.classpath", hasher.finish()));
    if let Ok(classpath) = std::fs::read_to_string(&cache)
        && classpath
            .split(':')
            .all(|jar| !jar.is_empty() && Path::new(jar).exists())
    {
        return classpath;
    }
    std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
    let partial = cache.with_extension(format!("partial-{}", std::process::id()));
    let out = Command::new("mvn")
        .args(["-q", "-B", "-f"])
        .arg(&pom)
        .arg("dependency:build-classpath")
        .arg(format!("-Dmdep.outputFile={}", partial.display()))
        .output()
        .expect("Maven (mvn) is not installed: the README's test command installs it");
    assert!(
        out.status.success(),
        "resolving {}'s jars with Maven failed:\n{}{}",
        server,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&partial, &cache).unwrap();
    std::fs::read_to_string(&cache).unwrap()
}

/// Servers still running, killed by [`kill_all_at_exit`].
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Directories of servers that are never dropped (shared by a test binary), removed at exit.
static LEFT_BEHIND: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" fn kill_all_at_exit() {
    if let Ok(pids) = RUNNING.lock() {
        for &pid in pids.iter() {
            // SAFETY: plain syscalls on pids this process spawned and has not yet reaped.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
                libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
            }
        }
    }
    if let Ok(dirs) = LEFT_BEHIND.lock() {
        for dir in dirs.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Removes `dir` when the process exits, after its servers are killed: for a server in a
/// `static`, whose `TempDir` is never dropped.
pub fn remove_at_exit(dir: &Path) {
    LEFT_BEHIND.lock().unwrap().push(dir.to_path_buf());
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns on one thread that never exits: `PR_SET_PDEATHSIG` fires when the *thread* that forked
/// the child ends, and test threads end after every test.
fn spawn_from_keeper(command: Command) -> Child {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        // SAFETY: registering a plain `extern "C" fn` with no captured state.
        unsafe { libc::atexit(kill_all_at_exit) };
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("server-keeper".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .unwrap();
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    keeper.lock().unwrap().send((command, reply)).unwrap();
    answer.recv().unwrap().expect("start java")
}

/// One JVM server process, its output in `log`.
pub struct JavaProcess {
    name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl JavaProcess {
    /// Starts `java ARGS` in `dir`, its stdout and stderr appended to `dir/<name>.out`.
    pub fn spawn(name: &str, dir: &Path, args: &[String]) -> Self {
        Self::spawn_via(name, dir, &[], args)
    }

    /// Like [`spawn`](Self::spawn), with `java` run through `wrapper` (a command that execs it).
    pub fn spawn_via(name: &str, dir: &Path, wrapper: &[&str], args: &[String]) -> Self {
        let log = dir.join(format!("{name}.out"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg("java");
                command
            }
            None => Command::new("java"),
        };
        command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = spawn_from_keeper(command);
        RUNNING.lock().unwrap().push(child.id());
        Self {
            name: name.to_owned(),
            child: Some(child),
            log,
        }
    }

    /// Panics with the end of the server's output if it has exited.
    pub fn assert_running(&mut self) {
        if let Some(child) = &mut self.child
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!(
                "{} exited ({status}) before it was ready; the end of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 6000)
            );
        }
    }

    /// Waits until `ready` answers true, failing with the server's output after `timeout`
    /// or as soon as the process exits.
    pub fn wait_ready(&mut self, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            self.assert_running();
            if ready() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} was not {what} within {timeout:?}; the end of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 6000)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `kill -9`: no shutdown hooks, no flush; what a crash or an OOM kill looks like.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            RUNNING.lock().unwrap().retain(|&pid| pid != child.id());
        }
    }
}

impl Drop for JavaProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `bytes` of a file, for failure messages.
fn tail(path: &Path, bytes: u64) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut text = Vec::new();
    let _ = file.read_to_end(&mut text);
    String::from_utf8_lossy(&text).into_owned()
}

/// `n` distinct loopback ports that were free a moment ago, for servers that are told their
/// ports up front (a config file, a command line) and bind them seconds later.
///
/// They come from below the kernel's ephemeral range: a port from `bind(0)` lies inside it, where
/// any client connection made meanwhile (a driver, a broker talking to itself) may take it as its
/// source port, and the server then fails with "Address already in use". No port is handed out
/// twice by one test binary.
pub fn free_ports(n: usize) -> Vec<u16> {
    use rand::Rng;
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let range = 10_000..ephemeral_low.max(10_001);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = rand::rng();
    let mut ports = Vec::with_capacity(n);
    while ports.len() < n {
        let port = rng.random_range(range.clone());
        if !handed_out.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.push(port);
            ports.push(port);
        }
    }
    ports
}
