//! `winre scan` / `disk info` / `verify` / `check` over URLs, against real servers started here:
//! nginx (HTTP range requests), moto (S3), Azurite (Azure page blobs) and a fault server
//! (tests/remote/fault_server.py). A scan over a URL must equal the scan of the same file on
//! disk, except for the source path and the read counters; faults must end in a retry or a clear
//! error, within --timeout. A server that cannot be started fails the test: nothing is skipped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

const AWS_ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing-secret-not-printed"),
    ("AWS_REGION", "us-east-1"),
    // Never ask an instance-metadata service: credentials are set above.
    ("AWS_EC2_METADATA_DISABLED", "true"),
];
/// Azurite's well-known development account (public, documented by Microsoft).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// fixtures/make-remote.sh's directory.
fn images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new("bash")
            .arg(root().join("fixtures/make-remote.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run fixtures/make-remote.sh");
        assert!(out.status.success(), "fixtures/make-remote.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).expect("UTF-8").trim())
    })
}

fn image(name: &str) -> String {
    images().join(name).display().to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A server process, killed (by its own id) when the test ends.
struct Server {
    child: Child,
    port: u16,
    name: &'static str,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Waits until the port accepts connections; panics (fails the test) after 60 s or if the
    /// process exits first.
    fn wait_ready(mut self) -> Self {
        let started = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return self;
            }
            if let Some(status) = self.child.try_wait().expect("poll the server") {
                panic!("{} exited before it listened ({status})", self.name);
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} did not listen on port {} within 60 s",
                self.name,
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn spawn(name: &'static str, port: u16, command: &mut Command) -> Server {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {name} (see .ci/run for how it is installed): {e}")
        });
    Server { child, port, name }.wait_ready()
}

/// nginx (Debian package) serving `dir` on a free port, with a config of its own (no root
/// needed; when run as root, its worker stays root to read the fixture cache, which is 0700).
fn nginx(dir: &Path) -> (Server, tempfile::TempDir) {
    let work = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let w = work.path().display();
    let conf = format!(
        "daemon off;\nuser root;\nworker_processes 1;\npid {w}/nginx.pid;\nerror_log {w}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {w}/body;\n  proxy_temp_path {w}/proxy;\n\
           fastcgi_temp_path {w}/fastcgi;\n  uwsgi_temp_path {w}/uwsgi;\n  scgi_temp_path {w}/scgi;\n\
           server {{\n    listen 127.0.0.1:{port};\n    root {};\n  }}\n}}\n",
        dir.display()
    );
    let path = work.path().join("nginx.conf");
    std::fs::write(&path, conf).expect("write nginx.conf");
    let nginx = ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("nginx");
    let server = spawn(
        "nginx",
        port,
        Command::new(nginx)
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(work.path())
            .stderr(Stdio::null()),
    );
    (server, work)
}

/// moto's S3 server (PyPI `moto[server]`; .ci/run installs it into fixtures/cache/pip).
fn moto() -> Server {
    let port = free_port();
    let mut command = Command::new("python3");
    command
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .env("PYTHONPATH", python_path())
        .stderr(Stdio::null());
    spawn("moto_server", port, &mut command)
}

fn python_path() -> String {
    let cached = root().join("fixtures/cache/pip");
    match std::env::var("PYTHONPATH") {
        Ok(p) if !p.is_empty() => format!("{}:{p}", cached.display()),
        _ => cached.display().to_string(),
    }
}

/// Azurite's blob service (npm `azurite`; .ci/run installs it into fixtures/cache/npm), in memory.
fn azurite() -> Server {
    let port = free_port();
    let local = root().join("fixtures/cache/npm/node_modules/.bin/azurite-blob");
    let program = if local.exists() {
        local
    } else {
        PathBuf::from("azurite-blob")
    };
    let mut command = Command::new(program);
    command
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        .args(["--inMemoryPersistence", "--silent", "--skipApiVersionCheck"])
        .current_dir(std::env::temp_dir())
        .stderr(Stdio::null());
    spawn("azurite-blob", port, &mut command)
}

