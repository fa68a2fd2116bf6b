"""Reproductions of the paper's tables: each module is one ``wordexperts reproduce`` command."""
