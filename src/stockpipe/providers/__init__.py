"""Market-data providers behind one small interface.

    base.py          the Provider protocol (and ProviderBase, its defaults), Payload, ParsedDaily
    registry.py      provider names and intervals (declared once); create(name, ...) by name
    wire.py          what HTTP vendor modules speak: Request, Response, Parsed, Outcome, error_for
    vendor.py        Vendor: what a vendor module declares, and the hooks its quirks override
    http_provider.py HttpProvider: a Vendor joined to the HTTP client, as a Provider
    http/            the HTTP client: client (httpx, keys, deadlines), limiter, retry, watchdog
    session.py       Yahoo's cookie-and-crumb session (I/O through the client)
    rows.py, columns.py   parsing helpers shared by the vendor modules
    alphavantage, eodhd (+ eodhd_lists), finnhub, polygon, stooq, tiingo,
    yahoo (+ yahoo_chart, yahoo_quote)   one pure module per vendor, ending with its VENDOR
    demo.py, csvfile.py   the offline providers

The quota ledger the HTTP vendors spend from is storage/ledger.py's, handed in by the
caller (`registry.create(..., ledger=storage.ledger.opener(engine))`).
"""
