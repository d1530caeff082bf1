//! The apply task: one [`Job`] in, one [`Done`] out. The roster's owner
//! task spawns it and keeps answering everything else while BIRD is slow,
//! stopped or dead; at most one runs at a time.

use std::time::Instant;

use super::core::{Done, Job};
use crate::apply::{self, Target};
use crate::bird::render::Dialect;

/// Connects to BIRD (one connection gives the version and does the apply:
/// BIRD down means nothing is written, apply's rule 1), plans the include
/// in that BIRD's language and makes BIRD load it.
pub async fn run(job: Job, target: Target) -> Done {
    let started = Instant::now();
    let conn = apply::connect(&target).await;
    let dialect = dialect(&job, conn.as_ref().ok());
    let plan = job.plan(&dialect);
    let result = match (&plan.text, conn) {
        (Err(_), _) => None,
        (Ok(text), Ok(conn)) => Some(apply::apply_on(conn, &target, text).await),
        (Ok(_), Err(e)) => Some(Err(e)),
    };
    crate::metrics::applied(result.as_ref());
    Done {
        plan,
        result,
        millis: started.elapsed().as_millis(),
    }
}

/// The language of the BIRD that greeted `conn` (the version can change
/// under us: an upgrade, bird vs bird6). Without a connection, the 2.x
/// language: apply then fails before writing anything and retries.
fn dialect(job: &Job, conn: Option<&crate::bird::client::Connection>) -> Dialect {
    let Some(version) = conn.map(|c| c.version()) else {
        return Dialect::Bird2;
    };
    crate::bird::client::warn_unknown_version(version);
    if version.major != 1 {
        return Dialect::Bird2;
    }
    Dialect::Bird1 {
        local_as: job.local_as.clone(),
    }
}