/// tests/remote/fault_server.py serving `dir`.
fn fault_server(dir: &Path) -> Server {
    let work = tempfile::tempdir().expect("tempdir");
    let port_file = work.path().join("port");
    let mut child = Command::new("python3")
        .arg(root().join("tests/remote/fault_server.py"))
        .arg(dir)
        .arg(&port_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start fault_server.py");
    let started = Instant::now();
    let port = loop {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            break text.trim().parse::<u16>().expect("a port number");
        }
        if let Some(status) = child.try_wait().expect("poll") {
            panic!("fault_server.py exited ({status})");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "fault_server.py did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    Server {
        child,
        port,
        name: "fault_server.py",
    }
    .wait_ready()
}

fn upload(args: &[&str], env: &[(&str, &str)]) {
    let status = Command::new("python3")
        .arg(root().join("tests/remote/upload.py"))
        .args(args)
        .envs(env.iter().copied())
        .env("PYTHONPATH", python_path())
        .status()
        .expect("run upload.py");
    assert!(status.success(), "upload.py {args:?} failed");
}

fn winre(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run winre")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The scan's JSON without the fields that differ by where the image is read from.
fn comparable(mut report: Value) -> Value {
    let object = report.as_object_mut().expect("a JSON object");
    object["source"]
        .as_object_mut()
        .expect("source")
        .remove("path");
    object.remove("stats");
    report
}

fn scan_json(target: &str, extra: &[&str], env: &[(&str, &str)]) -> (Value, String) {
    let mut args = vec!["scan", "--json", "--stats", target];
    args.extend_from_slice(extra);
    let out = winre(&args, env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "winre scan {target}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let json = serde_json::from_str(text(&out.stdout).trim()).expect("one JSON object");
    (json, text(&out.stderr))
}

/// Scans `url` and the local `file`, and checks they agree and the remote one was cheap.
fn assert_same_as_local(url: &str, file: &str, extra: &[&str], env: &[(&str, &str)]) -> Value {
    let (local, _) = scan_json(file, &[], &[]);
    let (remote, stderr) = scan_json(url, extra, env);
    assert_eq!(remote["source"]["path"], url, "the report names the URL");
    let stats = remote["stats"].clone();
    let requests = stats["requests"]
        .as_u64()
        .expect("stats.requests for a URL");
    let fetched = stats["bytes_fetched"]
        .as_u64()
        .expect("stats.bytes_fetched");
    assert!(
        (1..=40).contains(&requests),
        "{requests} requests for {url}"
    );
    assert!(fetched <= 8 << 20, "{fetched} bytes fetched for {url}");
    assert!(
        stderr.contains(&format!("in {requests} requests")),
        "--stats names the requests: {stderr}"
    );
    assert_eq!(
        local["stats"].get("requests"),
        None,
        "no requests field for a local file"
    );
    assert_eq!(
        comparable(remote),
        comparable(local),
        "{url} scans like {file}"
    );
    stats
}

#[test]
fn nginx_range_requests_scan_info_verify_like_local_files() {
    let (server, _conf) = nginx(images());
    let base = server.url();
    for name in ["gpt-after.img", "gpt-after.vhdx", "demo.qcow2"] {
        assert_same_as_local(&format!("{base}/{name}"), &image(name), &[], &[]);
    }
    // disk info: the same container and partition report.
    let info = |target: &str| {
        let out = winre(&["disk", "info", "--json", target], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON")
    };
    assert_eq!(
        info(&format!("{base}/gpt-after.vhdx")),
        info(&image("gpt-after.vhdx"))
    );
    // verify: the same blob-by-blob result on the WIM.
    let verify = |target: &str| {
        let out = winre(&["verify", "--json", "--stats", target], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        (
            serde_json::from_slice::<Value>(&out.stdout).expect("JSON"),
            text(&out.stderr),
        )
    };
    let (remote, stderr) = verify(&format!("{base}/winre-5728.wim"));
    assert_eq!(remote, verify(&image("winre-5728.wim")).0);
    assert_eq!(remote["intact"], true);
    assert!(stderr.contains("requests"), "{stderr}");
    // check: exit codes as for a file.
    let out = winre(
        &[
            "check",
            "--min-version",
            "10.0.19041.1",
            &format!("{base}/demo.qcow2"),
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "the demo disk lacks free space: {}",
        text(&out.stdout)
    );
    // Not there: a clear 404 naming the URL.
    let missing = format!("{base}/no-such.vhd");
    let out = winre(&["scan", &missing], &[]);
    assert_eq!(out.status.code(), Some(2));
    let said = text(&out.stdout);
    assert!(
        said.contains("not found (HTTP 404)") && said.contains(&missing),
        "{said}"
    );
}

#[test]
fn s3_objects_in_moto_scan_like_local_files() {
    let server = moto();
    let endpoint = server.url();
    for name in ["demo.qcow2", "gpt-after.vhdx"] {
        upload(
            &[
                "s3",
                &endpoint,
                "images",
                &format!("disks/{name}"),
                &image(name),
            ],
            &AWS_ENV,
        );
    }
    let extra = ["--s3-endpoint", endpoint.as_str()];
    for name in ["demo.qcow2", "gpt-after.vhdx"] {
        assert_same_as_local(
            &format!("s3://images/disks/{name}"),
            &image(name),
            &extra,
            &AWS_ENV,
        );
    }
    let out = winre(
        &[
            "scan",
            "s3://images/disks/absent.vhd",
            "--s3-endpoint",
            &endpoint,
        ],
        &AWS_ENV,
    );
    assert_eq!(out.status.code(), Some(2));
    let said = text(&out.stdout);
    assert!(
        said.contains("s3://images/disks/absent.vhd") && said.contains("not found"),
        "{said}"
    );
    assert!(
        !said.contains("testing-secret-not-printed")
            && !text(&out.stderr).contains("testing-secret")
    );
}

#[test]
fn azure_page_blob_in_azurite_scans_like_the_local_vhd() {
    let server = azurite();
    let endpoint = format!("{}/{AZURITE_ACCOUNT}", server.url());
    let env = [("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)];
    upload(
        &[
            "azure-page",
            &endpoint,
            AZURITE_ACCOUNT,
            "vhds",
            "demo.vhd",
            &image("demo-fixed.vhd"),
        ],
        &env,
    );
    let url = format!("az://{AZURITE_ACCOUNT}/vhds/demo.vhd");
    let stats = assert_same_as_local(
        &url,
        &image("demo-fixed.vhd"),
        &["--az-endpoint", &endpoint],
        &env,
    );
    assert!(stats["requests"].as_u64().unwrap_or(0) >= 2);
    // A wrong key: access denied, said clearly, the key never printed.
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let out = winre(
        &["scan", &url, "--az-endpoint", &endpoint],
        &[("AZURE_STORAGE_ACCOUNT_KEY", wrong)],
    );
    assert_eq!(out.status.code(), Some(2));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        said.contains("access denied (HTTP 403)") && said.contains(&url),
        "{said}"
    );
    assert!(!said.contains(wrong), "{said}");
}

/// Runs a scan that must fail, within `limit`; returns everything it printed.
fn failing_scan(url: &str, extra: &[&str], limit: Duration) -> String {
    let started = Instant::now();
    let mut args = vec!["scan", url];
    args.extend_from_slice(extra);
    let out = winre(&args, &[]);
    let took = started.elapsed();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{url}: {said}");
    assert!(took < limit, "{url} took {took:?}, over {limit:?}: {said}");
    said
}

fn server_stats(server: &Server) -> Value {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    use std::io::{Read, Write};
    stream
        .write_all(b"GET /_stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let body = answer.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(body).expect("JSON stats")
}

#[test]
fn faults_are_retried_or_fail_clearly_within_the_timeout() {
    let server = fault_server(images());
    let base = server.url();
    let local = image("demo.qcow2");
    // 500 then 200, and a connection dropped mid-body once: retried, same result.
    let flaky = assert_same_as_local(&format!("{base}/flaky/demo.qcow2"), &local, &[], &[]);
    let plain = assert_same_as_local(&format!("{base}/ok/demo.qcow2"), &local, &[], &[]);
    assert_eq!(
        flaky["requests"].as_u64().expect("requests"),
        2 * plain["requests"].as_u64().expect("requests"),
        "each range answered 500 once, then served"
    );
    assert_same_as_local(&format!("{base}/drop-once/demo.qcow2"), &local, &[], &[]);

    // Failing for good: a clear error after the tries, never a hang.
    let said = failing_scan(
        &format!("{base}/always500/demo.qcow2"),
        &[],
        Duration::from_secs(20),
    );
    assert!(
        said.contains("failed after 4 tries") && said.contains("500"),
        "{said}"
    );
    let said = failing_scan(
        &format!("{base}/drop/demo.qcow2"),
        &[],
        Duration::from_secs(20),
    );
    assert!(said.contains("failed after 4 tries"), "{said}");

    // A server that stalls: cut off by --timeout.
    let said = failing_scan(
        &format!("{base}/stall/demo.qcow2"),
        &["--timeout", "2"],
        Duration::from_secs(8),
    );
    assert!(said.contains("2 s timeout"), "{said}");

    // 403 and 404 with a SAS-like query string: named, never printed.
    let secret = "sig=TopSecretSignature0123456789";
    let said = failing_scan(
        &format!("{base}/forbidden/demo.vhd?sv=2024-01-01&{secret}"),
        &[],
        Duration::from_secs(20),
    );
    assert!(said.contains("access denied (HTTP 403)"), "{said}");
    assert!(
        said.contains(&format!("{base}/forbidden/demo.vhd?REDACTED")),
        "{said}"
    );
    assert!(
        !said.contains("TopSecretSignature"),
        "the SAS signature leaked: {said}"
    );
    let said = failing_scan(
        &format!("{base}/missing/demo.vhd?{secret}"),
        &[],
        Duration::from_secs(20),
    );
    assert!(
        said.contains("not found (HTTP 404)") && !said.contains("TopSecret"),
        "{said}"
    );

    // A server that ignores Range: refused, not downloaded (it offers 1 GiB).
    let said = failing_scan(
        &format!("{base}/norange/demo.qcow2"),
        &[],
        Duration::from_secs(20),
    );
    assert!(said.contains("ignored the Range header"), "{said}");
    let sent = server_stats(&server)["norange"]["bytes_sent"]
        .as_u64()
        .expect("bytes_sent");
    assert!(
        sent < 64 << 20,
        "{sent} bytes of the whole-object answer were sent"
    );
}

#[test]
fn multi_file_and_differencing_images_are_refused_over_urls() {
    let (server, _conf) = nginx(images());
    let said = failing_scan(
        &format!("{}/demo.vmdk", server.url()),
        &[],
        Duration::from_secs(30),
    );
    assert!(
        said.contains("VMDK and E01 images are read from local files only"),
        "{said}"
    );
    let said = failing_scan(
        &format!("{}/child.qcow2", server.url()),
        &[],
        Duration::from_secs(30),
    );
    assert!(
        said.contains("parents are not fetched over a URL"),
        "{said}"
    );
}
