//! The stand-ins that tests and the local pipeline run in place of AWS and
//! the third-party APIs. This module starts DynamoDB Local, moto's server
//! (through `moto_server.py`) and the Lambda Runtime Interface Emulator,
//! installed (pinned) by `scripts/tools.sh` into `.tools/`; [`standin`] fakes
//! Slack and SmartLead, and [`limits`] enforces the real services' limits.
//!
//! Every process is bound to 127.0.0.1, logs to a file, and is killed when
//! its [`Service`] is dropped or when the process that started it exits
//! (`PR_SET_PDEATHSIG`), so a crashed test run leaves nothing behind.

pub mod limits;
pub mod standin;
pub use standin::{Recorded, Scripted, StandIn};

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{what} is not installed at {path}: run `scripts/tools.sh` (the test and local commands do)")]
    NotInstalled { what: &'static str, path: PathBuf },
    #[error("could not start {what}: {source}")]
    Spawn {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{what} exited during start-up ({status}); last log lines:\n{log}")]
    Exited {
        what: &'static str,
        status: String,
        log: String,
    },
    #[error("{what} did not answer on 127.0.0.1:{port} within {secs}s; last log lines:\n{log}")]
    Timeout {
        what: &'static str,
        port: u16,
        secs: u64,
        log: String,
    },
    #[error("port {port} is already in use: {what} cannot listen there (choose another port)")]
    PortInUse { what: &'static str, port: u16 },
}

impl StartError {
    /// The port was taken by someone else between choosing and binding it:
    /// worth another try on another port.
    pub fn is_port_clash(&self) -> bool {
        match self {
            StartError::PortInUse { .. } => true,
            StartError::Exited { log, .. } => {
                let l = log.to_ascii_lowercase();
                l.contains("address already in use") || l.contains("bindexception")
            }
            _ => false,
        }
    }
}

/// How many ports [`start_on_free_port`] tries.
const START_TRIES: usize = 8;

/// Starts a service with `start` on a port chosen by [`free_port`], and on
/// another one whenever that port was taken before the service bound it
/// (another process can take any port between the choice and the bind).
pub fn start_on_free_port(
    start: impl Fn(u16) -> Result<Service, StartError>,
) -> Result<Service, StartError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match start(free_port()) {
            Err(e) if e.is_port_clash() && tries < START_TRIES => continue,
            other => return other,
        }
    }
}

/// DynamoDB Local, in memory, on a port of its own.
pub fn start_dynamodb_any() -> Result<Service, StartError> {
    start_on_free_port(start_dynamodb)
}

/// moto's server on a port of its own.
pub fn start_moto_any() -> Result<Service, StartError> {
    start_on_free_port(start_moto)
}

/// The Lambda RIE running `bootstrap` on a port of its own.
pub fn start_rie_any(bootstrap: &Path, env: &[(String, String)]) -> Result<Service, StartError> {
    start_on_free_port(|port| start_rie(bootstrap, port, env, RIE_READY))
}

/// Inodes of the sockets listening on TCP `port` (any address, v4 or v6).
fn listening_inodes(port: u16) -> Vec<String> {
    let want = format!(":{port:04X}");
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address, state (0A = LISTEN), inode
            if cols.len() > 9 && cols[1].ends_with(&want) && cols[3] == "0A" {
                out.push(cols[9].to_owned());
            }
        }
    }
    out
}

/// Whether the process `pid` or one of its descendants holds one of `inodes`.
fn holds_socket(pid: u32, inodes: &[String]) -> bool {
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{p}/fd")) {
            for fd in fds.flatten() {
                if let Ok(target) = std::fs::read_link(fd.path()) {
                    let t = target.to_string_lossy();
                    if inodes.iter().any(|i| {
                        t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) == Some(i)
                    }) {
                        return true;
                    }
                }
            }
        }
        todo.extend(children(p));
    }
    false
}

/// The folder `scripts/tools.sh` installs into.
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SMARTLEAD_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    crate::root().join(".tools")
}

