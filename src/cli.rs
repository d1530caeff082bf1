//! The command line of man/autopeer.8 (normative: tests outside this
//! repository drive exactly these subcommands and flags).
//!
//! Only parsing lives here; `main.rs` dispatches.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The default config file.
pub const DEFAULT_CONFIG: &str = "/etc/bird/autopeer.toml";
/// The default control socket.
pub const DEFAULT_SOCKET: &str = "/run/autopeer.ctl";

/// Admits BGP speakers that knock on a BIRD router as persistent, named BGP
/// protocols.
#[derive(Debug, Parser)]
#[command(name = "autopeer", version, about, long_about = None)]
pub struct Cli {
    /// The config file.
    #[arg(short = 'c', long = "config", value_name = "CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// autopeer's control socket (default: `[agent] socket` of the config
    /// given with -c, else /run/autopeer.ctl).
    #[arg(short = 's', long = "socket", value_name = "SOCKET", global = true)]
    pub socket: Option<PathBuf>,

    /// More log output (repeat for more); RUST_LOG overrides.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (systemd Type=notify).
    Run,
    /// Validate the config, bird.conf and access; exit 0 when fine, 1 with
    /// every problem listed.
    Check,
    /// A birdc-style table of the roster with BIRD's live state.
    Status,
    /// Show peers, groups or sources.
    Show {
        #[command(subcommand)]
        what: ShowWhat,
    },
    /// Admit ADDR now, as if it had knocked.
    Add {
        /// The neighbor's address (link-local: fe80::1%vti3).
        addr: String,
        /// The group to admit it into (default: the group whose prefix matches).
        #[arg(long)]
        group: Option<String>,
    },
    /// Remove a peer by address or protocol name.
    Remove {
        /// An address or a protocol name.
        target: String,
    },
    /// Print the roster, then one line per event as it happens.
    Watch {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Re-read the config (also on SIGHUP).
    Reload,
}

#[derive(Debug, Subcommand)]
pub enum ShowWhat {
    /// The roster (`all`: with BIRD's last error and the neighbor AS).
    Peers {
        /// Add BIRD's last error and the neighbor AS.
        all: Option<All>,
    },
    /// The groups with their limits and counts.
    Groups,
    /// The sources: lines read, sightings, refusals by reason, skipped lines.
    Sources,
}

/// The literal word `all` after `show peers`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum All {
    All,
}

/// Parses `ADDR` or `ADDR%IFACE` as given to `autopeer add`.
pub fn parse_addr(text: &str) -> Option<(IpAddr, Option<String>)> {
    match text.split_once('%') {
        Some((a, i)) if crate::config::is_interface_name(i) => {
            Some((a.parse().ok()?, Some(i.to_string())))
        }
        Some(_) => None,
        None => Some((text.parse().ok()?, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_normative_forms() {
        let c = Cli::try_parse_from(["autopeer", "-c", "/x.toml", "check"]).unwrap();
        assert_eq!(c.config.as_deref(), Some(std::path::Path::new("/x.toml")));
        assert!(matches!(c.command, Command::Check));
        let c = Cli::try_parse_from(["autopeer", "-s", "/s", "add", "10.0.0.1", "--group", "g"])
            .unwrap();
        assert!(
            matches!(c.command, Command::Add { ref group, .. } if group.as_deref() == Some("g"))
        );
        let c = Cli::try_parse_from(["autopeer", "show", "peers", "all"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Show {
                what: ShowWhat::Peers { all: Some(_) }
            }
        ));
        assert!(Cli::try_parse_from(["autopeer", "show", "bogus"]).is_err());
    }

    #[test]
    fn addresses_for_add() {
        assert_eq!(
            parse_addr("10.0.0.1"),
            Some(("10.0.0.1".parse().unwrap(), None))
        );
        assert_eq!(
            parse_addr("fe80::1%vti3"),
            Some(("fe80::1".parse().unwrap(), Some("vti3".into())))
        );
        assert_eq!(parse_addr("fe80::1%bad name"), None);
        assert_eq!(parse_addr("10.0.0.1; x"), None);
    }
}
