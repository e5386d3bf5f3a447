// A wasi:http/proxy component written in JavaScript (built with
// componentize-js / StarlingMonkey's fetch-event support). It echoes the
// request body and reports what the host presented.
addEventListener("fetch", (event) =>
  event.respondWith(
    (async () => {
      const url = new URL(event.request.url);
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
