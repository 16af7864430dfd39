"""Skeletal motion data without a database: readers per file format, preprocessing to
world units and protocol views, and dataset splits."""
