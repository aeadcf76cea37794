"""The HTTP layer every vendor shares: `client.VendorClient` (httpx, keys, deadlines),
`limiter` (the client's own rate limits), `retry` (the one retry policy) and `watchdog`
(total deadlines for bodies). Vendor modules never import it: they build and read
`wire.Request`/`wire.Response` only."""
