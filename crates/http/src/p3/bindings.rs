//! Raw bindings for `wasi:http@0.3.0` generated from the vendored WIT.
//!
//! Every `wasi:http` resource maps to a host type of ours; the functions that
//! create or consume `stream`/`future` values get store access, and
//! `client.send` is a concurrent (Component Model async) host function.

#[allow(missing_docs, unused_qualifications, reason = "bindgen-generated code")]
mod generated {
    wasmtime::component::bindgen!({
        path: "wit/p3",
        world: "wasi:http/service",
        imports: {
            "wasi:http/client.send": store | trappable | tracing,
            "wasi:http/types.[drop]request": store | trappable | tracing,
            "wasi:http/types.[drop]response": store | trappable | tracing,
            "wasi:http/types.[static]request.consume-body": store | trappable | tracing,
            "wasi:http/types.[static]request.new": store | trappable | tracing,
            "wasi:http/types.[static]response.consume-body": store | trappable | tracing,
            "wasi:http/types.[static]response.new": store | trappable | tracing,
            default: trappable | tracing,
        },
        exports: { default: async | store },
        require_store_data_send: true,
        with: {
            "wasi:http/types.fields": crate::fields::FieldMap,
            "wasi:http/types.request": crate::p3::types::Request,
            "wasi:http/types.request-options": crate::p3::types::RequestOptions,
            "wasi:http/types.response": crate::p3::types::Response,
        },
        trappable_error_type: {
            "wasi:http/types.error-code" => crate::error::HttpError,
            "wasi:http/types.header-error" => crate::error::FieldsError,
            "wasi:http/types.request-options-error" => crate::p3::OptionsError,
        },
    });
}

pub use self::generated::exports;
pub use self::generated::wasi::*;
pub use self::generated::{Service, ServiceIndices, ServicePre};
