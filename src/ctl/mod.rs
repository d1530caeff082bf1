//! autopeer's control socket: BIRD's reply framing, so `birdc -s SOCKET`
//! works on it, and the client behind `autopeer status|show|add|remove|
//! watch|reload`.
//!
//! - [`proto`]: pure; command lines in, framed replies and tables out;
//!   the command and reply-code tables live there.
//! - [`server`]: the socket, its access rules and its limits.
//! - [`client`]: one command, its reply printed without codes.

pub mod client;
pub mod proto;
pub mod server;
