"""Conformance suite: test other RAdam implementations against the spec
(installed as ``radam_ref.conformance``)."""
