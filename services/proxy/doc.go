// Package proxy is the proxy service, the hot path of RustyBalancer: a
// fasthttp server on HOST_PORT_HTTP_BALANCER that sends each request to a
// worker of its app, chosen by pkg/balance from the app's queue.
//
// # Routing
//
// A request goes to the app its Host header names in RB_PROXY_HOSTS (with
// or without the port), else to APP_IDENTIFIER. Each app has an immutable
// route: a balance.Table built from the app's last queue (events.QueueSnapshot
// on rb.queue.<app>, stream RB_QUEUE, read with an ordered consumer that
// delivers the current queue at once) and one fasthttp.HostClient per worker
// address, in a slice parallel to the table. A queue event builds a new route
// and swaps it in atomically; a request loads the route once and picks with
// the app's policy (RB_BALANCE_POLICY, changed live through rb.config.<app>)
// without a lock or an allocation. Backend statistics (in flight, latency,
// ejection) live in the table's Stats and carry over from one route to the
// next. A worker that leaves the queue keeps its Stats and connection pool
// until its last request is done.
//
// Lifecycle on the hot path is pkg/balance's: SUNDOWN workers get no new
// requests, INIT and newly listed workers ramp up over RB_SLOW_START, connect
// errors and 5xx streaks eject a worker for a while. A request whose backend
// could not be reached (the dial failed: nothing was sent) is retried once on
// another worker, whatever its method; an idempotent request (GET, HEAD,
// OPTIONS, PUT, DELETE) without a body, or with one held in memory (up to
// 64 KiB), is also retried once on another worker when the connection broke
// before any answer. A broken keep-alive connection that was reused from the
// pool is first retried on the same worker with a fresh connection, without
// counting against the worker.
//
// A table prices a worker that never answered at the median latency known
// when it was built (1 ms when none was). While some worker of an app has
// never answered and others have, the report loop rebuilds the app's table
// every interval, so that guess follows what the workers really take and p2c
// tries the unknown worker even under light load.
//
// # Forwarding
//
// The client's request is forwarded as it is (method, path and query
// unnormalised, Host, body; HTTP/1.0 becomes HTTP/1.1, with the worker's
// address as Host when there is none), minus the hop-by-hop headers
// (Connection and the headers it names, Keep-Alive, Proxy-*, TE, Trailer,
// Upgrade, and Expect, which the proxy answers itself; fasthttp re-frames
// every body, so Transfer-Encoding is its own), plus X-Forwarded-For
// (appended), X-Forwarded-Proto, X-Forwarded-Host and X-Request-Id (kept if
// present, else generated). Request bodies up to 64 KiB are read whole;
// larger and chunked ones stream to the worker (fasthttp's
// StreamRequestBody: a few KiB are buffered); a body larger than
// RB_MAX_BODY_SIZE is answered 413, by its Content-Length before anything is
// sent (Expect: 100-continue included), or as soon as a chunked body passes
// the limit. Responses with a known length up to 1 MiB
// (up to the cache's entry limit for cacheable requests) are read whole;
// longer, chunked or close-delimited ones are streamed back to the client,
// and the worker's connection is pooled again once the body has been read
// to its end. WebSocket upgrades are tunnelled: the client connection is
// hijacked, the worker dialled, and bytes copied both ways.
//
// REQUEST_TIMEOUT bounds the time from the pick to the response header
// (connect, request upload, waiting), and then each pause of a streamed
// response; when it passes the client gets 504. The proxy's own answers are
// JSON {"error": ..., "app": ...}: 503 with Retry-After when the app has no
// worker (no queue yet, or none that may take requests), 502 when no worker
// could be reached or one answered garbage, 504 on timeout, 413 for a body
// over the limit, 431 for a request header over 16 KiB, 408 for a request
// not received within REQUEST_TIMEOUT, 405 for CONNECT (this is not a
// forward proxy), 400 for a request that does not parse (these last ones
// without "app": the request was not routed; the 413 that answers an
// Expect: 100-continue has no body). A connection closed after an
// error answer is closed with a linger (the rest of the request is read and
// dropped for up to a second), so the client reads the answer rather than a
// reset. The worker's Date, Server and Content-Type pass through; the proxy
// adds none of its own to them.
//
// # Cache
//
// With CACHE_CAPACITY > 0, GET and HEAD requests whose path passes the
// cache's extension filter are looked up in a pkg/cache (bounded by entries
// and RB_CACHE_MAX_BYTES), keyed by method, host, URI and Accept-Encoding;
// a hit is answered without touching a worker. Responses are stored as
// cache.Cacheability says. The answers to such requests carry X-Cache: HIT
// or MISS. A request with Cache-Control no-cache or no-store skips the
// lookup.
//
// # Telemetry, readiness, static stability
//
// Every second the proxy publishes an events.ProxyReport per app on
// rb.proxy.<app>.<proxy-id>: per worker in flight, requests and errors over
// the interval, latency EWMA, state and ejection. SUNDOWN workers and
// workers that left the queue are reported until their in-flight count is
// 0; the scaler removes a container on that. Metrics go to the admin
// listener with the rb_proxy_ prefix; the service is ready once one app has
// a route.
//
// NATS is connected in the background: the proxy serves from the first
// route it gets, from NATS or from the queue snapshot the queue builder
// keeps in Redis (store.GetSnapshot(ctx, "queue", app)), which is read at
// start and used only while NATS has not delivered a queue. While NATS is
// unreachable the last route keeps serving. On shutdown the listener stops
// accepting, requests in flight finish (for up to min(REQUEST_TIMEOUT, 4 s)),
// tunnels are closed, and Run returns.
package proxy
