"""ImageNet validation data: label layouts, crop protocols, view pipelines (DALI and reference)."""
