"""The Celery worker (tasks that call the ledger service) and the sweeper."""
