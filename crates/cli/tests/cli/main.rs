//! End-to-end tests of the `berth` binary: banner, demo, flags, signals and
//! the errors a new user meets first.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test on unexpected errors"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod admin;
mod config;
mod trace;

fn berth() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.env("RUST_LOG", "info");
    // Keep the compilation cache of tests out of the user's home.
    cmd.env(
        "BERTH_CACHE_DIR",
        std::env::temp_dir().join(format!("berth-cli-cache-{}", std::process::id())),
    );
    cmd
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../guests/prebuilt/{name}.wasm"))
}

/// A `berth serve` process; killed if the test fails before stopping it.
struct Served {
    child: Child,
    addr: String,
    /// What berth logged before the banner.
    startup_log: String,
    stderr: BufReader<std::process::ChildStderr>,
}

impl Served {
    fn start(args: &[&str]) -> Self {
        Self::start_with_env(&[], args)
    }

    /// Like [`Served::start`], with extra environment variables.
    fn start_with_env(env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut child = berth()
            .envs(env.iter().copied())
            .arg("serve")
            .args(args)
            .args(["--addr", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("berth starts");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        let mut startup_log = String::new();
        let addr = loop {
            line.clear();
            if stderr.read_line(&mut line).expect("read stderr") == 0 {
                panic!("berth exited before listening:\n{startup_log}");
            }
            if let Some(rest) = line.trim().strip_prefix("Serving HTTP on http://") {
                break rest.trim_end_matches('/').to_owned();
            }
            startup_log.push_str(&line);
        };
        Self {
            child,
            addr,
            startup_log,
            stderr,
        }
    }

    fn get(&self, path: &str) -> String {
        self.get_from(&self.addr, path)
    }

    /// GET `path` with `host` as the Host header.
    fn get_from(&self, host: &str, path: &str) -> String {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // HTTP/1.0: the body is close-delimited, so no chunk framing to parse.
        write!(stream, "GET {path} HTTP/1.0\r\nhost: {host}\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read response");
        response
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    fn wait(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().expect("wait");
        let mut rest = String::new();
        let _ = self.stderr.read_to_string(&mut rest);
        (status, rest)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serves_the_demo_and_exits_cleanly_on_sigterm() {
    let served = Served::start(&[]);
    assert!(served.addr.starts_with("127.0.0.1:") && !served.addr.ends_with(":0"));
    let response = served.get("/hello?from=test");
    assert!(response.starts_with("HTTP/1.0 200 OK"), "{response}");
    assert!(
        response.contains("berth is serving a wasi:http component"),
        "{response}"
    );
    assert!(
        response.contains("<code>/hello?from=test</code>"),
        "{response}"
    );
    served.signal("TERM");
    let (status, log) = served.wait();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(
        log.contains("GET /hello?from=test 200"),
        "no access log line:\n{log}"
    );
}

#[test]
fn sigint_also_stops_the_server() {
    let served = Served::start(&[fixture("suite").to_str().unwrap()]);
    assert!(served.get("/hello").contains("hello from berth"));
    served.signal("INT");
    let (status, _) = served.wait();
    assert!(status.success());
}

#[test]
fn env_flags_reach_the_guest_and_stdout_reaches_the_log() {
    let served = Served::start(&[
        fixture("suite").to_str().unwrap(),
        "--env",
        "A=1",
        "--env",
        "B=x=y",
    ]);
    let response = served.get("/env");
    assert!(response.ends_with("A=1\nB=x=y\nargs=0\n"), "{response}");
    assert!(served.get("/stdio").contains("stdin=0"));
    served.signal("TERM");
    let (_, log) = served.wait();
    assert!(log.contains("line one from the guest"), "{log}");
    assert!(log.contains("partial line two"), "{log}");
    // Control characters from guests are escaped, never sent raw.
    assert!(log.contains("\\u{1b}[31m"), "{log}");
    assert!(log.contains("request_id="), "{log}");
}

fn serve_error(path: &std::path::Path) -> String {
    let output = berth()
        .arg("serve")
        .arg(path)
        .args(["--addr", "127.0.0.1:0"])
        .output()
        .expect("berth runs");
    assert!(
        !output.status.success(),
        "berth accepted {}",
        path.display()
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("berth-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn missing_file_is_a_clear_error() {
    let err = serve_error(std::path::Path::new("/nonexistent/app.wasm"));
    assert!(
        err.contains("cannot read component /nonexistent/app.wasm"),
        "{err}"
    );
    assert!(
        err.contains("expected a path to a WebAssembly component"),
        "{err}"
    );
}

#[test]
fn core_module_is_a_clear_error() {
    let path = temp_file("core.wasm", b"\0asm\x01\0\0\0");
    let err = serve_error(&path);
    assert!(
        err.contains("is a core WebAssembly module, not a component"),
        "{err}"
    );
    assert!(err.contains("wasm32-wasip2"), "{err}");
}

#[test]
fn a_component_over_the_size_limit_is_refused_before_compiling() {
    // 2 MiB that would not compile either: the size is what is reported.
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.resize(2 << 20, 0xff);
    let path = temp_file("big.wasm", &bytes);
    let output = berth()
        .arg("serve")
        .arg(&path)
        .args(["--addr", "127.0.0.1:0", "--max-component-mib", "1"])
        .output()
        .expect("berth runs");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{err}");
    assert!(
        err.contains("is 2097152 bytes, more than the 1048576-byte limit on components"),
        "{err}"
    );
    // The same file under the default limit gets as far as compiling.
    let err = serve_error(&path);
    assert!(!err.contains("limit on components"), "{err}");
}

#[test]
fn non_wasm_file_is_a_clear_error() {
    let path = temp_file("text.wasm", b"hello, I am text");
    let err = serve_error(&path);
    assert!(err.contains("is not a WebAssembly file"), "{err}");
}

#[test]
fn component_without_http_handler_is_a_clear_error() {
    let err = serve_error(&fixture("command"));
    assert!(err.contains("does not export a wasi:http handler"), "{err}");
    assert!(
        err.contains("wasi:cli/run@0.2"),
        "should name what was found: {err}"
    );
}

#[test]
fn serves_a_wasi_http_0_3_middleware_chain_and_logs_the_worlds() {
    let served = Served::start(&[
        fixture("p3-mw-header").to_str().unwrap(),
        fixture("p3-mw-upper").to_str().unwrap(),
        fixture("p3-suite").to_str().unwrap(),
    ]);
    assert!(
        served.startup_log.contains(
            "wasi:http@0.3.0 middleware -> wasi:http@0.3.0 middleware -> wasi:http@0.3.0 service"
        ),
        "{}",
        served.startup_log
    );
    let response = served.get("/");
    assert!(response.contains("x-middleware: upper"), "{response}");
    assert!(
        response.ends_with("HELLO FROM THE WASI:HTTP@0.3.0 SUITE\n"),
        "{response}"
    );
    served.signal("TERM");
    let (status, _) = served.wait();
    assert!(status.success());
}

#[test]
fn a_chain_that_does_not_fit_is_refused_at_startup() {
    let output = berth()
        .arg("serve")
        .arg(fixture("p3-suite"))
        .arg(fixture("p3-hello"))
        .args(["--addr", "127.0.0.1:0"])
        .output()
        .expect("berth runs");
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("invalid component chain"), "{err}");
    assert!(
        err.contains("p3-suite.wasm is a wasi:http@0.3.0 service"),
        "{err}"
    );
}

#[test]
fn address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = berth().args(["serve", "--addr", &addr]).output().unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

/// Peak resident memory of a process, from /proc (Linux).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// Streams 1 GiB through the echo guest and back: nothing buffers whole
/// bodies, so the server's peak RSS stays under 100 MiB.
#[test]
fn echo_of_one_gib_keeps_server_memory_bounded() {
    const TOTAL: u64 = 1 << 30;
    let served = Served::start(&[
        fixture("suite").to_str().unwrap(),
        "--cpu-time-limit-ms",
        "600000",
        "--wall-time-limit-ms",
        "600000",
    ]);
    let mut stream = TcpStream::connect(&served.addr).unwrap();
    let mut reader = stream.try_clone().unwrap();
    let addr = served.addr.clone();
    let writer = std::thread::spawn(move || {
        write!(
            stream,
            "POST /echo HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {TOTAL}\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let chunk = vec![0x5au8; 64 * 1024];
        let mut sent = 0;
        while sent < TOTAL {
            stream.write_all(&chunk).unwrap();
            sent += chunk.len() as u64;
        }
    });
    // Read the head, then count body bytes until the server closes.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        reader.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains(&format!("content-length: {TOTAL}")), "{head}");
    let mut received = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(
            buf[..n].iter().all(|b| *b == 0x5a),
            "echo corrupted the body"
        );
        received += n as u64;
    }
    writer.join().unwrap();
    assert_eq!(received, TOTAL);
    let peak = peak_rss_kib(served.child.id());
    assert!(
        peak < 100 * 1024,
        "server peak RSS {peak} KiB for a 1 GiB echo"
    );
}

/// A one-thread HTTP/1.1 origin answering every request with `origin ok`.
fn tiny_origin() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\norigin ok\n",
            );
        }
    });
    addr
}

#[test]
fn allow_outbound_flag_opens_egress_to_exactly_that_destination() {
    let origin = tiny_origin();
    let upstream = format!("UPSTREAM=http://{origin}");
    let proxy = fixture("proxy");

    let allowed = Served::start(&[
        proxy.to_str().unwrap(),
        "--env",
        &upstream,
        "--allow-outbound",
        &origin,
    ]);
    let response = allowed.get("/through");
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.ends_with("origin ok\n"), "{response}");

