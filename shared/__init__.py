"""Code that the API, the worker and the command line share: settings, money, the schema,
the intake and ledger services and their repositories."""
