//! A real `edgenlu serve` (the built binary, over a temporary store linking the real models)
//! under connection-level abuse: endless header lines, thousands of idle connections, more
//! connections than the cap. Throughout, the daemon's RSS stays under a stated bound, its
//! threads stay few, and `/healthz` keeps answering. Also: refused requests are in its access
//! log.

use edgenlu::bundled::{DEFAULT_DECODER, DEFAULT_ENCODER};
use edgenlu_tests::{
    build_snips_index_in, built_binary, free_addr, http, http_within, process_status_bytes,
    scratch_store, wait_ready,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The tests here measure the daemon's memory and threads, and open thousands of sockets:
/// one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const INDEX: &str = "serve-abuse-snips";

/// How long `/healthz` may take while the daemon is under abuse.
const HEALTH_WITHIN: Duration = Duration::from_secs(1);

/// A running `edgenlu serve` over a scratch store (removed when it is dropped), its stderr in
/// a file there.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    root: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// `edgenlu serve --index INDEX` with `args` besides.
    fn start(tag: &str, args: &[&str]) -> Daemon {
        let models = scratch_store(tag, &[DEFAULT_ENCODER, DEFAULT_DECODER]);
        build_snips_index_in(&models, INDEX, 2, "tests/serve_abuse.rs");
        let root = models.root().to_path_buf();
        let log = root.join("serve.log");
        let addr = free_addr();
        let mut child = Command::new(built_binary())
            .args(["serve", "--listen", &addr.to_string(), "--index", INDEX])
            .args(args)
            .env("EDGENLU_HOME", &root)
            .env_remove("EDGENLU_UPLINK_URL")
            .env_remove("EDGENLU_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting edgenlu serve");
        wait_ready(&mut child, addr);
        Daemon {
            child,
            addr,
            root,
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss(&self) -> usize {
        process_status_bytes(self.pid(), "VmRSS")
    }

    /// Its peak RSS since [`Self::reset_peak`].
    fn peak_rss(&self) -> usize {
        process_status_bytes(self.pid(), "VmHWM")
    }

    fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").expect("resetting VmHWM");
    }

    fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .unwrap()
            .count()
    }

    fn healthy_within(&self, within: Duration) -> Duration {
        let start = Instant::now();
        let (status, body) = http_within(self.addr, "GET", "/healthz", b"", within);
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        start.elapsed()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signals the child this test started and still owns (not yet waited for).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Polls `/healthz` every 50 ms until `stop`; returns the worst latency and the count.
fn poll_health(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Duration, usize)> {
    std::thread::spawn(move || {
        let (mut worst, mut polls) = (Duration::ZERO, 0);
        while !stop.load(Ordering::SeqCst) {
            let start = Instant::now();
            let (status, _) = http_within(addr, "GET", "/healthz", b"", HEALTH_WITHIN);
            assert_eq!(status, 200);
            worst = worst.max(start.elapsed());
            polls += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        (worst, polls)
    })
}

/// How one endless-header connection ended.
#[derive(Debug)]
struct Cut {
    sent: usize,
    status: Option<u16>,
}

/// Sends a request head whose header lines never end, until the server stops it or `give_up`
/// bytes went out; then reads what the server said.
fn endless_header_lines(addr: SocketAddr, give_up: usize) -> Cut {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sent = 0;
    let line = format!("X-Pad: {}\r\n", "a".repeat(1000));
    if s.write_all(b"POST /v1/nlu HTTP/1.1\r\nHost: x\r\n").is_ok() {
        while sent < give_up {
            if s.write_all(line.as_bytes()).is_err() {
                break;
            }
            sent += line.len();
        }
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let status = std::str::from_utf8(&answer)
        .ok()
        .and_then(|a| a.strip_prefix("HTTP/1.1 "))
        .and_then(|a| a.get(..3))
        .and_then(|c| c.parse().ok());
    Cut { sent, status }
}

/// Connections that send header lines without end are cut off at the header limit (431, or
/// closed), each long before it could grow the daemon's memory; the daemon's RSS stays
/// within 32 MiB of where it was and `/healthz` answers throughout. A head with too many
/// header fields is refused with 431 too.
#[test]
fn endless_header_lines_are_cut_off_at_the_header_limit() {
    const CONNECTIONS: usize = 32;
    /// A connection not stopped after this many bytes was not cut off.
    const GIVE_UP: usize = 8 << 20;
    const RSS_GROWTH: usize = 32 << 20;
    const ATTACK_FOR: Duration = Duration::from_secs(3);
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let daemon = Daemon::start("serve-abuse-headers", &[]);
    let addr = daemon.addr;
    daemon.healthy_within(HEALTH_WITHIN);
    let baseline = daemon.rss();
    daemon.reset_peak();
    let stop = Arc::new(AtomicBool::new(false));
    let health = poll_health(addr, stop.clone());
    let attackers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            std::thread::spawn(move || {
                // One endless head after another, for a while.
                let start = Instant::now();
                let mut cuts = Vec::new();
                while start.elapsed() < ATTACK_FOR {
                    cuts.push(endless_header_lines(addr, GIVE_UP));
                }
                cuts
            })
        })
        .collect();
    let cuts: Vec<Cut> = attackers
        .into_iter()
        .flat_map(|a| a.join().unwrap())
        .collect();
    stop.store(true, Ordering::SeqCst);
    let (worst_health, polls) = health.join().unwrap();
    let peak = daemon.peak_rss();

    // A complete head, but with more header fields than allowed.
    let many: String = (0..200).map(|i| format!("X-{i}: y\r\n")).collect();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);

    let most = cuts.iter().map(|c| c.sent).max().unwrap();
    let with_431 = cuts.iter().filter(|c| c.status == Some(431)).count();
    eprintln!(
        "{} endless heads on {CONNECTIONS} connections at once: each cut off after at most {} \
         KiB sent ({with_431} answered 431, the others closed); /healthz worst \
         {worst_health:?} over {polls} polls; RSS baseline {} MiB, peak {} MiB (bound {} MiB)",
        cuts.len(),
        most >> 10,
        baseline >> 20,
        peak >> 20,
        (baseline + RSS_GROWTH) >> 20
    );
    assert!(
        cuts.iter()
            .all(|c| c.sent < GIVE_UP && c.status.is_none_or(|s| s == 431)),
        "{cuts:?}"
    );
    assert!(polls > 10, "{polls} health polls");
    assert!(peak < baseline + RSS_GROWTH);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    daemon.healthy_within(HEALTH_WITHIN);
}

/// Whether the server closed `s` (end of stream or reset; anything it said first is read).
fn closed_by_server(mut s: &TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// 2,000 connections that never send a byte: the daemon holds them without a thread each
/// (its thread count does not grow), within a stated memory bound, answers `/healthz` while
/// they are open, and closes every one after the idle timeout.
#[test]
fn two_thousand_idle_connections_hold_no_threads_and_are_closed_when_idle() {
    const IDLE: usize = 2000;
    const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
    /// Memory per idle connection, at most: hyper's connection state and buffers.
    const PER_CONNECTION: usize = 16 << 10;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let daemon = Daemon::start(
        "serve-abuse-idle",
        &["--max-connections", "4096", "--idle-timeout-ms", "10000"],
    );
    let addr = daemon.addr;
    let (threads_before, baseline) = (daemon.threads(), daemon.rss());
    daemon.reset_peak();
    let opened = Instant::now();
    let mut worst_health = Duration::ZERO;
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        idle.push(TcpStream::connect(addr).expect("opening an idle connection"));
        if i % 250 == 249 {
            worst_health = worst_health.max(daemon.healthy_within(HEALTH_WITHIN));
        }
    }
    let open_for = opened.elapsed();
    let last_opened = Instant::now();
    // Give the daemon time to accept them all, well within the idle timeout.
    std::thread::sleep(Duration::from_millis(300));
    let threads_during = daemon.threads();
    worst_health = worst_health.max(daemon.healthy_within(HEALTH_WITHIN));
    for s in &idle {
        s.set_nonblocking(true).unwrap();
    }
    let still_open = idle.iter().filter(|s| !closed_by_server(s)).count();
    let peak = daemon.peak_rss();
    std::thread::sleep(
        (IDLE_TIMEOUT + Duration::from_secs(1)).saturating_sub(last_opened.elapsed()),
    );
    let closed = idle.iter().filter(|s| closed_by_server(s)).count();
    let bound = baseline + IDLE * PER_CONNECTION;
    eprintln!(
        "{IDLE} idle connections opened in {open_for:?}: {still_open} still open after \
         {:?}; threads {threads_before} before, {threads_during} during; RSS baseline {} MiB, \
         peak {} MiB (bound {} MiB); /healthz worst {worst_health:?}; {closed} closed by the \
         server after the idle timeout ({IDLE_TIMEOUT:?})",
        open_for + Duration::from_millis(300),
        baseline >> 20,
        peak >> 20,
        bound >> 20
    );
    assert!(
        open_for < IDLE_TIMEOUT - Duration::from_secs(3),
        "opening the connections took {open_for:?}: the idle check cannot tell"
    );
    assert_eq!(
        still_open, IDLE,
        "connections closed before the idle timeout"
    );
    assert!(
        threads_during <= threads_before,
        "{threads_before} -> {threads_during} threads"
    );
    assert!(peak < bound, "RSS peak {} MiB", peak >> 20);
    assert_eq!(closed, IDLE, "idle connections left open");
    daemon.healthy_within(HEALTH_WITHIN);
}

/// One connection past `--max-connections` is answered 503 and closed at once; when the
/// connections holding the cap go, new ones are served again.
#[test]
fn a_connection_past_the_cap_is_refused_with_503() {
    const CAP: usize = 16;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let daemon = Daemon::start(
        "serve-abuse-cap",
        &["--max-connections", "16", "--idle-timeout-ms", "1500"],
    );
    let held: Vec<TcpStream> = (0..CAP)
        .map(|_| TcpStream::connect(daemon.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // Answered without being read from: the answer comes before any request is sent.
    let start = Instant::now();
    let mut past = TcpStream::connect(daemon.addr).unwrap();
    past.set_read_timeout(Some(HEALTH_WITHIN)).unwrap();
    let mut answer = String::new();
    past.read_to_string(&mut answer).unwrap();
    eprintln!("past the cap of {CAP}, in {:?}: {answer}", start.elapsed());
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many connections"), "{answer}");
    // The idle timeout frees the cap.
    std::thread::sleep(Duration::from_millis(2000));
    daemon.healthy_within(HEALTH_WITHIN);
    drop(held);
    let (_, metrics) = http(daemon.addr, "GET", "/metrics", b"");
    assert!(metrics.contains("edgenlu_rejected_total 1"), "{metrics}");
}

/// A 4xx and a 5xx each leave a line in the access log, at warn (shown by default), with
/// method, path, status, duration and bytes.
#[test]
fn client_and_server_errors_are_in_the_access_log() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Every request waits longer than no time at all for a worker: 503.
    let daemon = Daemon::start("serve-abuse-log", &["--max-queue-wait-ms", "0"]);
    assert_eq!(http(daemon.addr, "GET", "/no-such-route", b"").0, 404);
    let (status, _) = http(
        daemon.addr,
        "POST",
        "/v1/nlu",
        br#"{"text": "play some jazz"}"#,
    );
    assert_eq!(status, 503);
    // The access log is written when the response body is done.
    std::thread::sleep(Duration::from_millis(200));
    let log = daemon.stderr();
    let line = |path: &str, status: u16| {
        log.lines()
            .find(|l| l.contains(path) && l.contains(&format!("status={status}")))
            .unwrap_or_else(|| panic!("no access log line for {path} {status}:\n{log}"))
            .to_string()
    };
    for (path, status) in [("/no-such-route", 404), ("/v1/nlu", 503)] {
        let l = line(path, status);
        eprintln!("{l}");
        assert!(l.contains("WARN"), "{l}");
        assert!(l.contains("edgenlu_serve::access"), "{l}");
        assert!(l.contains("ms=") && l.contains("bytes="), "{l}");
    }
}
