"""The HTTP layer every vendor shares: `client.VendorClient` (httpx, keys, deadlines),
`limiter` (the client's own rate limits), `retry` (the one retry policy), `watchdog`
(total deadlines for bodies) and `breaker` (a vendor that is down or hangs stops being
called). Vendor modules never import it: they build and read
`wire.Request`/`wire.Response` only."""
