//! A TCP proxy that can take the server "down": while down it cuts every open connection and
//! refuses new ones, as a crashed or partitioned node would look to a client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::net::{TcpListener, TcpStream};

pub struct TcpProxy {
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
    /// Bumped on every outage; connections from an older epoch close themselves.
    epoch: Arc<AtomicU64>,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let epoch = Arc::new(AtomicU64::new(0));
        let (d, e) = (down.clone(), epoch.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let my_epoch = e.load(Ordering::SeqCst);
                let e = e.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                    let cut = async {
                        while e.load(Ordering::SeqCst) == my_epoch {
                            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy => {}
                        () = cut => {}
                    }
                });
            }
        });
        Self { addr, down, epoch }
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }
}
