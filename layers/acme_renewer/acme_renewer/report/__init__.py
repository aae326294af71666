"""Report stage: the outcome of every certificate (metrics, events for consumers), the checks of the whole fleet
(drift, served endpoints), and the hand-on of what one run left.

Hands nothing on: this is where a run ends, in CloudWatch and EventBridge.
"""
