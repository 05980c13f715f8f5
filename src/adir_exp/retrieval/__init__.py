"""Retrieval of the K collection images nearest to a measurement y (or a text) for adapting the prior.

Import the parts you need (``adir_exp.retrieval.query.Retriever``, ``.build``, ``.index``): the package itself
imports nothing, so a command that only parses its arguments never loads torch or FAISS. See docs/retrieval.md.
"""
