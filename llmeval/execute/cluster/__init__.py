"""Running a suite's work items on a Ray cluster: the session, cluster-wide call slots, work units
on workers, and model actors. Imported only when a run uses `--executor ray`."""
