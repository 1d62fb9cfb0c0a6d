//! A real Kafka-compatible broker process: Tansu with in-memory storage (`cargo install tansu
//! --features dynostore`; `.ci/run` installs it). It listens on a free port behind a
//! [`TcpProxy`], and advertises the proxy, so every client connection goes through it and
//! "broker down" can be switched on and off without losing what the broker holds (in-memory
//! storage would not survive a restart of the process itself).

use super::tcp_proxy::TcpProxy;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Tansu {
    child: Child,
    proxy: TcpProxy,
}

/// `$TANSU`, else `tansu` on the `PATH`, else cargo's install directory.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file());
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    on_path
        .or_else(|| cargo_home.map(|h| h.join("bin/tansu")).filter(|p| p.is_file()))
        .expect("Tansu is not installed: .ci/run installs it (cargo install tansu --features dynostore)")
}

impl Tansu {
    pub async fn start() -> Self {
        let port = super::free_port();
        let broker: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let proxy = TcpProxy::start(broker).await;
        let child = Command::new(binary())
            .args(["broker", "--silent", "--storage-engine", "memory://tansu/"])
            .arg("--listener-url")
            .arg(format!("tcp://{broker}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://{}", proxy.addr))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        // Ready once it accepts connections (it starts in milliseconds).
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(broker).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {broker}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Self { child, proxy }
    }

    pub fn bootstrap_servers(&self) -> String {
        self.proxy.addr.to_string()
    }

    /// Cuts every connection and refuses new ones (as a crashed broker looks), or restores.
    pub fn set_down(&self, down: bool) {
        self.proxy.set_down(down);
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
