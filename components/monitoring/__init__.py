"""Model quality: evaluation scores and pages, thresholds, the evaluation history, CloudWatch and
notifications."""
