//! The owned include file: rendered from the roster and parsed back.
//!
//! (Skeleton: shared types; rendering is being written.)

use std::fmt;

/// What a group's peers are told about their AS (`neighbor ADDR as N;`,
/// `neighbor ADDR internal;`, `neighbor ADDR external;`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighborAs {
    /// `neighbor ADDR internal;`: iBGP, AS taken from `local as`.
    Internal,
    /// `neighbor ADDR external;`: any AS but ours.
    External,
    /// `neighbor ADDR as N;`.
    As(u32),
}

impl fmt::Display for NeighborAs {
    /// The BIRD syntax after the address: `internal`, `external`, `as 65001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NeighborAs::Internal => f.write_str("internal"),
            NeighborAs::External => f.write_str("external"),
            NeighborAs::As(n) => write!(f, "as {n}"),
        }
    }
}
