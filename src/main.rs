//! The `autopeer` binary: parse the command line, dispatch, map errors to
//! exit codes (0 ok, 1 check failed or daemon unreachable, 2 usage or
//! internal error). `anyhow` lives only here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use autopeer::check::{self, Severity};
use autopeer::cli::{Cli, Command, DEFAULT_CONFIG};
use autopeer::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("autopeer: {}", causes(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each told once. autopeer's errors end with
/// their cause's text (so that one in a log line is whole) and also give
/// it as their source, which `{:#}` would print a second time.
fn causes(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// `RUST_LOG` as `LEVEL` or `TARGET=LEVEL,...` (no span or field filters:
/// they cost a regex engine in the binary and its memory); `default` when
/// it is unset or does not parse.
fn log_filter(env: Option<&str>, default: &str) -> tracing_subscriber::filter::Targets {
    env.and_then(|v| v.parse().ok())
        .unwrap_or_else(|| default.parse().unwrap_or_default())
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref(), default);
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(autopeer::logging::Stderr))
        .with(filter)
        .init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    match cli.command {
        Command::Run => {
            // Before anything large is allocated (the config, the include).
            autopeer::keyring::sys::map_large_allocations();
            let config = match Config::load(&config_path) {
                Ok(c) => c,
                Err(e) => {
                    for (key, msg) in e.problems() {
                        eprintln!("autopeer: {key}: {msg}");
                    }
                    return Ok(ExitCode::from(1));
                }
            };
            // One thread runs every task: the daemon's work is waiting on
            // sockets and files with short bursts of CPU between. A
            // current-thread runtime has no idle workers to wake and
            // hand work between (context switches), and with glibc each
            // thread that allocates gets its own malloc arena, whose
            // freed memory stays resident (README, Performance:
            // Footprint). Blocking work still goes to spawn_blocking.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the runtime")?;
            rt.block_on(autopeer::daemon::run(
                config,
                Some(config_path),
                shutdown_signal(),
            ))
            .context("daemon failed")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the runtime")?;
            let findings = rt.block_on(check::check(&config_path));
            for f in &findings {
                println!("{f}");
            }
            let problems = findings
                .iter()
                .filter(|f| f.severity == Severity::Problem)
                .count();
            if problems == 0 {
                println!("{}: ok", config_path.display());
                Ok(ExitCode::SUCCESS)
            } else {
                println!("{}: {problems} problem(s)", config_path.display());
                Ok(ExitCode::from(1))
            }
        }
        Command::Status
        | Command::Show { .. }
        | Command::Add { .. }
        | Command::Remove { .. }
        | Command::Watch { .. }
        | Command::Reload => ctl_client(&cli),
    }
}

/// The subcommands that talk to the daemon's control socket: exit 0 ok,
/// 1 daemon unreachable or an error reply, 2 usage.
fn ctl_client(cli: &Cli) -> anyhow::Result<ExitCode> {
    use autopeer::cli::ShowWhat;
    use autopeer::ctl::{client, proto::CtlCommand};
    let cmd = match &cli.command {
        Command::Status => CtlCommand::ShowPeers { all: false },
        Command::Show { what } => match what {
            ShowWhat::Peers { all } => CtlCommand::ShowPeers { all: all.is_some() },
            ShowWhat::Groups => CtlCommand::ShowGroups,
            ShowWhat::Sources => CtlCommand::ShowSources,
        },
        Command::Add { addr, group } => {
            let Some((addr, iface)) = autopeer::cli::parse_addr(addr) else {
                eprintln!("autopeer: not an address: {addr} (want 10.0.0.1 or fe80::1%vti3)");
                return Ok(ExitCode::from(2));
            };
            CtlCommand::Add {
                addr,
                iface,
                group: group.clone(),
            }
        }
        Command::Remove { target } => CtlCommand::Remove {
            target: target.clone(),
        },
        Command::Watch { json } => CtlCommand::Watch { json: *json },
        Command::Reload => CtlCommand::Reload,
        Command::Run | Command::Check => return Ok(ExitCode::from(2)),
    };
    // A command the daemon would refuse to parse is a usage error here.
    if let Err(e) = autopeer::ctl::proto::parse_command(&cmd.to_line()) {
        eprintln!("autopeer: {e}");
        return Ok(ExitCode::from(2));
    }
    let socket = match client::socket_path(cli.socket.as_deref(), cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("autopeer: {}", causes(&e));
            return Ok(ExitCode::from(2));
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    match rt.block_on(client::run(&socket, &cmd, &mut out, &mut err)) {
        Ok(client::Outcome::Ok) => Ok(ExitCode::SUCCESS),
        Ok(client::Outcome::ErrorReply) => Ok(ExitCode::from(1)),
        Err(e) => {
            eprintln!("autopeer: {}", causes(&e));
            Ok(ExitCode::from(1))
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn rust_log_takes_a_level_or_targets_and_falls_back_to_the_default() {
        let f = log_filter(Some("debug"), "info");
        assert!(f.would_enable("autopeer::observer", &Level::DEBUG));
        assert!(!f.would_enable("autopeer::observer", &Level::TRACE));
        let f = log_filter(Some("warn,autopeer::observer=debug"), "info");
        assert!(f.would_enable("autopeer::observer", &Level::DEBUG));
        assert!(!f.would_enable("autopeer::roster", &Level::INFO));
        assert!(f.would_enable("autopeer::roster", &Level::WARN));
        let f = log_filter(Some("no such level=="), "info");
        assert!(f.would_enable("autopeer::roster", &Level::INFO));
        assert!(!f.would_enable("autopeer::roster", &Level::DEBUG));
        assert!(log_filter(None, "trace").would_enable("x", &Level::TRACE));
    }
}
