// Package cache is the proxy's response cache for GET and HEAD: a pure
// decision (Cacheability) of whether and for how long a response may be
// stored, and a store (Cache) bounded by entries (CACHE_CAPACITY) and bytes,
// each entry expiring after its own TTL, built on
// github.com/maypok86/otter/v2 (W-TinyLFU eviction, lock-free reads).
//
// Cacheability follows RFC 9111 for a shared cache that never revalidates:
// no-store, private, no-cache, Set-Cookie and Vary other than
// Accept-Encoding keep a response out; s-maxage, max-age and Expires give
// its lifetime; a request with Authorization is cached only when the
// response says public, s-maxage or must-revalidate.
//
// The prototype cached GETs of static files (.jpg .jpeg .png .gif .css .js)
// for 3600 s whatever the backend said. Here those extensions are the
// default path filter (Config.Extensions; an empty list allows every path)
// and 3600 s is the default TTL (Config.DefaultTTL), but only for a response
// without explicit freshness: what the backend says wins, and a response
// it forbids caching is never cached. The default TTL applies to 2xx and
// permanent redirects only, so a missing file (404) is not remembered for
// an hour unless the backend asks for it; DefaultTTL = 0 caches only
// responses with explicit freshness. With an empty extension list, every
// path gets the default TTL: set DefaultTTL to 0 along with it unless every
// response of the app may be cached for that long.
//
// Entries hold the status, the header lines minus hop-by-hop ones,
// Set-Cookie and Age, and the body, in plain byte slices independent of any
// HTTP library, so the proxy writes a hit without parsing. A hit's Age is
// Entry.Age: the response's Age on arrival plus its time in the cache.
package cache
