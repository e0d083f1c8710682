"""Training only; the model here is the dependency's arithmetic, nothing to fit."""
