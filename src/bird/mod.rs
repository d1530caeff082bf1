//! Everything that speaks BIRD: its control socket, its `show protocols`
//! output, its configuration language.

pub mod client;
pub mod conf;
pub mod lang;
pub mod protocols;
pub mod render;
pub mod reply;
