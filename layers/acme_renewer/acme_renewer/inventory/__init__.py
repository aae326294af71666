"""Inventory stage: read the certificates table, validate each item into a request, decide what is due (policy, ARI).

Hands the order stage the leased CertificateRequests that are due, with each one's CertificateState.
"""
