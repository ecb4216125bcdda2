"""Intake: what the API records when it accepts a request (asyncpg, asynchronous).

Each accepting request is a single SQL statement, so it commits by itself: the idempotency
record, the wallet checks and the new rows succeed or fail together in one round trip.
"""
