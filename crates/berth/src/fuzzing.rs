//! Internals the fuzz targets in `fuzz/` drive directly (feature
//! `fuzzing`). Not a stable API: nothing here is for embedders.

use http::uri::{Authority, Scheme};

use crate::request::RejectReason;

/// The front-end's request-target normalisation (see `request.rs`):
/// rewrites `request`'s URI to absolute form, or says why it is refused.
pub fn normalize<B>(
    request: &mut http::Request<B>,
    listener_scheme: &Scheme,
    local_authority: &Authority,
) -> Result<(), RejectReason> {
    crate::request::normalize(request, listener_scheme, local_authority)
}
