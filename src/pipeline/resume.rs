//! Where a source resumes: at the oldest checkpoint among the tables of its routes, so no route misses
//! what it has not committed; each route then skips what its own checkpoint covers.

use super::state::RouteState;
use lakefold_api::Checkpoint;

/// The checkpoint to open a source at, given the routes reading it; `None` reads from the start (a route
/// has no checkpoint yet, or two checkpoints cannot be merged).
pub(super) fn resume_point(routes: &[RouteState], route_ids: &[usize]) -> Option<Checkpoint> {
    let mut resume: Option<Checkpoint> = None;
    for &i in route_ids {
        let cp = routes[i].checkpoint.as_ref()?;
        resume = match resume {
            None => Some(cp.clone()),
            Some(r) => Some(r.earliest(cp)?),
        };
    }
    resume
}
