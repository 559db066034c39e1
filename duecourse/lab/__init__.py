"""The strategy lab (issue 14): simulate a portfolio through the real decision code, run
champion/challenger experiments, and read recovery, cure and roll rates from the ledger.

Nothing here runs inside a workflow except `experiments.assign` (a pure function of the
loan id and the experiment), which the starter and the simulator call alike."""
