//! `probe-target`: a test fixture served from inside a container, so the
//! agent's gRPC and HTTPS probes meet real servers on the real stack.
//!
//! - `--grpc PORT`: `grpc.health.v1.Health/Check` over plain-text HTTP/2
//!   (as upstream's gRPC probe speaks it). The server (service `""`) and
//!   the service `probe-target` are SERVING while `/tmp/not-serving` does
//!   not exist, NOT_SERVING once it does; other services are NOT_FOUND.
//! - `--https PORT --cert FILE --key FILE`: HTTP/1.1 over TLS with the given
//!   (self-signed) certificate; `GET /healthz` is 200 while `/tmp/unhealthy`
//!   does not exist, 500 once it does; other paths 404.
//!
//! Exits on SIGTERM (as PID 1 it would otherwise ignore it, and every stop
//! would wait for the whole grace period). Built static (`crt-static`) by
//! `make pause`, like the pause binary.

mod grpc;
mod https;

use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug, Default)]
struct Options {
    grpc: Option<u16>,
    https: Option<u16>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let port = || value.parse::<u16>().map_err(|e| format!("{flag} {value}: {e}"));
        match flag.as_str() {
            "--grpc" => options.grpc = Some(port()?),
            "--https" => options.https = Some(port()?),
            "--cert" => options.cert = Some(value.into()),
            "--key" => options.key = Some(value.into()),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if options.grpc.is_none() && options.https.is_none() {
        return Err("nothing to serve: give --grpc PORT and/or --https PORT --cert FILE --key FILE".into());
    }
    Ok(options)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("probe-target: {message}");
            std::process::exit(2);
        }
    };
    let mut servers = tokio::task::JoinSet::new();
    if let Some(port) = options.grpc {
        servers.spawn(grpc::serve(port));
    }
    if let Some(port) = options.https {
        let (Some(cert), Some(key)) = (options.cert.clone(), options.key.clone()) else {
            eprintln!("probe-target: --https needs --cert and --key");
            std::process::exit(2);
        };
        servers.spawn(https::serve(port, cert, key));
    }
    println!("probe-target: serving {options:?}");
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            eprintln!("probe-target: cannot take SIGTERM: {error}");
            std::process::exit(1);
        }
    };
    loop {
        tokio::select! {
            _ = term.recv() => std::process::exit(0),
            done = servers.join_next() => match done {
                Some(Ok(Err(message))) => {
                    eprintln!("probe-target: {message}");
                    std::process::exit(1);
                }
                Some(_) => {}
                None => return,
            },
        }
    }
}
