"""The contracts a user script runs under: the workload file, and SageMaker's training and
processing container contracts, laid out the same way on every backend."""
