"""Hand-over tasks (交办单): features handed to an area or account with a deadline and
instructions, fixed by the receiver (整改), checked by the sender (核查) -- verified (销号) or
returned (退回).  :mod:`geo.tasks.handover` is the workflow (who may do what, the selection of
features, the webhook events); the rows are in :mod:`geo.store.interface.tasks` and the figures
in :mod:`geo.figures.tasks`."""
