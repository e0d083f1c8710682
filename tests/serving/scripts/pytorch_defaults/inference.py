"""No handlers: the PyTorch toolkit serves the TorchScript model.pt with its defaults alone."""
