"""Closing a study: the final export, the signed archive, then the links, the numbers and the live data."""
