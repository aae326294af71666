"""Stores stage: put each issued certificate and its key into Secrets Manager, then into ACM in every region.

Hands the report stage the secret's ARN and version and the ACM ARNs, written back to the item.
"""
