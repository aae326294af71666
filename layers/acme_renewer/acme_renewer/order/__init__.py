"""Order stage: the ACME account and transport, and each order in three steps (begin, validate, finish) with its key.

Hands the DNS challenge stage the TXT records an order needs, and the stores stage the IssuedCertificate.
"""
