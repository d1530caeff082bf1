//! FRR nhrpd's event socket: a pure parser of its messages and the server
//! task that answers `authorize-binding` requests.
//!
//! With `nhrp event socket PATH`, nhrpd connects to PATH (we listen) and,
//! for each new dynamic binding on a hub, writes (nhrpd/nhrp_event.c,
//! `evmgr_notify`, FRR 8.4.4; see fixtures/nhrp/README.md):
//!
//! ```text
//! eventid=1
//! event=authorize-binding
//! type=dynamic
//! old_type=invalid
//! num_nhs=0
//! interface=gre1
//! local_addr=10.0.0.1
//! vc_initiated=no
//! local_nbma=192.0.2.1
//! local_cert=
//! remote_addr=10.0.0.5
//! remote_nbma=192.0.2.5
//! remote_cert=
//!
//! ```
//!
//! and waits 10 s for `eventid=1\nresult=accept\n\n` (any other result, or
//! none, drops the binding). The parser does no I/O and never panics; the
//! server never blocks on the roster longer than [`DECIDE_TIMEOUT`], answers
//! every message that carries an `eventid`, and never lets one connection's
//! garbage stop another's answers. It must not write BIRD's config itself:
//! admission goes through the roster ([`Msg::Admit`](crate::roster::Msg::Admit)).
//!
//! With IPsec, `remote_cert` holds the spoke's IKE certificate; a group
//! with `ca` binds it to `remote_addr` ([`cert`], asked by admission).
//!
//! Layout: `message` is the pure part (parser, framer, reply), `cert` the
//! pure certificate check, `server` the socket and the decisions, `vty` the
//! reader of nhrpd's cache (which spokes are still there: departures).

pub mod cert;
mod message;
mod server;
pub mod vty;

pub use message::{
    decode_hex, parse_binding, parse_message, reply, Binding, Frame, Framer, Message, NhrpError,
    AUTHORIZE_BINDING, MAX_CERT_BYTES, MAX_LINE, MAX_LINES, MAX_MESSAGE,
};
pub use server::{
    bind, serve, EventSink, NhrpContext, NhrpStats, ServeError, DECIDE_TIMEOUT, MAX_CONNECTIONS,
};
