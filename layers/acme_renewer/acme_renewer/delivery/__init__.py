"""Delivery stage: the stored certificate onto hosts that cannot use ACM (nginx, HAProxy, IIS, Java), as files.

files.py writes the secret's PEM (and PFX) files atomically and reloads the server when one changed; it is standard
library only, so the SSM document embeds it as its script. secret.py reads the secret with boto3 for the CLI.
"""
