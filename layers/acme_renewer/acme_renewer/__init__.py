"""acme_renewer: renew ACME certificates on AWS with DNS-01 on Route53.

The pipeline runs inventory -> order -> DNS challenge -> stores -> report; `renewal.run_renewals` drives it.
"""

__version__ = "0.1.0"
