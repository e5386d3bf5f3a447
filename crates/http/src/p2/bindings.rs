//! Raw bindings for `wasi:http@0.2` generated from the vendored WIT.
//!
//! `wasi:io` maps to wasmtime-wasi's types so body streams are ordinary
//! wasi:io resources, and every `wasi:http` resource maps to a host type of
//! ours in [`crate::p2::types`] or [`crate::fields`].

#[allow(missing_docs, unused_qualifications, reason = "bindgen-generated code")]
mod generated {
    wasmtime::component::bindgen!({
        path: "wit/p2",
        world: "wasi:http/proxy",
        imports: { default: tracing | trappable },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:http/types.fields": crate::fields::FieldMap,
            "wasi:http/types.incoming-request": crate::p2::types::IncomingRequest,
            "wasi:http/types.outgoing-request": crate::p2::types::OutgoingRequest,
            "wasi:http/types.request-options": crate::p2::types::RequestOptions,
            "wasi:http/types.response-outparam": crate::p2::types::ResponseOutparam,
            "wasi:http/types.incoming-response": crate::p2::types::IncomingResponse,
            "wasi:http/types.outgoing-response": crate::p2::types::OutgoingResponse,
            "wasi:http/types.incoming-body": crate::p2::body::IncomingBody,
            "wasi:http/types.outgoing-body": crate::p2::body::OutgoingBody,
            "wasi:http/types.future-trailers": crate::p2::body::FutureTrailers,
            "wasi:http/types.future-incoming-response": crate::p2::types::FutureIncomingResponse,
        },
        trappable_error_type: {
            "wasi:http/types.error-code" => crate::p2::HttpError,
            "wasi:http/types.header-error" => crate::p2::FieldsError,
        },
    });
}

pub use self::generated::exports;
pub use self::generated::wasi::*;
pub use self::generated::{LinkOptions, Proxy, ProxyIndices, ProxyPre};
