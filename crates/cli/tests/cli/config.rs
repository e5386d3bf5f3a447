//! `berth serve --config` and `berth check`: apps routed from a file,
//! reloads on change and SIGHUP, and errors that name file, line and key.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Served, berth, fixture};

/// A fresh directory holding copies of `components` (by fixture name).
fn app_dir(components: &[&str]) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("berth-config-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in components {
        std::fs::copy(fixture(name), dir.join(format!("{name}.wasm"))).unwrap();
    }
    dir
}

/// Two apps: the suite at `a.test`, p3-hello at `hello_route`.
fn two_apps(hello_route: &str) -> String {
    format!(
        "[[apps]]\nname = \"suite\"\ncomponent = \"suite.wasm\"\nroutes = [\"a.test\"]\n\n\
         [[apps]]\nname = \"hello\"\ncomponent = \"p3-hello.wasm\"\nroutes = [\"{hello_route}\"]\n"
    )
}

fn status(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

/// Polls `host/` until its status line starts with `expected`, for at
/// most `within`; returns how long it took.
fn until_status(served: &Served, host: &str, expected: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let response = served.get_from(host, "/");
        if status(&response).starts_with(expected) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{host} still answers {:?} after {within:?}",
            status(&response)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn serve_config_routes_apps_and_reloads_on_change_and_on_sighup() {
    let dir = app_dir(&["suite", "p3-hello"]);
    let file = dir.join("berth.toml");
    write(&file, &two_apps("b.test"));
    let served = Served::start(&["--config", file.to_str().unwrap()]);
    assert!(
        served
            .get_from("a.test", "/hello")
            .ends_with("hello from berth\n")
    );
    let hello = served.get_from("b.test", "/");
    assert!(
        hello.ends_with("Hello from a wasi:http@0.3.0 component\n"),
        "{hello}"
    );
    assert!(status(&served.get_from("c.test", "/")).starts_with("HTTP/1.0 404"));

    // The file changes: picked up once it has settled (two 2 s checks).
    write(&file, &two_apps("c.test"));
    until_status(&served, "c.test", "HTTP/1.0 200", Duration::from_secs(10));
    assert!(status(&served.get_from("b.test", "/")).starts_with("HTTP/1.0 404"));

    // A broken file is refused; the running version keeps serving.
    write(&file, &format!("{}colour = \"blue\"\n", two_apps("d.test")));
    std::thread::sleep(Duration::from_secs(6));
    assert!(status(&served.get_from("c.test", "/")).starts_with("HTTP/1.0 200"));
    assert!(status(&served.get_from("d.test", "/")).starts_with("HTTP/1.0 404"));

    // SIGHUP reloads at once, long before the watcher would.
    write(&file, &two_apps("e.test"));
    served.signal("HUP");
    let took = until_status(&served, "e.test", "HTTP/1.0 200", Duration::from_secs(10));
    assert!(
        took < Duration::from_millis(1800),
        "SIGHUP reload took {took:?}"
    );

    served.signal("TERM");
    let (exit, log) = served.wait();
    assert!(exit.success(), "{log}");
    assert!(log.contains("config reload refused"), "{log}");
    assert!(
        log.contains("berth.toml:10:1: unknown field `colour`"),
        "{log}"
    );
    assert!(log.contains("config reloaded"), "{log}");
    assert!(
        log.contains("app=\"hello\""),
        "the access log names the app:\n{log}"
    );
}

#[test]
fn config_replaces_the_per_app_flags() {
    let output = berth()
        .args(["serve", "--config", "berth.toml", "--reuse", "3"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("cannot be used with"), "{err}");
}

fn check(file: &Path) -> (bool, String, String) {
    let output = berth().arg("check").arg(file).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_prints_the_routing_table_and_names_every_problem() {
    let dir = app_dir(&["suite", "p3-hello", "command"]);
    let file = dir.join("berth.toml");
    write(
        &file,
        &format!(
            "{}\n[[apps]]\nname = \"any\"\ncomponent = \"suite.wasm\"\nroutes = [\"*\", \"*.b.test/x\"]\n",
            two_apps("b.test/p3")
        ),
    );
    let (ok, out, err) = check(&file);
    assert!(ok, "{err}");
    let table: Vec<&str> = out.lines().skip(1).take(5).map(str::trim_end).collect();
    assert_eq!(
        table,
        [
            "ROUTE       APP",
            "a.test      suite",
            "b.test/p3   hello",
            "*.b.test/x  any",
            "*           any",
        ],
        "{out}"
    );
    assert!(out.contains("app hello: wasi:http@0.3.0 service"), "{out}");

    // An unknown key: the parser's error, with line and column.
    write(&file, "[server]\nadr = \"127.0.0.1:1\"\n");
    let (ok, _, err) = check(&file);
    assert!(!ok);
    assert!(err.contains("berth.toml:2:1: unknown field `adr`"), "{err}");

    // A clash and a missing file, both reported with their place.
    write(
        &file,
        &format!(
            "{}\n[[apps]]\nname = \"late\"\ncomponent = \"gone.wasm\"\nroutes = [\"a.test\"]\n",
            two_apps("b.test")
        ),
    );
    let (ok, _, err) = check(&file);
    assert!(!ok);
    assert!(
        err.contains("berth.toml:13:13: apps[2].component: no component file at"),
        "{err}"
    );
    assert!(
        err.contains(
            "berth.toml:14:11: apps[2].routes[0]: route `a.test` is already claimed by app `suite`"
        ),
        "{err}"
    );

    // A component that loads but is no wasi:http app: refused by name.
    write(
        &file,
        "[[apps]]\nname = \"tool\"\ncomponent = \"command.wasm\"\nroutes = [\"*\"]\n",
    );
    let (ok, _, err) = check(&file);
    assert!(!ok);
    assert!(err.contains("app `tool`:"), "{err}");
    assert!(err.contains("does not export a wasi:http handler"), "{err}");
}

#[test]
fn config_values_reach_wasi_config_and_never_the_log() {
    let dir = app_dir(&["p3-config"]);
    write(&dir.join("greeting.txt"), "top secret greeting\n");
    let file = dir.join("berth.toml");
    write(
        &file,
        "[[apps]]\nname = \"cfg\"\ncomponent = \"p3-config.wasm\"\nroutes = [\"*\"]\n\
         config = { greeting = { from_file = \"greeting.txt\" }, mode = \"plain\" }\n",
    );
    let served = Served::start(&["--config", file.to_str().unwrap()]);
    let response = served.get("/");
    assert!(
        response.ends_with(
            "greeting=Some(\"top secret greeting\")\nall=greeting=top secret greeting,mode=plain\n"
        ),
        "{response}"
    );
    let startup = served.startup_log.clone();
    served.signal("TERM");
    let (exit, log) = served.wait();
    assert!(exit.success());
    let whole_log = format!("{startup}{log}");
    assert!(!whole_log.contains("top secret"), "{whole_log}");
}
