//! A real OCI registry for the tests (Debian's `docker-registry`, CNCF distribution 2.8, from
//! `scripts/registry.sh`) on a free loopback port with its storage in a temporary directory,
//! and a proxy in front of it that breaks blob downloads off, to test resumption.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The registry binary: `$EDGENLU_REGISTRY_BIN`, else where `scripts/registry.sh` unpacks it.
fn registry_binary() -> PathBuf {
    let bin = std::env::var_os("EDGENLU_REGISTRY_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| {
                PathBuf::from(h).join(".cache/edgenlu/registry/debian/usr/bin/docker-registry")
            })
        })
        .expect("HOME or EDGENLU_REGISTRY_BIN");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/registry.sh (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A running `docker-registry` on loopback; killed and its storage removed when dropped.
pub struct Registry {
    dir: PathBuf,
    addr: SocketAddr,
    child: Option<Child>,
}

impl Registry {
    /// Starts a registry with empty storage on a free loopback port and waits until `/v2/`
    /// answers.
    pub fn start() -> Registry {
        Registry::start_configured(|_| String::new())
    }

    /// [`start`](Self::start) with HTTP basic authentication: `htpasswd` holds its users
    /// (`user:bcrypt-hash` lines).
    pub fn start_with_users(htpasswd: &str) -> Registry {
        Registry::start_configured(|dir| {
            let path = dir.join("htpasswd");
            std::fs::write(&path, htpasswd).expect("writing the htpasswd file");
            format!(
                "auth:\n  htpasswd:\n    realm: edgenlu-tests\n    path: {}\n",
                path.display()
            )
        })
    }

    /// Starts a registry whose config ends with what `extra` returns (given the registry's
    /// directory, to write files it names into).
    fn start_configured(extra: impl FnOnce(&Path) -> String) -> Registry {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "edgenlu-registry-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("storage")).expect("creating the registry's storage");
        let addr = crate::free_addr();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n{}",
            dir.join("storage").display(),
            extra(&dir)
        );
        std::fs::write(dir.join("config.yml"), config).expect("writing the registry's config");
        let mut registry = Registry {
            dir,
            addr,
            child: None,
        };
        registry.restart();
        registry
    }

    /// `host:port`, the registry part of a reference.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it stores repositories and blobs.
    pub fn storage(&self) -> PathBuf {
        self.dir.join("storage")
    }

    /// The file holding blob `digest` (`sha256:<hex>`) in the storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The OCI image manifest it holds for `repository:tag`, as JSON.
    pub fn manifest(&self, repository: &str, tag: &str) -> serde_json::Value {
        let path = format!("/v2/{repository}/manifests/{tag}");
        let (status, body) = self.oci_request("GET", &path, b"");
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("a JSON manifest")
    }

    /// Stores `manifest` (an OCI image manifest, as JSON) as `repository:tag`, as it is: how a
    /// test publishes a manifest no honest client would write.
    pub fn put_manifest(&self, repository: &str, tag: &str, manifest: &serde_json::Value) {
        let path = format!("/v2/{repository}/manifests/{tag}");
        let (status, body) = self.oci_request("PUT", &path, manifest.to_string().as_bytes());
        assert_eq!(status, 201, "PUT {path}: {body}");
    }

    /// One request with OCI manifest `Accept` and `Content-Type` headers; the status and body.
    fn oci_request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
        let mut s = TcpStream::connect(self.addr).expect("connecting to the registry");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: {OCI_MANIFEST}\r\n\
             Content-Type: {OCI_MANIFEST}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).expect("reading the response");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status");
        (status, body.to_string())
    }

    /// Kills it (as a crash would); storage and port are kept for [`restart`](Self::restart).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again (stopping it first if it runs) on the same port and storage, and waits
    /// until `/v2/` answers.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(self.dir.join("registry.log")).expect("the registry log");
        let child = Command::new(registry_binary())
            .arg("serve")
            .arg(self.dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the registry log"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "docker-registry exited ({status}): {}",
                    std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
                );
            }
            if TcpStream::connect(self.addr).is_ok()
                // 401: up, and asking for the credentials it was configured with.
                && matches!(crate::http(self.addr, "GET", "/v2/", b"").0, 200 | 401)
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "docker-registry did not answer /v2/ within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback proxy in front of a registry that cuts blob downloads (`GET .../blobs/...`)
/// longer than `after_bytes` off after that many bytes of their body: the first `times` of
/// them, or all of them.
/// Every other request passes through. Stops when dropped.
pub struct CuttingProxy {
    addr: SocketAddr,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
}

