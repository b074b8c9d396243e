//! `vantage-bench-target`: the harness's HTTP targets as a process of their
//! own, for `vantage-probe bench` (and other load generators) to aim at, so
//! the probe's CPU time is its own and not the server's.
//!
//! It starts three [`HttpTarget`]s on loopback: plain HTTP, HTTPS offering
//! only `http/1.1` by ALPN, and HTTPS offering `h2` and `http/1.1`, all
//! presenting the [`Leaf::Valid`] certificate of a fresh [`TestPki`]. It
//! writes the CA to `DIR/ca.pem`, prints one JSON line with the URLs on
//! standard output, and serves until SIGTERM, SIGINT or the end of standard
//! input (so a parent that dies, closing the pipe, takes it along; a
//! terminal is not watched, so that it can run in the background of an
//! interactive shell). On the
//! way out it prints, on standard error, how many connections and requests
//! each target served: equal counts show that every check was cold.
//!
//! ```text
//! vantage-bench-target --dir DIR [--threads N]
//! {"http":"http://127.0.0.1:40001/","https":"https://127.0.0.1:40002/","https_h2":"https://127.0.0.1:40003/","ca":"DIR/ca.pem"}
//! ```

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use tokio::signal::unix::{signal, SignalKind};
use vantage_tests::{HttpTarget, Leaf, TargetOptions, TestPki};

const USAGE: &str = "usage: vantage-bench-target --dir DIR [--threads N]";

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("vantage-bench-target: {e:#}");
            return ExitCode::from(2);
        }
    };
    let served = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads)
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|runtime| runtime.block_on(serve(&options)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vantage-bench-target: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The command line.
struct Options {
    /// Where `ca.pem` goes.
    dir: PathBuf,
    /// Runtime worker threads (default: one per CPU).
    threads: usize,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
        let mut dir = None;
        let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value\n{USAGE}"));
            match arg.as_str() {
                "--dir" => dir = Some(PathBuf::from(value()?)),
                "--threads" => {
                    threads = value()?.parse().context("--threads takes a positive number")?;
                    if threads == 0 {
                        bail!("--threads takes a positive number");
                    }
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        let dir = dir.with_context(|| format!("--dir is required\n{USAGE}"))?;
        Ok(Options { dir, threads })
    }
}

async fn serve(options: &Options) -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    std::fs::create_dir_all(&options.dir).with_context(|| format!("creating {}", options.dir.display()))?;
    let ca = pki.write_ca(&options.dir)?;
    let https = |alpn: &[&[u8]]| TargetOptions {
        tls: Some(pki.server_config(Leaf::Valid, alpn)),
        ..TargetOptions::default()
    };
    let targets = [
        ("http", HttpTarget::start(TargetOptions::default())?),
        ("https", HttpTarget::start(https(&[b"http/1.1"]))?),
        ("https_h2", HttpTarget::start(https(&[b"h2", b"http/1.1"]))?),
    ];
    let mut line = String::from("{");
    for (name, target) in &targets {
        line.push_str(&format!("{}:{},", json_string(name), json_string(&target.url("/"))));
    }
    line.push_str(&format!("\"ca\":{}}}", json_string(&ca.display().to_string())));
    println!("{line}");

    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let stdin_closed = stdin_closed();
    let why = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
        _ = stdin_closed => "end of standard input",
    };
    eprintln!("vantage-bench-target: stopping on {why}");
    for (name, target) in &targets {
        eprintln!(
            "vantage-bench-target: {name:<8} {} connections, {} requests",
            target.connections(),
            target.requests()
        );
    }
    // Dropping the targets stops their tasks and closes their sockets.
    drop(targets);
    Ok(())
}

/// Resolves when standard input reaches its end (or fails); never when it
/// is a terminal, which a background job must not read (SIGTTIN would stop
/// the whole process).
///
/// Read on a plain thread: tokio's stdin needs a feature the workspace does
/// not enable, and the thread blocks in `read` until the process exits, so
/// there is nothing to stop.
async fn stdin_closed() {
    if std::io::stdin().is_terminal() {
        return std::future::pending().await;
    }
    let (closed, on_close) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = closed.send(());
    });
    let _ = on_close.await;
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
