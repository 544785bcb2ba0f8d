"""Training pipeline of learned-v1 (avatar-bridge train-expression)."""
