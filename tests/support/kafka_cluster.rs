//! Real Apache Kafka in KRaft mode (no ZooKeeper): the broker's jars from Maven Central
//! (`tests/servers/kafka/pom.xml`, Kafka 4.3.1), each node a combined broker+controller on free
//! loopback ports in a temporary directory, its storage formatted before the first start. Ready
//! once the cluster answers metadata naming every broker, not after a sleep.
//!
//! [`KafkaCluster::shared`] is one single-node cluster per test binary; tests keep apart by topic
//! and group. A test that kills a broker starts a cluster of its own, of one node, or of three
//! where it needs replication (`acks=all` with `min.insync.replicas=2`).

use super::java::{JavaProcess, classpath, free_ports, server_dir};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tempfile::TempDir;

/// Cluster ids only have to agree within one cluster, and every cluster has its own directories.
const CLUSTER_ID: &str = "MkU3OEVBNTcwNTJENDM2Qg";

pub struct KafkaCluster {
    nodes: Vec<Node>,
}

/// Fields drop in order: the process is killed before its directory is removed.
struct Node {
    process: Mutex<Option<JavaProcess>>,
    dir: TempDir,
    port: u16,
}

impl KafkaCluster {
    /// One single-node cluster for the whole test binary, started on first use.
    pub fn shared() -> &'static KafkaCluster {
        static SHARED: OnceLock<KafkaCluster> = OnceLock::new();
        SHARED.get_or_init(|| {
            let cluster = KafkaCluster::start(1);
            for node in &cluster.nodes {
                super::java::remove_at_exit(node.dir.path());
            }
            cluster
        })
    }

    /// A cluster of `brokers` nodes (1, or 3 for replication).
    pub fn start(brokers: usize) -> Self {
        let ports = free_ports(2 * brokers);
        let voters: Vec<String> = (0..brokers)
            .map(|i| format!("{}@127.0.0.1:{}", i + 1, ports[2 * i + 1]))
            .collect();
        let replicated = brokers >= 3;
        let nodes: Vec<Node> = (0..brokers)
            .map(|i| {
                let dir = tempfile::Builder::new()
                    .prefix(&format!("userstream-kafka-{}-", i + 1))
                    .tempdir()
                    .unwrap();
                let (port, controller) = (ports[2 * i], ports[2 * i + 1]);
                let properties = server_properties(
                    i + 1,
                    port,
                    controller,
                    &voters.join(","),
                    &dir.path().join("data").display().to_string(),
                    replicated,
                );
                std::fs::write(dir.path().join("server.properties"), properties).unwrap();
                Node {
                    dir,
                    port,
                    process: Mutex::new(None),
                }
            })
            .collect();
        let cluster = Self { nodes };
        for node in &cluster.nodes {
            cluster.format(node);
        }
        for node in &cluster.nodes {
            cluster.spawn(node);
        }
        for node in &cluster.nodes {
            cluster.wait_ready(node);
        }
        cluster
    }

    fn java_args(&self, node: &Node, main: &[&str]) -> Vec<String> {
        // Measured on 2 cores: half the start-up CPU of the default G1 and tiered JIT, and the
        // same bench figures as G1 with the full JIT (10,100-11,600 against 10,500 users/s).
        let mut args: Vec<String> = vec![
            "-Xms64m".into(),
            "-Xmx512m".into(),
            "-Djava.awt.headless=true".into(),
            "-XX:+UseSerialGC".into(),
            "-XX:TieredStopAtLevel=1".into(),
        ];
        args.extend([
            format!(
                "-Dlog4j2.configurationFile={}",
                server_dir("kafka").join("log4j2.properties").display()
            ),
            format!("-Dkafka.logs.dir={}", node.dir.path().display()),
            "-cp".into(),
            classpath("kafka"),
        ]);
        args.extend(main.iter().map(|s| s.to_string()));
        args
    }

    /// `kafka-storage.sh format`, once, before the node's first start.
    fn format(&self, node: &Node) {
        let properties = node.dir.path().join("server.properties");
        let args = self.java_args(
            node,
            &[
                "kafka.tools.StorageTool",
                "format",
                "-t",
                CLUSTER_ID,
                "-c",
                &properties.display().to_string(),
            ],
        );
        let out = std::process::Command::new("java")
            .args(&args)
            .output()
            .expect("java");
        assert!(
            out.status.success(),
            "formatting Kafka storage failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn spawn(&self, node: &Node) {
        let properties = node.dir.path().join("server.properties");
        let args = self.java_args(node, &["kafka.Kafka", &properties.display().to_string()]);
        let process = JavaProcess::spawn("kafka", node.dir.path(), &args);
        *node.process.lock().unwrap() = Some(process);
    }

    /// Until the node answers metadata that names every broker of the cluster.
    fn wait_ready(&self, node: &Node) {
        let client: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", format!("127.0.0.1:{}", node.port))
            .set("reconnect.backoff.max.ms", "100")
            .set("log_level", "0")
            .create()
            .unwrap();
        let brokers = self.nodes.len();
        let mut guard = node.process.lock().unwrap();
        let process = guard.as_mut().expect("spawned");
        process.wait_ready("answering metadata", Duration::from_secs(180), || {
            client
                .fetch_metadata(None, Duration::from_millis(500))
                .is_ok_and(|m| m.brokers().len() == brokers)
        });
    }

    /// `host:port` of every broker.
    pub fn bootstrap_servers(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// How many brokers hold a replica of each partition of our topics.
    pub fn replication(&self) -> i32 {
        if self.nodes.len() >= 3 { 3 } else { 1 }
    }

    /// `kill -9` node `index` (0-based): no controlled shutdown, no flush.
    pub fn kill(&self, index: usize) {
        if let Some(mut process) = self.nodes[index].process.lock().unwrap().take() {
            process.kill();
        }
    }

    /// Starts node `index` again on its data directory (no format) and waits until it is back.
    pub fn restart(&self, index: usize) {
        let node = &self.nodes[index];
        assert!(node.process.lock().unwrap().is_none(), "kill it first");
        self.spawn(node);
        self.wait_ready(node);
    }
}

/// A combined broker+controller. Single-node clusters replicate nothing; three-node clusters
/// keep three replicas of everything, internal topics included, and refuse `acks=all` writes
/// that fewer than two replicas have.
fn server_properties(
    id: usize,
    port: u16,
    controller: u16,
    voters: &str,
    data: &str,
    replicated: bool,
) -> String {
    let (replicas, min_isr) = if replicated { (3, 2) } else { (1, 1) };
    format!(
        "process.roles=broker,controller
node.id={id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data}
num.partitions=1
default.replication.factor={replicas}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=1
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
# A broker restarted after kill -9 re-registers once its old session expires (9 s by default).
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
num.replica.fetchers=1
group.coordinator.threads=1
share.coordinator.threads=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=8388608
"
    )
}
