// A wasi:http/proxy component written in JavaScript (built with
// componentize-js / StarlingMonkey's fetch-event support). It echoes the
// request body and reports what the host presented; on `/throw` the
// handler throws.
addEventListener("fetch", (event) =>
  event.respondWith(
    (async () => {
      const url = new URL(event.request.url);
      if (url.pathname === "/throw") {
        // The handler throws: StarlingMonkey has already set a response
        // and drops its body unfinished. The host must answer with an
        // error, not close the connection without a status.
        throw new Error("the js guest fails on purpose");
      }
      const body = await event.request.text();
      const text =
        `javascript says hello\n` +
        `url=${event.request.url}\n` +
        `path=${url.pathname}${url.search}\n` +
        `method=${event.request.method}\n` +
        `body=${body}\n`;
      return new Response(text, {
        status: 200,
        headers: { "content-type": "text/plain" },
      });
    })(),
  ),
);
