"""Tasks, files, wait queues, sysctls and the clock: the model's kernel core."""
