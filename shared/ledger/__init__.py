"""The ledger: where pending operations become transactions and postings.

The one place that changes a balance. See `service` for the rules it keeps and
`repository` for the statements it runs.
"""
