"""Detector of AI-generated sneaker images."""