    let denied = Served::start(&[proxy.to_str().unwrap(), "--env", &upstream]);
    let response = denied.get("/through");
    assert!(response.starts_with("HTTP/1.0 502"), "{response}");
    assert!(
        response.ends_with("upstream error: ErrorCode::HttpRequestDenied\n"),
        "{response}"
    );
}

#[test]
fn compile_prefills_the_cache_that_serve_then_hits() {
    let dir = std::env::temp_dir().join(format!("berth-cli-aot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let suite = fixture("suite");
    let (suite, dir_arg) = (suite.to_str().unwrap(), dir.to_str().unwrap());
    let output = berth()
        .args(["compile", suite, "--cache-dir", dir_arg])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("cached: "), "{err}");
    // One entry, beside the cache's MAC key.
    let entries = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect::<Vec<_>>()
    };
    assert_eq!(entries().len(), 1);
    assert!(dir.join("mac.key").is_file());

    let served = Served::start(&[suite, "--cache-dir", dir_arg]);
    assert!(
        served.startup_log.contains("cache=Hit"),
        "{}",
        served.startup_log
    );
    assert!(served.get("/hello").contains("hello from berth"));
    drop(served);

    // A corrupted entry is recompiled and replaced, never trusted.
    let entry = entries().remove(0);
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&entry, &bytes).unwrap();
    let served = Served::start(&[suite, "--cache-dir", dir_arg]);
    assert!(
        served.startup_log.contains("cache=Replaced"),
        "{}",
        served.startup_log
    );
    assert!(served.get("/hello").contains("hello from berth"));
    drop(served);

    let again = berth()
        .args(["compile", suite, "--cache-dir", dir_arg])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stderr).contains("already cached"));

    // A cache others may write is refused: `compile` says why, `serve`
    // compiles in memory.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let refused = berth()
            .args(["compile", suite, "--cache-dir", dir_arg])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{err}");
        assert!(
            err.contains("refusing the cache") && err.contains("writable by group or others"),
            "{err}"
        );
        let served = Served::start(&[suite, "--cache-dir", dir_arg]);
        assert!(
            served.startup_log.contains("cache=Untrusted"),
            "{}",
            served.startup_log
        );
        assert!(served.get("/hello").contains("hello from berth"));
    }
}

