"""A wasi:http/proxy component written in Python (built with componentize-py).

It echoes the request body back and reports what the host presented, so
berth's interop test can check a non-Rust toolchain end to end.
"""

from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
    Scheme_Https,
)
from componentize_py_types import Err, Ok


def scheme_text(scheme) -> str:
    if isinstance(scheme, Scheme_Http):
        return "http"
    if isinstance(scheme, Scheme_Https):
        return "https"
    return "other"


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        body = request.consume()
        stream = body.stream()
        received = bytearray()
        while True:
            try:
                received += stream.blocking_read(65536)
            except Err:
                break
        stream.__exit__(None, None, None)

        text = (
            f"python says hello\n"
            f"scheme={scheme_text(request.scheme())}\n"
            f"authority={request.authority()}\n"
            f"path={request.path_with_query()}\n"
            f"body={bytes(received).decode('utf-8', 'replace')}\n"
        ).encode()
        headers = Fields.from_list([("content-type", b"text/plain")])
        response = OutgoingResponse(headers)
        response.set_status_code(200)
        out_body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        out = out_body.write()
        for i in range(0, len(text), 4096):
            out.blocking_write_and_flush(text[i : i + 4096])
        out.__exit__(None, None, None)
        OutgoingBody.finish(out_body, None)
