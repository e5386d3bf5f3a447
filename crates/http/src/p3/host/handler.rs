//! An imported `wasi:http/handler@0.3.x` with no component after it: a lone
//! middleware, or a service built against the 0.3 release candidates (which
//! sent requests through an imported `handler`). Its `handle` is the
//! outgoing client: the same validation, egress policy, per-invocation caps
//! and error codes as `wasi:http/client.send`.

use wasmtime::component::{Accessor, Linker, Resource};

use crate::ctx::{Http, HttpView};
use crate::error::HttpError;
use crate::p3::bindings::http::client::HostWithStore;
use crate::p3::bindings::http::types::ErrorCode;
use crate::p3::conv;
use crate::p3::types::{Request, Response};

/// The interface a middleware imports (and every 0.3 handler exports).
pub const HANDLER_INTERFACE: &str = "wasi:http/handler@0.3.0";

/// Links an imported `wasi:http/handler@0.3.0` (any 0.3.x, by semver) to
/// the outgoing client. Use it for the last component of an app only: a
/// middleware with a component after it forwards to that component.
pub fn add_handler_import_to_linker<T: HttpView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    linker.instance(HANDLER_INTERFACE)?.func_wrap_concurrent(
        "handle",
        |accessor: &Accessor<T>, (request,): (Resource<Request>,)| {
            Box::pin(async move {
                let client = accessor.with_getter::<Http>(T::http);
                let sent: Result<Resource<Response>, ErrorCode> =
                    match <Http as HostWithStore<T>>::send(&client, request).await {
                        Ok(response) => Ok(response),
                        Err(HttpError::Code(code)) => Err(conv::error_code_to_wit(code)),
                        Err(HttpError::Trap(trap)) => return Err(trap),
                    };
                Ok((sent,))
            })
        },
    )
}
