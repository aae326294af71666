"""acme_renewer: renew ACME certificates on AWS with DNS-01 on Route53.

The pipeline runs inventory -> order -> DNS challenge -> stores -> report; `renewal.run_renewals` drives it.
"""

__version__ = "0.1.0"

import os

# Powertools ties child loggers to their parent by service name; one name everywhere keeps every line
# of the pipeline in the handler's logger, with its keys (certificate id, run id, request id).
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "acme-renewer")
