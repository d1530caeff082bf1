//! autopeer: admits BGP speakers that knock on a BIRD router as persistent,
//! named BGP protocols.
//!
//! A peer from an allowed prefix opens a TCP connection to BIRD's BGP port;
//! BIRD logs `BGP: Unexpected connect from unknown address A (port P)`;
//! autopeer reads that line, decides by group prefix and limits, writes the
//! peer into a BIRD include file it owns, and runs `configure` over BIRD's
//! control socket, rolling back on rejection.
//!
//! # Layout
//!
//! Pure parsers (no I/O, no tokio, no logging):
//! - [`bird::reply`]: framer and parser of BIRD's control-socket replies.
//! - [`bird::protocols`]: `show protocols [all]` into typed protocol states.
//! - [`bird::conf`]: scanner of bird.conf and its includes (plus a small loader).
//! - [`bird::render`]: the owned include file, rendered and parsed back.
//! - [`bird::lang`]: the one copy of BIRD's language rules (symbols, keywords,
//!   interface names, keys) that config, render, the log parsers and the keyring use.
//! - [`sources::lines`]: one parser per known log-line format.
//! - [`admission`]: all admission policy in one `decide` (group, trust, deny,
//!   bird.conf, roster, limits, NHRP); every refusal a typed `Refusal` with a stable `kind()`.
//! - [`roster::core`]: the roster's state and transitions, plain functions of
//!   (state, input, now); `tests/scenarios.rs` drives it without BIRD.
//! - [`config`]: the TOML schema and its validation.
//! - [`ctl::proto`]: the control socket's commands and BIRD-framed replies.
//! - [`sources::nhrp`] (parser half): nhrpd's event-socket messages.
//! - [`sources::nhrp::cert`]: a spoke's IKE certificate against its group's CA
//!   and GRE address (`ca`, `require_cert`; rustls-webpki).
//!
//! I/O at the edges:
//! - [`bird::client`]: the only code that talks to BIRD's socket.
//! - [`sources::tail`]: tails log files into sightings.
//! - [`sources::journal`]: follows BIRD's entries in the systemd journal
//!   (a `journalctl` child; only BIRD's own process is trusted).
//! - [`apply`]: atomic write, `configure`, rollback.
//! - [`fsx`]: files in directories other accounts may write (never followed, never reused).
//! - [`roster`]: the one task that owns the roster (the I/O around [`roster::core`]);
//!   everything else sends it messages; applies run as its child task.
//! - [`daemon`]: wires the tasks together; [`lifecycle`]: systemd notify.
//! - [`observer`]: polls BIRD's `show protocols` at an adaptive interval.
//! - [`ctl::server`], [`ctl::client`]: autopeer's own control socket
//!   (`birdc -s` speaks to it) and the `status`/`show`/`add`/... subcommands.
//! - [`sources::nhrp`] (server half): the DMVPN hub hook for FRR's nhrpd.
//! - [`event`] and [`audit`]: every decision, logged, audited and streamed.
//! - [`check`]: `autopeer check`.
//! - [`metrics`]: Prometheus metrics over HTTP (`[agent] metrics`).
//! - [`readsafe`]: opens a file for reading only if it is a regular file (no FIFO hangs).
//! - [`keyring`]: TCP-MD5 prefix keys on BIRD's listener (the only `unsafe`, in `keyring::sys`);
//!   [`keyring::task`] is the daemon task that owns them and re-keys a new listener.

pub mod admission;
pub mod apply;
pub mod audit;
pub mod bird;
pub mod check;
pub mod cli;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod event;
pub mod fsx;
pub mod keyring;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod observer;
pub mod readsafe;
pub mod roster;
pub mod secret;
pub mod sources;
