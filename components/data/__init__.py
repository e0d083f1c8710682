"""Data: tables streamed as Arrow, the batches and splits cut from them, request payloads, S3
objects and code bundles."""
