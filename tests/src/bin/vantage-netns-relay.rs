//! `vantage-netns-relay`: the inside of a [`faultnet::Island`], run in its
//! network namespace. For each `--map IP:PORT=SOCKET` it listens on
//! `IP:PORT` (a loopback address inside the namespace) and passes every
//! connection, byte for byte and half-closes included, to the Unix socket
//! `SOCKET`, where the island's link on the host side takes it. Once every
//! address listens it creates the `--ready` file. It exits when its parent
//! process (the one the island runs) has gone.
//!
//! ```text
//! vantage-netns-relay --ready FILE --map 127.0.0.1:7400=/tmp/x/link-7400.sock [--map …]
//! ```
//!
//! [`faultnet::Island`]: vantage_tests::faultnet::Island

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::net::{TcpListener, UnixStream};

const USAGE: &str = "usage: vantage-netns-relay --ready FILE --map IP:PORT=SOCKET [--map …]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vantage-netns-relay: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut ready = None;
    let mut maps: Vec<(SocketAddr, PathBuf)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ready" => ready = Some(PathBuf::from(args.next().context(USAGE)?)),
            "--map" => {
                let map = args.next().context(USAGE)?;
                let (addr, path) = map.split_once('=').with_context(|| format!("--map {map}: {USAGE}"))?;
                maps.push((addr.parse().with_context(|| format!("--map {map}"))?, PathBuf::from(path)));
            }
            _ => bail!("unknown argument {arg:?}; {USAGE}"),
        }
    }
    let ready = ready.context(USAGE)?;
    let parent = std::os::unix::process::parent_id();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let mut listeners = Vec::new();
        for (addr, path) in maps {
            let listener = TcpListener::bind(addr).await.with_context(|| format!("listen on {addr}"))?;
            listeners.push((listener, path));
        }
        std::fs::write(&ready, b"").with_context(|| format!("write {}", ready.display()))?;
        for (listener, path) in listeners {
            tokio::spawn(relay(listener, path));
        }
        // The parent gone, this process is adopted by another: time to go.
        while std::os::unix::process::parent_id() == parent {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    })
}

async fn relay(listener: TcpListener, path: PathBuf) {
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let path = path.clone();
        // Ends when both sides have closed, or the process exits.
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            match UnixStream::connect(&path).await {
                Ok(mut unix) => {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                }
                Err(error) => eprintln!("vantage-netns-relay: connect {}: {error}", path.display()),
            }
        });
    }
}
