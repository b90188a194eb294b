"""Inception networks of the paper, their weights and evaluation settings."""
