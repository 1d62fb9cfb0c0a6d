//! Runs the interoperability script with the real Python `confluent-kafka` client.

/// Runs `tests/python/confluent_interop.py ARGS` with `stdin`; returns its stdout.
pub fn python(args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/confluent_interop.py"
        ))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with confluent-kafka (.ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