/// What a [`CuttingProxy`] did.
#[derive(Default)]
struct Counts {
    /// Blob responses cut off.
    cuts: AtomicUsize,
    /// Body bytes of blob responses passed on.
    blob_bytes: AtomicUsize,
}

/// How a [`CuttingProxy`] cuts.
#[derive(Debug, Clone, Copy)]
pub struct Cut {
    /// Body bytes of a blob response let through before the connection is closed.
    pub after_bytes: usize,
    /// How many blob responses to cut (None: every one).
    pub times: Option<usize>,
}

impl CuttingProxy {
    /// Starts a proxy to `upstream` on a free loopback port.
    pub fn start(upstream: SocketAddr, cut: Cut) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (counter, stopping) = (counts.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let _ = relay(client, upstream, cut, &counter);
                });
            }
        });
        CuttingProxy { addr, counts, stop }
    }

    /// `host:port`, the registry part of a reference through the proxy.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// How many blob responses it has cut off so far.
    pub fn cuts(&self) -> usize {
        self.counts.cuts.load(Ordering::SeqCst)
    }

    /// Body bytes of blob responses it passed on so far: a download resumed with range
    /// requests passes each byte once, one started over passes the cut-off part again.
    pub fn blob_bytes(&self) -> usize {
        self.counts.blob_bytes.load(Ordering::SeqCst)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Reads from `stream` until the end of an HTTP head; returns the head and any bytes after it.
fn read_head(stream: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The head with its `Connection` header replaced by `Connection: close`, so each connection
/// carries one request and its response.
fn one_request_per_connection(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// Relays one request from `client` to `upstream` and its response back, cutting it if it is
/// a blob download the proxy should cut.
fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    cut: Cut,
    counts: &Counts,
) -> std::io::Result<()> {
    let (head, body_start) = read_head(&mut client)?;
    let request_line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let is_blob_get = request_line.starts_with("GET ") && request_line.contains("/blobs/sha256:");
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(&one_request_per_connection(&head))?;
    server.write_all(&body_start)?;
    let (mut from_client, mut to_server) = (client.try_clone()?, server.try_clone()?);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
    });
    let (response_head, mut body) = read_head(&mut server)?;
    client.write_all(&response_head)?;
    let length = content_length(&response_head);
    let cutting = is_blob_get
        && length.is_some_and(|n| n > cut.after_bytes)
        && counts
            .cuts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                cut.times.is_none_or(|times| n < times).then_some(n + 1)
            })
            .is_ok();
    let limit = if cutting { cut.after_bytes } else { usize::MAX };
    let mut sent = 0usize;
    let mut chunk = vec![0u8; 16 << 10];
    while sent < limit {
        if body.is_empty() {
            let n = server.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        let take = body.len().min(limit - sent);
        client.write_all(&body[..take])?;
        if is_blob_get {
            counts.blob_bytes.fetch_add(take, Ordering::SeqCst);
        }
        sent += take;
        body.drain(..take);
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    Ok(())
}

/// The `Content-Length` of a response head, if it has one.
fn content_length(head: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(head).lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

/// Every file under `root` with its size and SHA-256, relative paths sorted: a store's state
/// to compare before and after a refused operation. Symbolic links are listed with their
/// targets, not followed (the linked real models are not the store's to change); the empty
/// lock files (`.lock`, `.index.lock`) a store takes its locks on are no state and are left out.
pub fn tree_listing(root: &Path) -> Vec<String> {
    use sha2::Digest;
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if matches!(entry.file_name().to_str(), Some(".lock" | ".index.lock")) {
                continue;
            }
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push(format!("{rel} -> {}", target.display()));
            } else if meta.is_dir() {
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                let hex: String = sha2::Sha256::digest(&bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                out.push(format!("{rel}  {}  {hex}", meta.len()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// A hostile "registry" on loopback: `/v2/` answers 200, and every other request gets a
/// manifest response whose body never ends (no length, bytes until the client hangs up).
/// Returns its address; it serves until the test process ends.
pub fn endless_manifest_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the endless server");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = endless_answer(client);
            });
        }
    });
    addr
}

fn endless_answer(mut client: TcpStream) -> std::io::Result<()> {
    let (head, _) = read_head(&mut client)?;
    if head.starts_with(b"GET /v2/ ") {
        return client
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    client.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n\
          Connection: close\r\n\r\n{\"schemaVersion\":2,\"annotations\":{\"a\":\"",
    )?;
    let filler = vec![b'a'; 64 << 10];
    loop {
        client.write_all(&filler)?;
    }
}
