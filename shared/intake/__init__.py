"""Intake: what the API records when it accepts a request (asyncpg, asynchronous).

Accepting an account, a replenishment or a transfer is a single SQL statement, so it
commits by itself: the idempotency record, the wallet checks and the new rows succeed or
fail together in one round trip. A batch is one transaction (the items go in with COPY).
"""
