"""Inference: inputs (images, folders, videos), person boxes, export, rendering, the batch pipeline."""