#[test]
fn compile_pre_init_fills_the_cache_that_serve_pre_init_hits() {
    let dir = std::env::temp_dir().join(format!("berth-cli-preinit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let heavy = fixture("heavy-init");
    let (heavy, dir_arg) = (heavy.to_str().unwrap(), dir.to_str().unwrap());
    let output = berth()
        .args(["compile", "--pre-init", heavy, "--cache-dir", dir_arg])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("pre-initialised"), "{err}");
    assert!(err.contains("cached: "), "{err}");

    // The snapshot is served from the cache: start-up does not run again.
    let served = Served::start(&["--pre-init", heavy, "--cache-dir", dir_arg]);
    let log = &served.startup_log;
    assert!(log.contains("cache=Hit pre_init=true"), "{log}");
    assert!(!log.contains("pre-initialised"), "{log}");
    assert!(served.get("/").contains("built-here: no"));
    drop(served);

    // Without --pre-init the plain component is compiled apart.
    let served = Served::start(&[heavy, "--cache-dir", dir_arg]);
    assert!(
        served.startup_log.contains("cache=Stored"),
        "{}",
        served.startup_log
    );
    assert!(served.get("/").contains("built-here: yes"));
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pre_init_of_a_component_without_a_start_up_export_is_a_clear_error() {
    let output = berth()
        .args(["serve", "--pre-init", "--no-cache", "--addr", "127.0.0.1:0"])
        .arg(fixture("suite"))
        .output()
        .expect("berth runs");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{err}");
    assert!(err.contains("could not be pre-initialised"), "{err}");
    assert!(
        err.contains("does not export `wizer-initialize: func()`"),
        "{err}"
    );
    // Each cause is said once.
    assert_eq!(err.matches("wizer-initialize").count(), 1, "{err}");
}

/// `berth run` with the given arguments; stdin is `input`.
fn run(args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = berth()
        .arg("run")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("berth runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().expect("berth finishes")
}

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn run_passes_arguments_and_environment_and_exits_with_the_guest_code() {
    // wasi:cli/exit@0.2 carries success or failure only: a 0.2 command
    // exiting with any non-zero code exits 1.
    let probe = fixture("run-probe");
    let output = run(
        &[
            "--env",
            "GREETING=hej",
            probe.to_str().unwrap(),
            "env",
            "7",
            "--flag",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        stdout_of(&output),
        "args=[\"env\", \"7\", \"--flag\"]\nGREETING=Some(\"hej\")\n"
    );
    let ok = run(&[probe.to_str().unwrap(), "env", "0"], b"");
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert!(stdout_of(&ok).contains("GREETING=None"), "{ok:?}");
}

#[test]
fn run_inherits_stdio() {
    let probe = fixture("run-probe");
    let output = run(&[probe.to_str().unwrap(), "stdin"], b"through stdin\n");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout_of(&output), "through stdin\n");
    // Without RUST_LOG, berth's own info lines stay off the command's stderr.
    let quiet = berth()
        .env_remove("RUST_LOG")
        .args(["run", probe.to_str().unwrap(), "env", "0"])
        .output()
        .unwrap();
    assert!(quiet.status.success(), "{quiet:?}");
    assert_eq!(String::from_utf8_lossy(&quiet.stderr), "");
}

#[test]
fn run_preopens_only_the_directories_given() {
    let dir = std::env::temp_dir().join(format!("berth-run-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("in.txt"), "shout\n").unwrap();
    let probe = fixture("run-probe");
    let mapping = format!("{}::/data", dir.display());
    let output = run(&["--dir", &mapping, probe.to_str().unwrap(), "fs"], b"");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        std::fs::read_to_string(dir.join("out.txt")).unwrap(),
        "SHOUT\n"
    );
    // Without --dir there is no /data: the guest panics (a trap, 134).
    let output = run(&[probe.to_str().unwrap(), "fs"], b"");
    assert_eq!(output.status.code(), Some(134), "{output:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_reports_a_trap_on_stderr_and_exits_non_zero() {
    let probe = fixture("run-probe");
    let output = run(&[probe.to_str().unwrap(), "trap"], b"");
    assert_eq!(output.status.code(), Some(134), "{output:?}");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("run-probe.wasm trapped"), "{err}");
    assert!(err.contains("run-probe traps on purpose"), "{err}");
}

#[test]
fn run_sends_http_through_berths_client_under_the_egress_flags() {
    let origin = tiny_origin();
    for command in ["run-probe", "p3-run"] {
        let wasm = fixture(command);
        let mut args = vec![wasm.to_str().unwrap()];
        if command == "run-probe" {
            args.push("http");
        }
        args.extend([origin.as_str(), "/x"]);
        // Denied by default, with berth's error code.
        let denied = run(&args, b"");
        assert!(!denied.status.success(), "{command}: {denied:?}");
        assert!(
            stdout_of(&denied).contains("error=ErrorCode::HttpRequestDenied"),
            "{command}: {denied:?}"
        );
        let mut allowed_args = vec!["--allow-outbound", origin.as_str()];
        allowed_args.extend(&args);
        let allowed = run(&allowed_args, b"");
        assert!(allowed.status.success(), "{command}: {allowed:?}");
        assert_eq!(
            stdout_of(&allowed),
            "status=200\nbody=origin ok\n",
            "{command}"
        );
    }
}

#[test]
fn run_refuses_a_component_that_is_not_a_command() {
    // waki builds a library component: an HTTP handler and no `run`.
    let output = run(&[fixture("waki-hello").to_str().unwrap()], b"");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("is not a command component"), "{err}");
}

#[test]
fn config_var_flags_reach_wasi_config() {
    let served = Served::start(&[
        fixture("p3-config").to_str().unwrap(),
        "--config-var",
        "greeting=hello",
        "--config-var",
        "mode=a=b",
    ]);
    let response = served.get("/");
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(
        response.ends_with("greeting=Some(\"hello\")\nall=greeting=hello,mode=a=b\n"),
        "{response}"
    );
}

#[test]
fn an_unreadable_tls_certificate_is_a_clear_error_naming_the_file() {
    let key = temp_file("tls-key.pem", b"-----BEGIN PRIVATE KEY-----\n");
    let output = berth()
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
        ])
        .arg(&key)
        .output()
        .expect("berth runs");
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("cannot read /nonexistent/cert.pem"), "{err}");
    // Both or neither.
    let output = berth()
        .args(["serve", "--tls-cert", "/nonexistent/cert.pem"])
        .output()
        .expect("berth runs");
    assert_eq!(output.status.code(), Some(2));
}
