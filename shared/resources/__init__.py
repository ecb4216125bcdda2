"""The resources of the API as it serves them: the response models (`schemas`) and the
rendering of database rows into them (`serialize`), shared by the API and the workers
(events carry resources as they were)."""