/// A port that was free a moment ago, never handed out before by this
/// process, and below Linux's ephemeral range (32768+), so that neither a
/// concurrent test nor an outgoing connection takes it before the service
/// binds it.
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `n` consecutive ports, as [`free_port`] gives one.
pub fn free_ports(n: u16) -> u16 {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    let Ok(mut given) = given.lock() else {
        return 0;
    };
    // Different processes (CI runs, a local stack) start at different places.
    let mut x = (std::process::id() as u64).wrapping_mul(2_654_435_761) ^ given.len() as u64;
    for _ in 0..2000 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let port = 20_000 + ((x >> 33) % 12_000) as u16;
        let block = port..port.saturating_add(n.max(1));
        if block
            .clone()
            .all(|p| !given.contains(&p) && !port_in_use(p))
        {
            given.extend(block);
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

pub fn port_in_use(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_err()
}

/// A running local service. Dropping it kills the process.
#[derive(Debug)]
pub struct Service {
    pub name: &'static str,
    pub port: u16,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Service {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
    /// Stops the process now (to simulate an outage).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

fn log_dir() -> PathBuf {
    let dir = std::env::var_os("SMARTLEAD_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("smartlead-local"));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn tail(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Spawns `cmd` so that it dies with this process, from a helper thread that
/// lives as long as the process (PDEATHSIG fires when the *thread* that
/// forked exits, and test threads come and go).
fn spawn_tied(mut cmd: Command) -> std::io::Result<Child> {
    use std::sync::{Mutex, OnceLock};
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("standins-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    });
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    tx.lock()
        .map_err(|_| std::io::Error::other("spawner poisoned"))?
        .send((cmd, reply_tx))
        .map_err(|_| std::io::Error::other("spawner gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("spawner gone"))?
}

fn start(
    what: &'static str,
    mut cmd: Command,
    port: u16,
    timeout: Duration,
) -> Result<Service, StartError> {
    if port_in_use(port) {
        return Err(StartError::PortInUse { what, port });
    }
    let log = log_dir().join(format!(
        "{}-{port}.log",
        what.replace(' ', "-").to_lowercase()
    ));
    let out = std::fs::File::create(&log).map_err(|source| StartError::Spawn { what, source })?;
    let err = out
        .try_clone()
        .map_err(|source| StartError::Spawn { what, source })?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let child = spawn_tied(cmd).map_err(|source| StartError::Spawn { what, source })?;
    let mut svc = Service {
        name: what,
        port,
        log,
        child: Some(child),
    };
    if timeout.is_zero() {
        return Ok(svc);
    }
    let deadline = Instant::now() + timeout;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    loop {
        if let Some(Ok(Some(status))) = svc.child.as_mut().map(|c| c.try_wait()) {
            return Err(StartError::Exited {
                what,
                status: status.to_string(),
                log: tail(&svc.log),
            });
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            // Answered, but by whom? Another process may have taken the port
            // first; then ours cannot bind it and this is not our service.
            let inodes = listening_inodes(port);
            let ours = svc.pid().is_some_and(|pid| holds_socket(pid, &inodes));
            if ours || inodes.is_empty() {
                return Ok(svc);
            }
            svc.stop();
            return Err(StartError::PortInUse { what, port });
        }
        if Instant::now() > deadline {
            let log = tail(&svc.log);
            svc.stop();
            return Err(StartError::Timeout {
                what,
                port,
                secs: timeout.as_secs(),
                log,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn installed(what: &'static str, path: PathBuf) -> Result<PathBuf, StartError> {
    if path.exists() {
        Ok(path)
    } else {
        Err(StartError::NotInstalled { what, path })
    }
}

/// DynamoDB Local, in memory, on 127.0.0.1:`port`.
pub fn start_dynamodb(port: u16) -> Result<Service, StartError> {
    start_dynamodb_in(port, None)
}

/// DynamoDB Local on 127.0.0.1:`port`, in memory, or kept in `dir` so that
/// its data outlives a restart (the fault tests stop and start it).
pub fn start_dynamodb_in(port: u16, dir: Option<&Path>) -> Result<Service, StartError> {
    let home = tools_dir().join("dynamodb");
    let jar = installed("DynamoDB Local", home.join("DynamoDBLocal.jar"))?;
    let java = std::env::var_os("JAVA").unwrap_or_else(|| "java".into());
    let mut cmd = Command::new(java);
    cmd.arg(format!(
        "-Djava.library.path={}",
        home.join("DynamoDBLocal_lib").display()
    ))
    .args([
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseSerialGC",
        "-Xmx512m",
        "-jar",
    ])
    .arg(jar);
    match dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|source| StartError::Spawn {
                what: "DynamoDB Local",
                source,
            })?;
            cmd.arg("-dbPath").arg(d);
        }
        None => {
            cmd.arg("-inMemory");
        }
    }
    cmd.args(["-sharedDb", "-disableTelemetry", "-port"])
        .arg(port.to_string())
        .current_dir(&home);
    start("DynamoDB Local", cmd, port, Duration::from_secs(60))
}

/// moto's server (SQS, S3, SSM, EventBridge, SNS, CloudFormation,
/// CloudWatch) on 127.0.0.1:`port`.
pub fn start_moto(port: u16) -> Result<Service, StartError> {
    start_moto_on("127.0.0.1", port)
}

/// moto's server on `host`:`port` (`0.0.0.0` lets `sam local`'s containers
/// reach it through the Docker host, as they reach DynamoDB Local), with
/// the CloudFormation alarms moto lacks (`moto_server.py`).
pub fn start_moto_on(host: &str, port: u16) -> Result<Service, StartError> {
    installed("moto_server", tools_dir().join("venv/bin/moto_server"))?;
    let python = installed("moto's python", tools_dir().join("venv/bin/python"))?;
    let mut cmd = Command::new(python);
    cmd.args(["-c", include_str!("moto_server.py"), "-H", host, "-p"])
        .arg(port.to_string());
    start("moto server", cmd, port, Duration::from_secs(60))
}

fn rie_command(
    bootstrap: &Path,
    port: u16,
    env: &[(String, String)],
) -> Result<Command, StartError> {
    let rie = installed("Lambda RIE", tools_dir().join("aws-lambda-rie"))?;
    let bootstrap = installed("function binary", bootstrap.to_path_buf())?;
    let api_port = free_port();
    let mut cmd = Command::new(rie);
    cmd.arg("--runtime-interface-emulator-address")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--runtime-api-address")
        .arg(format!("127.0.0.1:{api_port}"))
        .arg(bootstrap)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_FUNCTION_TIMEOUT", "30");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ok(cmd)
}

/// How long [`start_rie`] waits at most for the emulator's port.
pub const RIE_READY: Duration = Duration::from_secs(20);

/// The Lambda Runtime Interface Emulator running `bootstrap`, answering
/// invokes on `POST http://127.0.0.1:<port>/2015-03-31/functions/function/invocations`.
/// Returns once the port answers (waiting `wait` at most: [`RIE_READY`];
/// `Duration::ZERO` returns right after the spawn, for timing a cold start
/// from process start); the emulator starts `bootstrap` at the first
/// invoke, as Lambda does.
pub fn start_rie(
    bootstrap: &Path,
    port: u16,
    env: &[(String, String)],
    wait: Duration,
) -> Result<Service, StartError> {
    let cmd = rie_command(bootstrap, port, env)?;
    start("Lambda RIE", cmd, port, wait)
}

/// Processes whose parent is `pid` (e.g. the `bootstrap` under the RIE).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    // "pid (comm) state ppid ...": comm may hold spaces.
                    let rest = &s[s.rfind(')')? + 2..];
                    rest.split(' ').nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Peak resident set size (VmHWM) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Invoke URL of a function running under [`start_rie`].
pub fn rie_invoke_url(svc: &Service) -> String {
    format!(
        "{}/2015-03-31/functions/function/invocations",
        svc.endpoint()
    )
}

/// The binary to run for a template function: the cargo-built one, or, when
/// `SAM_BUILD_DIR` is set (e.g. `.aws-sam/build`), the `bootstrap` that
/// `sam build` made for `logical_id`. A set but missing one panics: a test
/// must not quietly fall back to another binary.
pub fn function_binary(logical_id: &str, cargo_built: &Path) -> PathBuf {
    match std::env::var_os("SAM_BUILD_DIR") {
        Some(dir) => {
            let p = Path::new(&dir).join(logical_id).join("bootstrap");
            assert!(
                p.is_file(),
                "SAM_BUILD_DIR is set but {} is missing: run `sam build` first",
                p.display()
            );
            p
        }
        None => cargo_built.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_is_found_and_told_apart_by_owner() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let inodes = listening_inodes(port);
        assert!(!inodes.is_empty(), "the listener shows in /proc/net/tcp");
        assert!(holds_socket(std::process::id(), &inodes));
        // Another process (a child that opened nothing) does not hold it.
        let mut other = Command::new("sleep").arg("5").spawn().expect("sleep");
        assert!(!holds_socket(other.id(), &inodes));
        let _ = other.kill();
        let _ = other.wait();
    }

    #[test]
    fn a_service_whose_port_is_taken_starts_on_another() {
        if !tools_dir().join("venv/bin/moto_server").exists() {
            panic!("moto is not installed: run scripts/tools.sh (the test command does)");
        }
        // Someone else holds the port the first attempt is given.
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let first = std::sync::atomic::AtomicBool::new(true);
        let svc = start_on_free_port(|p| {
            let p = if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                port
            } else {
                p
            };
            start_moto(p)
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(svc.port, port);
        assert!(TcpStream::connect(("127.0.0.1", svc.port)).is_ok());
    }
}
