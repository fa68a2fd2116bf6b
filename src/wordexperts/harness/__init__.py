"""The reproduction harness: experiments, result store, reports, baselines, CLI and demo.

It depends on the library (:mod:`wordexperts.core`, :mod:`wordexperts.tabular`,
:mod:`wordexperts.analogy`, :mod:`wordexperts.bert`, :mod:`wordexperts.datasets`); the
library never imports from here.
"""
