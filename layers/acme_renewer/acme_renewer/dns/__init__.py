"""DNS challenge stage: publish the TXT records of every order in Route53 (in whichever account holds the zone),
wait until the authoritative servers serve them, and delete them afterwards; preflight checks the same rules.

Hands the order stage the moment the CA can validate.
"""
