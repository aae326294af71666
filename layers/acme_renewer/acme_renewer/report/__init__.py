"""Report stage: the outcome of every certificate (metrics, events for consumers), and the checks of the whole fleet
(drift, served endpoints).

Hands nothing on: this is where a run ends, in CloudWatch and EventBridge.
"""
