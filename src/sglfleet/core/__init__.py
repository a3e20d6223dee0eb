"""The request path's shared types, a leaf package: it imports nothing else of sglfleet.

worker (a worker as the router sees it), breaker, errors (the one exception tree), route
(route context and decision), exchange (one client request and its attempts, with verdicts),
redact (secrets out of anything shown).
"""
